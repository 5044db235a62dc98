#!/usr/bin/env python3
"""What a token may do: model allow-list (also in /v1/models), client IP
allow-list, expiry, disabling, and its group choosing the channels."""
import time

from harness import Harness, fetch, json_or_none


def code_of(resp):
    err = (json_or_none(resp[2]) or {}).get("error") or {}
    return resp[0], err.get("code")


def chat(g, model, key):
    return g.chat({"model": model,
                   "messages": [{"role": "user", "content": "hi"}]}, key=key)


def model_ids(g, key):
    st, _, body = fetch("GET", g.base_url + "/models", headers=g.auth(key))
    return st, sorted(m.get("id") for m in
                      (json_or_none(body) or {}).get("data") or [])


with Harness() as h:
    t = h.tap
    keys = {}

    def prepare(g):
        def token(name, *args):
            keys[name] = h.admin(g.db, "token-create", "--user", "alice",
                                 "--name", name, *args)
        token("only-mock", "--models", "mock-gpt")
        token("ip-elsewhere", "--allow-ips", "10.0.0.0/8")
        token("ip-here", "--allow-ips", "10.0.0.0/8,127.0.0.1/32")
        token("expired", "--expires", str(int(time.time()) - 60))
        token("later", "--expires", str(int(time.time()) + 3600))
        token("vip", "--group", "vip")
        token("to-disable")
        h.admin(g.db, "channel-add", "--name", "vip-only", "--type",
                "openai", "--base-url", g.mock_url, "--models", "vip-model",
                "--group", "vip")

    # No auth cache, so a disabled token is refused at once.
    g = h.gateway(models="mock-gpt,gpt-4o-mini", prepare=prepare,
                  serve_env={"PF_AUTH_CACHE_TTL_MS": "0"})

    t.eq(chat(g, "mock-gpt", keys["only-mock"])[0], 200,
         "allow-listed model: 200")
    t.eq(code_of(chat(g, "gpt-4o-mini", keys["only-mock"])),
         (403, "model_not_allowed"), "model outside the allow-list: 403")
    t.eq(model_ids(g, keys["only-mock"]), (200, ["mock-gpt"]),
         "/v1/models lists only the allow-listed models")
    t.eq(model_ids(g, g.key), (200, ["gpt-4o-mini", "mock-gpt"]),
         "/v1/models lists the group's models for an open token")

    t.eq(code_of(chat(g, "mock-gpt", keys["ip-elsewhere"])),
         (403, "ip_not_allowed"), "client IP outside the allow-list: 403")
    t.eq(chat(g, "mock-gpt", keys["ip-here"])[0], 200,
         "client IP inside the allow-list: 200")

    t.eq(code_of(chat(g, "mock-gpt", keys["expired"])),
         (401, "invalid_api_key"), "expired token: 401")
    t.eq(chat(g, "mock-gpt", keys["later"])[0], 200,
         "token expiring later: 200")

    t.eq(chat(g, "vip-model", keys["vip"])[0], 200,
         "token group vip reaches the vip channel")
    t.eq(code_of(chat(g, "vip-model", g.key)), (404, "model_not_found"),
         "the user's default group does not see the vip channel")
    t.eq(model_ids(g, keys["vip"]), (200, ["vip-model"]),
         "/v1/models of a vip token lists the vip group's models")

    t.eq(chat(g, "mock-gpt", keys["to-disable"])[0], 200,
         "token before disabling: 200")
    h.psql(g.db, "UPDATE tokens SET status = 2 WHERE name = 'to-disable'")
    t.eq(code_of(chat(g, "mock-gpt", keys["to-disable"])),
         (401, "invalid_api_key"), "disabled token: 401")
