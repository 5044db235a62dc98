#!/usr/bin/env python3
"""Bad input through the whole stack (serve + mock): slowloris, endless
headers, oversized bodies, invalid UTF-8, deeply nested JSON, wrong types
-- each cut off or answered in OpenAI's error JSON (Anthropic's on
/v1/messages), while the server keeps serving other clients.  Runs with a
small PF_CLIENT_TIMEOUT_S and PF_BODY_MAX; waits are bounds, never
assertions."""
import socket
import time

from harness import REQUEST_ID_RE, Harness, fetch, json_or_none

BODY_MAX = 4096
CLIENT_TIMEOUT_S = 2
MESSAGES = [{"role": "user", "content": "hi"}]


def dial(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s, bound):
    """Waits up to bound seconds for the peer to close s (EOF or reset);
    discards anything it sends first.  True if it closed."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if s.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
    return False


def read_response(s, bound=10):
    """Reads what the server sends until it closes or bound seconds;
    returns (status or None, raw bytes)."""
    data = b""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            piece = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionError:
            break
        if not piece:
            break
        data += piece
        if b"\r\n\r\n" in data and b"Content-Length" not in data:
            break
    status = None
    if data.startswith(b"HTTP/1."):
        try:
            status = int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            pass
    return status, data


def send_all_tolerant(s, chunks):
    """Sends chunks until the peer stops taking them; returns bytes sent."""
    n = 0
    try:
        for c in chunks:
            s.sendall(c)
            n += len(c)
    except (ConnectionError, socket.timeout, BrokenPipeError):
        pass
    return n


with Harness() as h:
    t = h.tap
    g = h.gateway(models="mock-gpt", serve_env={
        "PF_BODY_MAX": str(BODY_MAX),
        "PF_CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S)})
    port = int(g.base_url.split(":")[2].split("/")[0])
    url = g.base_url + "/chat/completions"
    murl = g.base_url + "/messages"
    good = {"model": "mock-gpt", "messages": MESSAGES}
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + g.key.encode() + b"\r\n")

    def serving(what):
        st = g.chat(good)[0]
        t.eq(st, 200, f"another client is served {what}")

    def openai_error(resp, status, what, code=None):
        st, hd, body = resp
        err = (json_or_none(body) or {}).get("error")
        ok = (st == status and isinstance(err, dict)
              and isinstance(err.get("message"), str)
              and isinstance(err.get("type"), str) and "param" in err
              and (code is None or err.get("code") == code)
              and REQUEST_ID_RE.match(hd.get("x-request-id", ""))
              is not None)
        t.ok(ok, f"{what}: {status} in OpenAI error JSON with x-request-id",
             f"status {st}, headers {hd}, body {body[:300]!r}")

    def anthropic_error(resp, status, etype, what):
        st, hd, body = resp
        j = json_or_none(body) or {}
        err = j.get("error") if isinstance(j, dict) else None
        ok = (st == status and j.get("type") == "error"
              and isinstance(err, dict) and err.get("type") == etype
              and isinstance(err.get("message"), str)
              and REQUEST_ID_RE.match(hd.get("x-request-id", ""))
              is not None)
        t.ok(ok, f"/v1/messages {what}: {status} {etype} in Anthropic's "
             "error shape", f"status {st}, body {body[:300]!r}")

    # --- slowloris ------------------------------------------------------
    idle = [dial(port) for _ in range(32)]
    for s in idle:
        s.sendall(head[:40])  # a request line and part of a header
    serving("while 32 connections sit on half a header")
    t.ok(all(closed_by_peer(s, CLIENT_TIMEOUT_S * 5) for s in idle),
         "half-header connections are closed after PF_CLIENT_TIMEOUT_S")
    for s in idle:
        s.close()

    # trickle: one header byte every 0.4 s never lets the idle timer fire;
    # a header deadline must cut it anyway.  Bounded at 4 timeouts.
    s = dial(port)
    s.sendall(head + b"X-Slow: ")
    cut = False
    served_meanwhile = None
    deadline = time.monotonic() + CLIENT_TIMEOUT_S * 4
    while time.monotonic() < deadline:
        try:
            s.sendall(b"a")
        except (ConnectionError, BrokenPipeError):
            cut = True
            break
        if closed_by_peer(s, 0.4):
            cut = True
            break
        if served_meanwhile is None:
            served_meanwhile = g.chat(good)[0]
    s.close()
    t.eq(served_meanwhile, 200, "another client is served during a trickle")
    t.ok(cut, "a connection trickling its headers (a byte every 0.4 s) "
         "is cut (header deadline)")

    # --- endless headers --------------------------------------------------
    s = dial(port)
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    sent = send_all_tolerant(s, [head] + [line] * 1024)  # ~1 MiB
    st, raw = read_response(s)
    s.close()
    t.ok(st in (431, 413, 400) or (st is None and sent < 1024 * 1000),
         "endless header lines: 431 (or refused) before 1 MiB",
         f"status {st}, sent {sent}, got {raw[:200]!r}")
    s = dial(port)
    sent = send_all_tolerant(s, [head, b"X-Long: "] + [b"l" * 4096] * 256)
    st, raw = read_response(s)
    s.close()
    t.ok(st in (431, 413, 400) or (st is None and sent < 1024 * 1000),
         "one endless header line: 431 (or refused) before 1 MiB",
         f"status {st}, sent {sent}, got {raw[:200]!r}")
    serving("after endless headers")

    # --- oversized bodies -------------------------------------------------
    big = {"model": "mock-gpt",
           "messages": [{"role": "user", "content": "x" * BODY_MAX * 4}]}
    openai_error(g.chat(big), 413, "body over PF_BODY_MAX",
                 "request_too_large")
    s = dial(port)
    chunk = b"x" * 4096
    body_chunks = [b"1000\r\n" + chunk + b"\r\n"] * 64 + [b"0\r\n\r\n"]
    send_all_tolerant(s, [head + b"Transfer-Encoding: chunked\r\n"
                          b"Content-Type: application/json\r\n\r\n"]
                      + body_chunks)
    st, raw = read_response(s)
    s.close()
    t.ok(st == 413 or st is None,
         "chunked body over PF_BODY_MAX: 413 or closed, never relayed",
         f"status {st}, got {raw[:200]!r}")

    # --- malformed JSON ---------------------------------------------------
    bad_utf8 = (b'{"model":"mock-gpt","messages":[{"role":"user",'
                b'"content":"\xff\xfe\xc3"}]}')
    openai_error(g.chat(bad_utf8), 400, "invalid UTF-8 in a JSON string")
    openai_error(g.chat(b'{"model":"mock-gpt\xc0\xaf","messages":[]}'), 400,
                 "overlong UTF-8 encoding")
    deep_arr = ('{"model":"mock-gpt","messages":' + "[" * 1000
                + "]" * 1000 + "}")
    openai_error(g.chat(deep_arr), 400, "arrays nested 1000 deep")
    deep_obj = ('{"model":"mock-gpt","x":' + '{"a":' * 600 + "1"
                + "}" * 600 + ',"messages":[]}')
    openai_error(g.chat(deep_obj), 400, "objects nested 600 deep")
    ok_deep = ('{"model":"mock-gpt","messages":[{"role":"user","content":'
               '"hi"}],"metadata_x":' + "[" * 20 + "]" * 20 + "}")
    t.eq(g.chat(ok_deep)[0], 200, "nesting 20 deep is fine")

    # --- wrong types --------------------------------------------------------
    for what, body in [
            ("model: 5", {"model": 5, "messages": MESSAGES}),
            ("model: null", {"model": None, "messages": MESSAGES}),
            ("model: \"\"", {"model": "", "messages": MESSAGES}),
            ("stream: \"yes\"", dict(good, stream="yes")),
            ("stream: 1", dict(good, stream=1)),
            ("stream_options.include_usage: \"yes\"",
             dict(good, stream=True,
                  stream_options={"include_usage": "yes"}))]:
        openai_error(g.chat(body), 400, f"wrong type {what}")

    # --- /v1/messages in Anthropic's shape ----------------------------------
    ah = {"x-api-key": g.key, "anthropic-version": "2023-06-01"}
    mgood = {"model": "mock-gpt", "max_tokens": 5, "messages": MESSAGES}
    anthropic_error(fetch("POST", murl, mgood,
                          {"x-api-key": "sk-" + "w" * 48,
                           "anthropic-version": "2023-06-01"}),
                    401, "authentication_error", "bad key")
    anthropic_error(fetch("POST", murl, "{", ah), 400,
                    "invalid_request_error", "malformed JSON")
    anthropic_error(fetch("POST", murl, dict(mgood, model=5), ah), 400,
                    "invalid_request_error", "model: 5")
    anthropic_error(fetch("POST", murl, dict(mgood, stream="yes"), ah), 400,
                    "invalid_request_error", "stream: \"yes\"")
    anthropic_error(fetch("POST", murl, bad_utf8, ah), 400,
                    "invalid_request_error", "invalid UTF-8")
    anthropic_error(fetch("POST", murl, deep_arr, ah), 400,
                    "invalid_request_error", "nested 1000 deep")
    anthropic_error(fetch("POST", murl, dict(mgood, model="nope"), ah), 404,
                    "not_found_error", "unknown model")
    anthropic_error(fetch("POST", murl, dict(big, max_tokens=5), ah), 413,
                    "request_too_large", "body over PF_BODY_MAX")
    st, _, body = fetch("POST", murl, mgood, ah)
    t.eq((st, (json_or_none(body) or {}).get("type")), (200, "message"),
         "/v1/messages still answers a good request")

    serving("at the end")
    t.ok(g.proc.alive(), "serve is still running")
