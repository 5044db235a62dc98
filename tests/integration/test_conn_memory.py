#!/usr/bin/env python3
"""PF_HTTP_CONN_MEMORY, libmicrohttpd's memory per client connection
(default 4096, common/limits.h): it bounds the request header block.
Header blocks an SDK sends pass; a larger block gets 431 and the gateway
keeps serving; SSE events bigger than the whole pool still reach the
client intact (in several writes); PF_HTTP_CONN_MEMORY=8192 takes the
blocks the default refuses.  A stream to an HTTP/1.0 client (no chunked
encoding: the body runs until close, read through the response's own
block, which HTTP/1.1 streams do without) arrives whole too."""
import json
import socket
import time

from harness import Harness, mock_knobs_url, parse_sse

MESSAGES = [{"role": "user", "content": "hi"}]
BIG_EVENT = 6000   # text bytes per chunk: each SSE event > the 4 KiB pool
BIG_CHUNKS = 3

# what the OpenAI Python SDK sends besides Authorization (~0.5 KiB)
SDK_HEADERS = {
    "Accept": "application/json",
    "User-Agent": "OpenAI/Python 1.55.0",
    "X-Stainless-Lang": "python",
    "X-Stainless-Package-Version": "1.55.0",
    "X-Stainless-OS": "Linux",
    "X-Stainless-Arch": "x64",
    "X-Stainless-Runtime": "CPython",
    "X-Stainless-Runtime-Version": "3.11.2",
    "X-Stainless-Async": "false",
    "X-Stainless-Retry-Count": "0",
    "X-Stainless-Read-Timeout": "600",
    "X-Forwarded-For": "203.0.113.7, 198.51.100.23",
    "X-Forwarded-Proto": "https",
}


def padded(n):
    """SDK_HEADERS plus one header of n bytes."""
    return dict(SDK_HEADERS, **{"X-Pad": "p" * n})


def content_of(body):
    """The concatenated delta contents of an SSE body, and whether it was
    well framed and ended with [DONE]."""
    events, problems = parse_sse(body)
    text = ""
    for e in events:
        if e == "[DONE]":
            continue
        try:
            for c in json.loads(e).get("choices", []):
                text += (c.get("delta") or {}).get("content") or ""
        except ValueError:
            problems.append("not JSON: " + e[:80])
    return text, not problems and events[-1:] == ["[DONE]"]


def raw_status(base_url, key, headers):
    """Sends a chat request with headers on a raw socket (the server may
    answer and close before it has read them all) and returns the status
    line's code, or None when the connection closed without one."""
    port = int(base_url.split(":")[2].split("/")[0])
    body = json.dumps({"model": "mock-gpt", "messages": MESSAGES}).encode()
    head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        try:
            s.sendall(head + body)
        except (ConnectionError, BrokenPipeError):
            pass
        data = b""
        deadline = time.monotonic() + 10
        while b"\r\n" not in data and time.monotonic() < deadline:
            try:
                piece = s.recv(4096)
            except (ConnectionError, socket.timeout):
                break
            if not piece:
                break
            data += piece
    finally:
        s.close()
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def http10_stream(base_url, key, model):
    """Asks for a stream in an HTTP/1.0 request and reads the answer until
    the server closes.  Returns (status, head bytes, body bytes)."""
    port = int(base_url.split(":")[2].split("/")[0])
    body = json.dumps({"model": model, "stream": True,
                       "messages": MESSAGES}).encode()
    head = ("POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = None
    return status, head, rest


with Harness() as h:
    t = h.tap

    def prepare(g):
        h.admin(g.db, "channel-add", "--name", "big", "--type", "openai",
                "--base-url", mock_knobs_url(g.mock_url, chunks=BIG_CHUNKS,
                                             chunk_bytes=BIG_EVENT),
                "--key", "k", "--models", "big")
        h.admin(g.db, "price-set", "--model", "big", "--input", "0.5",
                "--output", "1.5")

    g = h.gateway(models="mock-gpt", prepare=prepare)
    good = {"model": "mock-gpt", "messages": MESSAGES}
    stream = dict(good, stream=True)

    t.eq(g.chat(good, SDK_HEADERS)[0], 200,
         "default pool: an SDK's header block passes (non-stream)")
    st, _, body = g.chat(stream, padded(2000))
    t.ok(st == 200 and content_of(body)[1],
         "default pool: a 2.5 KiB header block passes (stream, to [DONE])",
         f"status {st}, body {body[:200]!r}")
    t.eq(raw_status(g.base_url, g.key, padded(4500)), 431,
         "default pool: a 5 KiB header block gets 431 Request Header "
         "Fields Too Large")
    many = dict(SDK_HEADERS, **{f"X-H{i}": "v" * 30 for i in range(120)})
    t.eq(raw_status(g.base_url, g.key, many), 431,
         "default pool: 120 small headers (5 KiB) get 431")
    t.eq(g.chat(good, SDK_HEADERS)[0], 200,
         "the gateway still serves after the refusals")
    t.ok(g.proc.alive(), "serve is still running")

    st, _, body = g.chat({"model": "big", "stream": True,
                          "messages": MESSAGES}, SDK_HEADERS)
    text, framed = content_of(body)
    t.ok(st == 200 and framed and len(text) == BIG_EVENT * BIG_CHUNKS,
         f"default pool: {BIG_CHUNKS} SSE events of {BIG_EVENT} bytes "
         "(each larger than the pool) arrive whole",
         f"status {st}, framed {framed}, text bytes {len(text)}")

    for model, want in (("mock-gpt", None), ("big", BIG_EVENT * BIG_CHUNKS)):
        st, head, body = http10_stream(g.base_url, g.key, model)
        text, framed = content_of(body)
        t.ok(st == 200 and framed and b"chunked" not in head.lower()
             and (want is None or len(text) == want),
             f"HTTP/1.0 client: the {model} stream arrives whole, unchunked",
             f"status {st}, framed {framed}, text bytes {len(text)}, "
             f"head {head[:300]!r}")

    base, proc = h.start_serve(g.db, {"PF_HTTP_CONN_MEMORY": "8192"})
    g.base_url = base
    t.eq(g.chat(good, padded(4500))[0], 200,
         "PF_HTTP_CONN_MEMORY=8192: the 5 KiB header block passes")
    t.eq(raw_status(g.base_url, g.key, padded(9000)), 431,
         "PF_HTTP_CONN_MEMORY=8192: a 9 KiB header block gets 431")
    t.ok(proc.alive(), "that serve is still running")
