#!/usr/bin/env python3
"""Client headers through the relay: the allow-listed ones (x-mock-*,
openai-beta to OpenAI channels, anthropic-* to Anthropic channels) reach
the upstream, nothing else does (cookies, the client's own key, random
x- headers), and too many or too long allow-listed headers answer 400.
The mock's GET /mock/stats "last.headers" shows what arrived."""
from harness import Harness, fetch, json_or_none, mock_stats, mock_reset

MESSAGES = [{"role": "user", "content": "hi"}]

with Harness() as h:
    t = h.tap

    def prepare(g):
        h.admin(g.db, "channel-add", "--name", "anth", "--type",
                "anthropic", "--base-url", g.mock_url, "--key",
                "sk-ant-upstream", "--models", "claude-x")
        # the gateway's own (OpenAI) channel must not serve claude-x
        h.psql(g.db, "DELETE FROM abilities WHERE model = 'claude-x' "
                     "AND channel_id = " + g.channel_id)
    g = h.gateway(models="mock-gpt,claude-x", prepare=prepare)
    good = {"model": "mock-gpt", "messages": MESSAGES}

    def last_headers():
        last = mock_stats(g.mock_url)["last"] or {}
        return last.get("headers") or {}, last

    mock_reset(g.mock_url)
    st, _, body = g.chat(good, headers={
        "x-mock-chunks": "3", "openai-beta": "assistants=v2",
        "anthropic-beta": "tools-2024", "x-client-secret": "s3cr3t",
        "Cookie": "session=abc"})
    content = (((json_or_none(body) or {}).get("choices") or [{}])[0]
               .get("message") or {}).get("content")
    t.eq((st, content), (200, "tok0 tok1 tok2 "),
         "x-mock-chunks: 3 reached the mock (3 chunks answered)")
    hd, last = last_headers()
    t.eq(hd.get("x-mock-chunks"), "3", "the mock saw x-mock-chunks")
    t.eq(hd.get("openai-beta"), "assistants=v2",
         "openai-beta goes to an OpenAI channel")
    t.ok("anthropic-beta" not in hd,
         "anthropic-beta does not go to an OpenAI channel", hd)
    t.ok("x-client-secret" not in hd and "cookie" not in hd,
         "headers off the allow-list stay behind", hd)
    t.eq(last.get("authorization"), "Bearer sk-upstream-secret",
         "upstream gets the channel key, not the client's")

    mock_reset(g.mock_url)
    st, _, body = fetch("POST", g.base_url + "/messages",
                        {"model": "claude-x", "max_tokens": 50,
                         "messages": MESSAGES},
                        {"x-api-key": g.key,
                         "anthropic-version": "2023-06-01",
                         "anthropic-beta": "tools-2024",
                         "openai-beta": "assistants=v2",
                         "x-mock-chunks": "2"})
    j = json_or_none(body) or {}
    t.eq((st, j.get("type"), (j.get("usage") or {}).get("output_tokens")),
         (200, "message", 2), "/v1/messages on an Anthropic channel, "
         "x-mock-chunks: 2 honoured")
    hd, last = last_headers()
    t.eq((hd.get("anthropic-version"), hd.get("anthropic-beta")),
         ("2023-06-01", "tools-2024"),
         "anthropic-* go to an Anthropic channel")
    t.ok("openai-beta" not in hd,
         "openai-beta does not go to an Anthropic channel", hd)
    t.eq((last.get("x_api_key"), last.get("authorization")),
         ("sk-ant-upstream", None),
         "Anthropic upstream gets the channel key as x-api-key only")

    many = {f"x-mock-extra-{i}": "1" for i in range(20)}
    st, _, body = g.chat(good, headers=many)
    err = (json_or_none(body) or {}).get("error") or {}
    t.eq((st, err.get("type")), (400, "invalid_request_error"),
         "20 allow-listed headers (> PF_RELAY_HEADERS_MAX): 400")
    st, _, body = g.chat(good, headers={"x-mock-ttfb-ms": "1" * 2000})
    err = (json_or_none(body) or {}).get("error") or {}
    t.eq((st, err.get("type")), (400, "invalid_request_error"),
         "an allow-listed header value over 1 KiB: 400")
    t.eq(g.chat(good)[0], 200, "plain requests still served")
