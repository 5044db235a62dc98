#!/usr/bin/env python3
"""End to end through `planktonfly serve` against the mock model: a
non-stream chat completion, the stream (SSE framing, order, usage chunk
iff stream_options.include_usage), and GET /v1/models.  Expected content
and token counts follow docs/mock-model.md: N chunks "tok<i> " (default
16), completion tokens = N, prompt tokens = ceil(text bytes / 4)."""
import glob
import json

from harness import REQUEST_ID_RE, Harness, fetch, json_or_none, parse_sse

MESSAGES = [{"role": "user", "content": "Say something deterministic."}]
PROMPT_TOKENS = (len(MESSAGES[0]["content"]) + 3) // 4  # 28 bytes -> 7
CHUNKS = 16
CONTENT = "".join(f"tok{i} " for i in range(CHUNKS))


def check_request_id(t, hdrs, what):
    rid = hdrs.get("x-request-id", "")
    t.ok(REQUEST_ID_RE.match(rid) is not None,
         f"{what}: x-request-id is 32 hex", repr(rid))


def stream_chunks(t, status, hdrs, body, what):
    """Checks the framing of an SSE response; returns the parsed chunks
    (without [DONE])."""
    t.eq(status, 200, f"{what}: status 200")
    t.ok(hdrs.get("content-type", "").startswith("text/event-stream"),
         f"{what}: Content-Type text/event-stream",
         hdrs.get("content-type"))
    check_request_id(t, hdrs, what)
    events, problems = parse_sse(body)
    t.ok(not problems, f"{what}: every event framed as 'data: ...\\n\\n'",
         "\n".join(problems[:5]))
    t.ok(len(events) >= 2 and events[-1] == "[DONE]",
         f"{what}: last event is data: [DONE]", repr(events[-3:]))
    t.eq(events.count("[DONE]"), 1, f"{what}: exactly one [DONE]")
    chunks = [json_or_none(e) for e in events if e != "[DONE]"]
    t.ok(chunks and all(isinstance(c, dict) for c in chunks),
         f"{what}: every chunk is a JSON object", repr(events[:3]))
    chunks = [c for c in chunks if isinstance(c, dict)]
    t.ok(all(c.get("object") == "chat.completion.chunk" for c in chunks),
         f"{what}: every chunk is a chat.completion.chunk")
    t.eq(len({c.get("id") for c in chunks}), 1,
         f"{what}: all chunks carry one id")
    return chunks


def content_of(chunks):
    return "".join((ch.get("delta") or {}).get("content") or ""
                   for c in chunks for ch in c.get("choices") or [])


