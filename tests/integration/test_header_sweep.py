#!/usr/bin/env python3
"""Every request header block gets a clear answer, whatever its size.

PF_HTTP_CONN_MEMORY (libmicrohttpd's per-connection pool) bounds the
header block: a block that fits is served, a larger one gets 431.  At the
edge between the two, libmicrohttpd 0.9.75 used to close the connection
without any answer.  This test sends header blocks of every size from
1500 to 9000 bytes in 8-byte steps (one padding header grows; and, at the
edge, many small headers) for the default pool and for 8192, and asserts
each gets a whole answer: 200 with the completion (whole stream to
[DONE] for a stream), or 431 -- never a closed connection without a
status line.  The gateway's own 431 (heads that fit the pool but leave
too little room for the answer) carries the API's JSON error; heads that
do not fit the pool at all get libmicrohttpd's 431 (a short HTML body,
fixed in the library)."""
import json
import re
import socket

from harness import Harness

MESSAGES = [{"role": "user", "content": "hi"}]
LOW, HIGH, STEP = 1500, 9000, 8


def head_bytes(key, body, pad, extra=(), path="/v1/chat/completions"):
    """The request head for path with an X-Pad header of pad bytes (and
    the extra (name, value) headers)."""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
            "Connection: close\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in extra)
            + (f"X-Pad: {'p' * pad}\r\n" if pad > 0 else "")
            + "\r\n").encode()


def exchange(port, data):
    """Sends data and reads the answer until the server closes.  Returns
    (status or None, answer bytes, error text)."""
    got, err = b"", ""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        try:
            s.sendall(data)
        except OSError as e:
            err = f"send: {e}"
        while True:
            try:
                piece = s.recv(65536)
            except OSError as e:
                err += f" recv: {e}"
                break
            if not piece:
                break
            got += piece
    try:
        status = int(got.split(b"\r\n", 1)[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = None
    return status, got, err


def dechunk(body):
    """The payload of a chunked body, or None when it is not whole."""
    out = b""
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        try:
            n = int(size_line.split(b";")[0], 16)
        except ValueError:
            return None
        if not sep or len(rest) < n + 2 or rest[n:n + 2] != b"\r\n":
            return None
        if n == 0:
            return out
        out += rest[:n]
        body = rest[n + 2:]


def json_error(body):
    try:
        return isinstance(json.loads(body)["error"]["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


def verdict(status, answer, stream):
    """None when the answer is a clear one, else what is wrong with it."""
    if status is None:
        return "no status line"
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return "head not complete"
    if status == 200 and stream:
        text = dechunk(body)
        return None if text is not None and (
            text.endswith(b"data: [DONE]\n\n")
            or b"event: message_stop" in text) else "stream cut short"
    if status == 200:
        try:
            j = json.loads(body)
            ok = bool(j.get("choices") or j.get("content"))
        except (ValueError, KeyError, TypeError):
            ok = False
        return None if ok else "200 without a completion"
    if status == 431:
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        return None if m and int(m.group(1)) == len(body) \
            else "431 body incomplete"
    return f"status {status}"


with Harness() as h:
    t = h.tap
    g = h.gateway(models="mock-gpt")
    bodies = {s: json.dumps({"model": "mock-gpt", "stream": s,
                             "max_tokens": 10,
                             "messages": MESSAGES}).encode()
              for s in (False, True)}
    ANTHROPIC = ("/v1/messages", [("anthropic-version", "2023-06-01")])
    small = [(f"X-H{i:03d}", "v" * 20) for i in range(400)]

    def sweep_pad(label, port, body, stream, path="/v1/chat/completions",
                  extra=()):
        base_len = len(head_bytes(g.key, body, 0, extra, path))
        bad, seen, last_ok, first_431, first_json = [], {}, 0, None, None
        for size in range(LOW, HIGH + 1, STEP):
            # "X-Pad: " + value + CRLF adds 9 + pad bytes
            data = head_bytes(g.key, body, size - base_len - 9, extra,
                              path) + body
            status, answer, err = exchange(port, data)
            seen[status] = seen.get(status, 0) + 1
            why = verdict(status, answer, stream)
            if why is not None:
                bad.append(f"{size}: {why} {err} {answer[:120]!r}")
            if status == 200:
                last_ok = size
            elif status == 431 and first_431 is None:
                first_431 = size
                first_json = json_error(answer.partition(b"\r\n\r\n")[2])
        t.ok(not bad, f"{label}: every header block {LOW}-{HIGH} bytes "
             f"(step {STEP}) gets 200 or 431",
             f"{len(bad)} without one:\n" + "\n".join(bad[:40]))
        t.ok(last_ok > 0 and first_431 is not None and last_ok < first_431,
             f"{label}: blocks up to some size pass, larger ones get 431",
             f"last 200 at {last_ok}, first 431 at {first_431}, {seen}")
        t.ok(first_json, f"{label}: the first 431 (the gateway's) carries "
             "the API's JSON error")
        t.diag(f"{label}: largest block served {last_ok} bytes, "
               f"first 431 at {first_431}")

    def sweep(label, base_url, proc):
        port = int(base_url.split(":")[2].split("/")[0])
        for stream, body in bodies.items():
            sweep_pad(label + (", stream" if stream else ""), port, body,
                      stream)
            sweep_pad(label + ", /v1/messages" + (
                ", stream" if stream else ""), port, body, stream,
                *ANTHROPIC)
        body = bodies[False]
        # many small headers: each costs a header record in the pool too
        bad = []
        for n in range(1, len(small) + 1):
            data = head_bytes(g.key, body, 0, small[:n]) + body
            if len(data) - len(body) > HIGH:
                break
            status, answer, err = exchange(port, data)
            why = verdict(status, answer, False)
            if why is not None:
                bad.append(f"{n} headers ({len(data) - len(body)} bytes): "
                           f"{why} {err} {answer[:120]!r}")
        t.ok(not bad, f"{label}: 1..{n} small headers all get 200 or 431",
             f"{len(bad)} without one:\n" + "\n".join(bad[:40]))
        t.ok(proc.alive(), f"{label}: serve is still running")

    sweep("default pool", g.base_url, g.proc)
    base, proc = h.start_serve(g.db, {"PF_HTTP_CONN_MEMORY": "8192"})
    sweep("PF_HTTP_CONN_MEMORY=8192", base, proc)
