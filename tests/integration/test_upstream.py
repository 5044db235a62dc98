#!/usr/bin/env python3
"""Upstream trouble, seen by the client: an unreachable channel fails over
to the next one; when every candidate fails the client gets 502
upstream_error without keys or URLs; an upstream's own 4xx is passed
through with its body.  The upstream is the test itself, answering by
model name."""
import http.server
import json
import socketserver
import threading

from harness import Harness, free_port, json_or_none

TEAPOT = {"error": {"message": "bad parameter: temperature", "type":
                    "invalid_request_error", "param": "temperature",
                    "code": "bad_param"}}
HITS = {}


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        model = (json_or_none(self.rfile.read(n)) or {}).get("model")
        HITS[model] = HITS.get(model, 0) + 1
        if model == "teapot":
            return self.answer(400, TEAPOT)
        if model == "boom":
            return self.answer(500, {"error": {"message": "internal"}})
        if model == "busy":
            return self.answer(429, {"error": {"message": "slow down"}})
        self.answer(200, {
            "id": "chatcmpl-up", "object": "chat.completion", "created": 1,
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant",
                                                     "content": "from py"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                      "total_tokens": 3}})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def err_of(resp):
    return (json_or_none(resp[2]) or {}).get("error") or {}


with Harness() as h:
    t = h.tap
    port = free_port()
    srv = Server(("127.0.0.1", port), Upstream)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    try:
        def prepare(g):
            h.admin(g.db, "channel-add", "--name", "dead", "--type",
                    "openai", "--base-url", dead, "--key", "sk-dead-secret",
                    "--models", "dead-only,failover", "--priority", "10")
        g = h.gateway(models="failover,teapot,boom,busy",
                      upstream=f"http://127.0.0.1:{port}/v1", prepare=prepare)

        def chat(model):
            return g.chat({"model": model,
                           "messages": [{"role": "user", "content": "hi"}]})

        st, _, body = chat("failover")
        t.eq((st, (json_or_none(body) or {}).get("choices", [{}])[0]
              .get("message", {}).get("content")), (200, "from py"),
             "unreachable first channel: failover to the next one")

        # every candidate failed; only rate limits (429) -> 429 (issue 3)
        for model, want in [("dead-only", (502, "upstream_error")),
                            ("boom", (502, "upstream_error")),
                            ("busy", (429, "rate_limit_exceeded"))]:
            resp = chat(model)
            err = err_of(resp)
            t.eq((resp[0], err.get("code")), want,
                 f"{model}: every candidate failed -> {want[0]} {want[1]}")
            text = resp[2].decode(errors="replace")
            t.ok("127.0.0.1" not in text and "sk-" not in text,
                 f"{model}: the error names no URL and no key", text[:300])
        t.ok(HITS.get("boom", 0) >= 1 and HITS.get("busy", 0) >= 1,
             "5xx and 429 answers did come from the upstream", HITS)

        resp = chat("teapot")
        t.eq(resp[0], 400, "upstream 400 passed through with its status")
        t.eq(json_or_none(resp[2]), TEAPOT,
             "upstream 400 passed through with its body")
        t.eq(HITS.get("teapot"), 1, "a 4xx is not retried")
    finally:
        srv.shutdown()
