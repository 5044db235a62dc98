#!/usr/bin/env python3
"""Client errors in OpenAI's error format: 401 invalid_api_key, 404
model_not_found, 400 invalid_request_error, 413 over PF_BODY_MAX; 503
no_channel_available (and Anthropic's shape on /v1/messages) for a model
whose channels are all disabled."""
from harness import REQUEST_ID_RE, Harness, fetch, json_or_none, wait_for

BODY_MAX = 4096
MESSAGES = [{"role": "user", "content": "hi"}]


def check_error(t, resp, status, etype, code, what):
    st, hdrs, body = resp
    t.eq(st, status, f"{what}: status {status}")
    t.ok(REQUEST_ID_RE.match(hdrs.get("x-request-id", "")) is not None,
         f"{what}: x-request-id is 32 hex", hdrs.get("x-request-id"))
    t.ok(hdrs.get("content-type", "").startswith("application/json"),
         f"{what}: JSON body", hdrs.get("content-type"))
    err = (json_or_none(body) or {}).get("error")
    t.ok(isinstance(err, dict) and isinstance(err.get("message"), str)
         and err.get("message") != "" and "param" in err,
         f"{what}: OpenAI error object with a message", body[:300])
    err = err if isinstance(err, dict) else {}
    if etype is not None:
        t.eq(err.get("type"), etype, f"{what}: error.type")
    if code is not None:
        t.eq(err.get("code"), code, f"{what}: error.code")


with Harness() as h:
    t = h.tap
    idle = {}

    def prepare(g):
        idle["id"] = h.admin(g.db, "channel-add", "--name", "idle",
                             "--type", "openai", "--base-url", g.mock_url,
                             "--key", "k", "--models", "idle-model")

    g = h.gateway(models="mock-gpt", prepare=prepare,
                  serve_env={"PF_BODY_MAX": str(BODY_MAX),
                             "PF_CHANNEL_REFRESH_MS": "200"})
    url = g.base_url + "/chat/completions"
    good = {"model": "mock-gpt", "messages": MESSAGES}

    check_error(t, fetch("POST", url, good), 401, "invalid_request_error",
                "invalid_api_key", "missing key")
    check_error(t, g.chat(good, key="sk-" + "x" * 48), 401,
                "invalid_request_error", "invalid_api_key", "unknown key")
    check_error(t, fetch("POST", url, good, {"Authorization": "Bearer"}),
                401, "invalid_request_error", "invalid_api_key",
                "empty bearer")
    check_error(t, fetch("POST", url, good,
                         {"Authorization": "Basic " + g.key}),
                401, "invalid_request_error", "invalid_api_key",
                "wrong scheme")
    check_error(t, fetch("GET", g.base_url + "/models"), 401,
                "invalid_request_error", "invalid_api_key",
                "models without key")

    check_error(t, g.chat({"model": "no-such-model", "messages": MESSAGES}),
                404, "invalid_request_error", "model_not_found",
                "unknown model")

    check_error(t, g.chat('{"model": "mock-gpt", "messages": ['), 400,
                "invalid_request_error", None, "malformed JSON")
    check_error(t, g.chat("[1, 2, 3]"), 400, "invalid_request_error", None,
                "JSON that is not an object")
    check_error(t, g.chat({"messages": MESSAGES}), 400,
                "invalid_request_error", None, "missing model")
    check_error(t, g.chat({"model": 42, "messages": MESSAGES}), 400,
                "invalid_request_error", None, "model not a string")

    big = {"model": "mock-gpt",
           "messages": [{"role": "user", "content": "x" * (BODY_MAX * 2)}]}
    check_error(t, g.chat(big), 413, None, "request_too_large",
                "body over PF_BODY_MAX")
    fits = {"model": "mock-gpt",
            "messages": [{"role": "user", "content": "y" * (BODY_MAX // 2)}]}
    st, _, body = g.chat(fits)
    t.eq(st, 200, "body under PF_BODY_MAX is served")

    # every channel of a model disabled: 503, not 404
    idle_req = {"model": "idle-model", "messages": MESSAGES,
                "max_tokens": 10}
    t.eq(g.chat(idle_req)[0], 200, "idle-model is served by its channel")
    h.admin(g.db, "channel-disable", "--id", idle["id"])
    resp = wait_for(lambda: (lambda r: r if r[0] != 200 else None)(
        g.chat(idle_req)), timeout=20, step=0.1) or (0, {}, b"")
    check_error(t, resp, 503, "server_error", "no_channel_available",
                "all channels of the model disabled")
    t.ok(b"idle-model" in resp[2] and b"no channel" in resp[2].lower(),
         "... the message names the model and says no channel is "
         "available", resp[2][:300])
    st, hd, body = fetch("POST", g.base_url + "/messages", idle_req,
                         dict(g.auth(), **{"anthropic-version":
                                           "2023-06-01"}))
    j = json_or_none(body) or {}
    err = j.get("error") if isinstance(j.get("error"), dict) else {}
    t.ok(st == 503 and j.get("type") == "error"
         and err.get("type") == "overloaded_error"
         and "idle-model" in err.get("message", ""),
         "the same on /v1/messages: 503 in Anthropic's error shape",
         f"{st} {body[:300]!r}")
    check_error(t, g.chat({"model": "no-such-model", "messages": MESSAGES}),
                404, "invalid_request_error", "model_not_found",
                "a model no channel serves is still 404")
    h.admin(g.db, "channel-enable", "--id", idle["id"])
    t.ok(wait_for(lambda: g.chat(idle_req)[0] == 200, timeout=20, step=0.1),
         "re-enabled: idle-model is served again")

    st, _, body = g.chat(good)
    t.eq(st, 200, "the gateway still serves after the errors")
    t.ok(g.proc.alive(), "serve is still running")
