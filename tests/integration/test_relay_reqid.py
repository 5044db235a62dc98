#!/usr/bin/env python3
"""x-request-id (32 hex) on every kind of answer -- success, stream,
client errors, upstream errors passed through, 502 -- and a different one
for every request."""
from harness import (REQUEST_ID_RE, Harness, fetch, fetch_stream,
                     mock_knobs_url, parse_sse)

MESSAGES = [{"role": "user", "content": "hi"}]

with Harness() as h:
    t = h.tap

    def prepare(g):
        h.admin(g.db, "channel-add", "--name", "e400", "--type", "openai",
                "--base-url", mock_knobs_url(g.mock_url, status=400),
                "--models", "up400", "--key", "k")
        h.admin(g.db, "channel-add", "--name", "e500", "--type", "openai",
                "--base-url", mock_knobs_url(g.mock_url, status=500),
                "--models", "up500", "--key", "k")
    g = h.gateway(models="mock-gpt", prepare=prepare)
    url = g.base_url + "/chat/completions"
    good = {"model": "mock-gpt", "messages": MESSAGES}

    cases = [
        ("non-stream 200", lambda: g.chat(good), 200),
        ("stream 200", lambda: fetch_stream(
            "POST", url, dict(good, stream=True), g.auth())[:3], 200),
        ("401", lambda: fetch("POST", url, good), 401),
        ("400 malformed JSON", lambda: g.chat("{"), 400),
        ("404 unknown model", lambda: g.chat(
            {"model": "nope", "messages": MESSAGES}), 404),
        ("404 unknown path", lambda: fetch(
            "POST", g.base_url + "/nowhere", good, g.auth()), 404),
        ("upstream 400 passed through", lambda: g.chat(
            {"model": "up400", "messages": MESSAGES}), 400),
        ("upstream 500 -> 502", lambda: g.chat(
            {"model": "up500", "messages": MESSAGES}), 502),
        ("GET /v1/models", lambda: fetch(
            "GET", g.base_url + "/models", None, g.auth()), 200),
        ("/v1/messages 401", lambda: fetch(
            "POST", g.base_url + "/messages",
            {"model": "mock-gpt", "max_tokens": 5, "messages": MESSAGES},
            {"x-api-key": "sk-wrong", "anthropic-version": "2023-06-01"}),
         401),
    ]
    seen = []
    for name, call, want in cases:
        st, hd, body = call()
        rid = hd.get("x-request-id", "")
        t.eq(st, want, f"{name}: status {want}")
        t.ok(REQUEST_ID_RE.match(rid) is not None,
             f"{name}: x-request-id is 32 hex", repr(rid))
        seen.append(rid)
        if name == "stream 200":
            events, problems = parse_sse(body)
            t.ok(events and events[-1] == "[DONE]" and not problems,
                 "stream 200: a whole stream came with the id", problems)

    t.eq(len(set(seen)), len(seen), "every request got its own id")
    ids = set()
    for _ in range(20):
        ids.add(g.chat(good)[1].get("x-request-id"))
    t.eq(len(ids), 20, "20 more requests: 20 distinct ids")
