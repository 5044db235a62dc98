#!/usr/bin/env python3
"""A stream is forwarded event by event as it arrives, never buffered
whole.  The upstream here is the test itself: it sends one event, then
holds the rest back until the client has received that event.  A gateway
that buffered would never deliver it; the upstream then gives up waiting
(after a generous bound that only limits a failing run) and the check
fails.  Also records what the worker sent upstream."""
import http.client
import http.server
import json
import socketserver
import threading
import urllib.parse

from harness import Harness, free_port, parse_sse

RECORDED = {}
got_first = threading.Event()
first_was_live = []


def chunk(content=None, finish=None, usage=None):
    c = {"id": "chatcmpl-live", "object": "chat.completion.chunk",
         "created": 1, "model": "live-model"}
    c["choices"] = [] if usage else [
        {"index": 0, "delta": {"content": content} if content else {},
         "finish_reason": finish}]
    if usage:
        c["usage"] = usage
    return b"data: " + json.dumps(c).encode() + b"\n\n"


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        RECORDED["path"] = self.path
        RECORDED["auth"] = self.headers.get("Authorization")
        RECORDED["body"] = json.loads(self.rfile.read(n) or b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(chunk("first "))
        self.wfile.flush()
        first_was_live.append(got_first.wait(20))
        self.wfile.write(chunk("second", "stop"))
        self.wfile.write(chunk(usage={"prompt_tokens": 3,
                                      "completion_tokens": 2,
                                      "total_tokens": 5}))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


with Harness() as h:
    t = h.tap
    port = free_port()
    srv = Server(("127.0.0.1", port), Upstream)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        g = h.gateway(models="live-model",
                      upstream=f"http://127.0.0.1:{port}/v1")
        u = urllib.parse.urlsplit(g.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("POST", u.path + "/chat/completions",
                     body=json.dumps({"model": "live-model", "stream": True,
                                      "messages": [{"role": "user",
                                                    "content": "hi"}]}),
                     headers=dict(g.auth(),
                                  **{"Content-Type": "application/json"}))
        resp = conn.getresponse()
        t.eq(resp.status, 200, "stream: status 200")
        seen = b""
        while b'"first ' not in seen:
            line = resp.readline()
            if not line:
                break
            seen += line
        got_first.set()
        rest = resp.read()
        conn.close()
        t.ok(b'"first ' in seen, "client received the first event",
             seen[:300])
        t.eq(first_was_live, [True], "the first event reached the client "
             "while the upstream still held the rest back")
        events, problems = parse_sse(seen + rest)
        t.ok(not problems and events[-1:] == ["[DONE]"],
             "the rest followed, framed, ending with [DONE]",
             "\n".join(problems) + repr(events[-2:]))

        t.eq(RECORDED.get("path"), "/v1/chat/completions",
             "upstream got POST /v1/chat/completions")
        t.eq(RECORDED.get("auth"), "Bearer sk-upstream-secret",
             "upstream got the channel's key, not the client's")
        body = RECORDED.get("body") or {}
        t.ok(body.get("model") == "live-model" and body.get("stream") is True
             and body.get("messages") == [{"role": "user", "content": "hi"}],
             "upstream got the client's model, stream flag and messages",
             json.dumps(body))
    finally:
        got_first.set()
        srv.shutdown()