with Harness() as h:
    t = h.tap
    g = h.gateway(models="mock-gpt,gpt-4o-mini")

    # --- non-stream --------------------------------------------------------
    req = {"model": "mock-gpt", "messages": MESSAGES}
    status, hdrs, body = g.chat(req)
    t.eq(status, 200, "non-stream: status 200")
    t.ok(hdrs.get("content-type", "").startswith("application/json"),
         "non-stream: Content-Type application/json", hdrs.get("content-type"))
    check_request_id(t, hdrs, "non-stream")
    resp = json_or_none(body) or {}
    t.eq(resp.get("object"), "chat.completion", "non-stream: object")
    t.eq(resp.get("model"), "mock-gpt", "non-stream: model as asked")
    choice = (resp.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content = msg.get("content")
    t.eq(msg.get("role"), "assistant", "non-stream: assistant message")
    t.eq(content, CONTENT, "non-stream: the mock's deterministic content")
    t.eq(choice.get("finish_reason"), "stop", "non-stream: finish_reason")
    usage = resp.get("usage") or {}
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    t.eq((p, c), (PROMPT_TOKENS, CHUNKS),
         "non-stream: prompt and completion tokens as the mock counts them")
    t.ok(isinstance(p, int) and isinstance(c, int)
         and usage.get("total_tokens") == p + c,
         "non-stream: total_tokens = prompt + completion", usage)

    # What the worker sent upstream: the channel's key, the client's body.
    st, _, sbody = fetch("GET", g.mock_url.replace("/v1", "/mock/stats"))
    last = (json_or_none(sbody) or {}).get("last") or {}
    t.eq(last.get("authorization"), "Bearer sk-upstream-secret",
         "upstream got the channel's key, not the client's")
    t.ok(last.get("path") == "/v1/chat/completions"
         and last.get("model") == "mock-gpt" and not last.get("stream"),
         "upstream got a non-stream POST /v1/chat/completions for the asked "
         "model", json.dumps(last)[:400])
    t.ok(g.key not in sbody.decode(errors="replace"),
         "the client's key never reached the upstream")

    # The gateway relays what the upstream said, unchanged.
    mstatus, _, mbody = fetch("POST", g.mock_url + "/chat/completions", req,
                              {"Authorization": "Bearer sk-upstream-secret"})
    direct = json_or_none(mbody) or {}
    dchoice = (direct.get("choices") or [{}])[0]
    t.eq(mstatus, 200, "mock answers directly")
    t.eq(content, (dchoice.get("message") or {}).get("content"),
         "non-stream: content identical to the upstream's")
    t.eq(usage, direct.get("usage"), "non-stream: usage identical to the "
         "upstream's")

    status, hdrs, body = g.chat({"model": "gpt-4o-mini",
                                 "messages": MESSAGES})
    t.eq(status, 200, "second model of the channel: status 200")
    t.eq((json_or_none(body) or {}).get("model"), "gpt-4o-mini",
         "second model of the channel: model as asked")

    status, hdrs, body = g.chat({"model": "mock-gpt", "messages": MESSAGES,
                                 "max_tokens": 3})
    resp = json_or_none(body) or {}
    choice = (resp.get("choices") or [{}])[0]
    t.eq(((choice.get("message") or {}).get("content"),
          choice.get("finish_reason"),
          (resp.get("usage") or {}).get("completion_tokens")),
         ("tok0 tok1 tok2 ", "length", 3),
         "max_tokens reaches the upstream (3 chunks, finish_reason length)")

    # --- stream without usage ----------------------------------------------
    req = {"model": "mock-gpt", "messages": MESSAGES, "stream": True}
    chunks = stream_chunks(t, *g.chat(req), "stream")
    t.eq(content_of(chunks), content,
         "stream: chunks in order spell the non-stream content")
    t.ok(len(chunks) >= 2, "stream: several chunks", len(chunks))
    t.ok(not any(c.get("usage") for c in chunks),
         "stream: no usage chunk without stream_options.include_usage")
    finals = [i for i, c in enumerate(chunks)
              if any(ch.get("finish_reason") for ch in c.get("choices") or [])]
    t.eq(finals, [len(chunks) - 1], "stream: finish_reason only in the "
         "last chunk")

    # --- stream with usage -------------------------------------------------
    req["stream_options"] = {"include_usage": True}
    chunks = stream_chunks(t, *g.chat(req), "stream+usage")
    t.eq(content_of(chunks), content,
         "stream+usage: chunks in order spell the non-stream content")
    last = chunks[-1] if chunks else {}
    lu = last.get("usage") or {}
    t.ok(last.get("choices") == [] and isinstance(lu, dict)
         and lu.get("prompt_tokens") == p
         and lu.get("completion_tokens") == c
         and lu.get("total_tokens") == (p or 0) + (c or 0),
         "stream+usage: final chunk has empty choices and the usage",
         json.dumps(last))
    t.ok(not any(ch.get("usage") for ch in chunks[:-1]),
         "stream+usage: only the final chunk carries usage")

    # --- models ------------------------------------------------------------
    status, hdrs, body = fetch("GET", g.base_url + "/models",
                               headers=g.auth())
    t.eq(status, 200, "models: status 200")
    check_request_id(t, hdrs, "models")
    lst = json_or_none(body) or {}
    t.eq(lst.get("object"), "list", "models: object list")
    data = lst.get("data") or []
    t.eq(sorted(m.get("id") for m in data), sorted(g.models),
         "models: exactly the channel's models")
    t.ok(data and all(m.get("object") == "model"
                      and isinstance(m.get("created"), int)
                      and isinstance(m.get("owned_by"), str) for m in data),
         "models: OpenAI model objects", body[:300])

    # Every request above reached the upstream exactly once: 5 through the
    # gateway (chat, second model, max_tokens, two streams) + 1 direct.
    st, _, sbody = fetch("GET", g.mock_url.replace("/v1", "/mock/stats"))
    stats = json_or_none(sbody) or {}
    t.eq((stats.get("by_path") or {}).get("/v1/chat/completions"), 6,
         "upstream saw each request once (no retry, no duplicate)")
    t.eq((stats.get("streams") or {}).get("completed"), 2,
         "upstream streams completed")

    status, hdrs, body = fetch("GET", g.base_url.replace("/v1", "/health"))
    t.eq((status, json_or_none(body)), (200, {"status": "ok"}), "health")

    # the process's threads say what they are (top -H, perf, gdb)
    names = set()
    for comm in glob.glob(f"/proc/{g.proc.p.pid}/task/*/comm"):
        with open(comm) as f:
            names.add(f.read().strip())
    want = {"pf-loop-0", "pf-billing", "pf-spool-sync", "pf-auth",
            "pf-accountant", "pf-acct-lane", "pf-relay-sweep"}
    t.ok(want <= names, "serve's threads are named", sorted(names))
