#!/usr/bin/env python3
"""Failover, as issue 3 wants it, against several mock models whose
faults live in the channel's base URL (/mock/knobs/SPEC/v1):

- priority tiers: a failing top channel (500, 429, 401/403, connect
  refused, a first-byte timeout) hands the request to the next tier, each upstream
  tried once and in order (the lower tier is untouched once one answers);
- a non-retryable 400 is passed through and not retried;
- every candidate failing -> 502 upstream_error / 504 timeout in OpenAI's
  error format;
- no failover after the first byte: an upstream that drops mid-stream
  ends the client's stream early and the next channel gets nothing.

Order is proven by counts: had a lower tier been tried first it would
have answered and the top channel would show zero requests."""
from harness import (REQUEST_ID_RE, Harness, free_port, json_or_none,
                     mock_knobs_url, mock_reset, mock_stats, parse_sse,
                     fetch_stream)

MESSAGES = [{"role": "user", "content": "hi"}]
MODELS = ["tier", "rl", "k401", "k403", "refused", "bad", "slow", "allfail",
          "slowonly", "drop", "rlonly", "hang", "half"]

with Harness() as h:
    t = h.tap
    top = h.start_mock()      # priority 10, faulty through path knobs
    mid = h.start_mock()      # priority 5, healthy
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    mocks = {}

    def prepare(g):
        mocks["low"] = g.mock_url   # gateway's own channel: priority 0

        def add(name, base, models, prio, *extra):
            h.admin(g.db, "channel-add", "--name", name, "--type", "openai",
                    "--base-url", base, "--key", "sk-up-" + name,
                    "--models", models, "--priority", str(prio), *extra)
        add("top500", mock_knobs_url(top, status=500), "tier", 10)
        add("top429", mock_knobs_url(top, status=429), "rl", 10)
        add("top401", mock_knobs_url(top, status=401), "k401", 10)
        add("top403", mock_knobs_url(top, status=403), "k403", 10)
        add("refused", dead, "refused", 10)
        add("top400", mock_knobs_url(top, status=400), "bad", 10)
        add("slow", mock_knobs_url(top, ttfb_ms=5000), "slow,slowonly", 10,
            "--first-byte-timeout-ms", "300")
        add("all500", mock_knobs_url(top, status=503), "allfail", 10)
        add("only429", mock_knobs_url(top, status=429), "rlonly", 10)
        add("drop", mock_knobs_url(top, chunks=6, drop_after=2,
                                   chunk_delay_ms=20), "drop", 10)
        add("hang", mock_knobs_url(top, chunks=6, hang_after=2), "hang", 10,
            "--idle-timeout-ms", "1000")
        add("half", mock_knobs_url(top, error_rate=50, status=502), "half",
            10)
        add("mid", mid,
            "tier,rl,k401,k403,refused,bad,slow,drop,hang,half", 5)

    g = h.gateway(models=",".join(MODELS), prepare=prepare)
    low = mocks["low"]
    # the default channel serves every model at priority 0; take it off
    # "allfail", "slowonly" and "rlonly" so those have a single candidate
    h.psql(g.db, "DELETE FROM abilities WHERE model IN "
                 "('allfail','slowonly','rlonly') AND channel_id = "
                 + g.channel_id)
    g.proc.stop()
    g.base_url, g.proc = h.start_serve(g.db)

    def counts():
        return tuple(mock_stats(m)["requests"] for m in (top, mid, low))

    def reset():
        for m in (top, mid, low):
            mock_reset(m)

    def content(body):
        j = json_or_none(body) or {}
        return ((j.get("choices") or [{}])[0].get("message") or {}) \
            .get("content")

    # 401/403 are the channel key's fault, not the client's: failover too
    for model, why in [("tier", "500"), ("rl", "429"), ("k401", "401"),
                       ("k403", "403")]:
        reset()
        st, hd, body = g.chat({"model": model, "messages": MESSAGES})
        t.eq((st, content(body)), (200, "tok0 tok1 tok2 tok3 tok4 tok5 tok6 "
                                   "tok7 tok8 tok9 tok10 tok11 tok12 tok13 "
                                   "tok14 tok15 "),
             f"{why} on priority 10: the priority 5 channel answers")
        t.eq(counts(), (1, 1, 0),
             f"{why}: top tried once, then mid once, low tier untouched")
        s = mock_stats(top)
        t.eq(s["errors_injected"], 1, f"{why}: the top mock did fail it")

    reset()
    st, _, body = g.chat({"model": "refused", "messages": MESSAGES})
    t.eq(st, 200, "connect refused on priority 10: failover, 200")
    t.eq(counts(), (0, 1, 0), "connect refused: mid once, low untouched")

    reset()
    st, hd, body = g.chat({"model": "bad", "messages": MESSAGES})
    err = (json_or_none(body) or {}).get("error") or {}
    t.eq(st, 400, "upstream 400 is passed through")
    t.eq(err.get("message"), "mock error: status 400",
         "upstream 400: the upstream's own error body")
    t.eq(counts(), (1, 0, 0), "upstream 400: not retried anywhere")

    reset()
    st, _, body = g.chat({"model": "slow", "messages": MESSAGES})
    t.eq(st, 200, "first-byte timeout on priority 10: failover, 200")
    t.eq(counts(), (1, 1, 0), "first-byte timeout: top once, mid once")

    reset()
    st, hd, body = g.chat({"model": "slowonly", "messages": MESSAGES})
    err = (json_or_none(body) or {}).get("error") or {}
    t.eq(st, 504, "only candidate times out: 504")
    t.eq((err.get("code"), "param" in err, isinstance(err.get("message"),
                                                      str)),
         ("timeout", True, True), "504 in OpenAI error format, code timeout")
    t.ok(REQUEST_ID_RE.match(hd.get("x-request-id", "")) is not None,
         "504 carries x-request-id", hd)
    t.eq(counts(), (1, 0, 0), "timeout: the single candidate tried once")

    reset()
    st, hd, body = g.chat({"model": "allfail", "messages": MESSAGES})
    err = (json_or_none(body) or {}).get("error") or {}
    t.eq((st, err.get("code")), (502, "upstream_error"),
         "only candidate answers 503: 502 upstream_error")
    text = body.decode(errors="replace")
    t.ok("sk-up-" not in text and "127.0.0.1" not in text
         and "mock/knobs" not in text,
         "502 names no key and no upstream URL", text[:300])

    reset()
    codes = [g.chat({"model": "half", "messages": MESSAGES})[0]
             for _ in range(6)]
    t.eq(codes, [200] * 6, "error rate 50% on priority 10: all 200")
    t.eq((counts(), mock_stats(top)["errors_injected"]), ((6, 3, 0), 3),
         "error rate 50%: top tried 6 times, failed 3, mid took those 3")

    reset()
    st, hd, body = g.chat({"model": "rlonly", "messages": MESSAGES})
    err = (json_or_none(body) or {}).get("error") or {}
    t.eq((st, err.get("code")), (429, "rate_limit_exceeded"),
         "only candidate answers 429: 429 rate_limit_exceeded")
    t.eq(counts(), (1, 0, 0), "429: the single candidate tried once")

    # no failover after the first byte
    reset()
    st, hd, body, complete = fetch_stream(
        "POST", g.base_url + "/chat/completions",
        {"model": "drop", "messages": MESSAGES, "stream": True},
        g.auth())
    events, _ = parse_sse(body)
    contents = [e for e in events if '"content":"tok' in e]
    t.eq(st, 200, "drop mid-stream: the stream had started (200)")
    t.ok(len(contents) == 2, "drop mid-stream: the client got the 2 "
         "chunks sent before the drop", events)
    t.ok("[DONE]" not in events, "drop mid-stream: no [DONE]", events)
    s = mock_stats(top)
    t.eq((s["requests"], s["drops"]), (1, 1), "the top mock dropped it")
    t.eq(counts()[1:], (0, 0),
         "no failover after the first byte: mid and low got nothing")

    # an upstream that goes silent mid-stream (hangs for the mock's default
    # 300 s) is cut by the channel's idle timeout; the client's read is
    # bounded at 20 s, so a missing cut fails instead of hanging
    reset()
    st, hd, body, complete = fetch_stream(
        "POST", g.base_url + "/chat/completions",
        {"model": "hang", "messages": MESSAGES, "stream": True},
        g.auth(), timeout=20)
    events, _ = parse_sse(body)
    contents = [e for e in events if '"content":"tok' in e]
    t.ok(st == 200 and len(contents) == 2 and "[DONE]" not in events,
         "hang mid-stream: the client got the 2 chunks, then the end",
         events)
    s = mock_stats(top)
    t.eq((s["requests"], s["hangs"]), (1, 1), "the top mock hung it")
    t.eq(counts()[1:], (0, 0), "idle timeout after the first byte: "
         "no failover")
    st, _, _ = g.chat({"model": "tier", "messages": MESSAGES})
    t.eq(st, 200, "the gateway still serves after cut streams")
