#!/usr/bin/env python3
"""Streams end to end: a client that disconnects cancels the upstream
transfer (the mock sees its stream end incomplete instead of completed),
and a slow client applies back-pressure (the upstream pauses while the
client does not read, the gateway's memory stays bounded, and the client
later gets the whole stream).  Faults come from path knobs on the
channels' base URLs; waits are bounds, the assertions are on the mock's
final counters."""
import socket

from harness import (Harness, mock_knobs_url, mock_stats, open_stream,
                     proc_rss_kb, read_until, wait_for)

MESSAGES = [{"role": "user", "content": "hi"}]
SLOW_CHUNKS = 100      # x 100 ms: 10 s if nobody cancels
BIG_CHUNKS = 40000     # x 1 KiB: ~48 MB of events, more than all buffers


def dechunk(raw):
    """The payload of a chunked body (as far as it is complete)."""
    out = bytearray()
    i = 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            break
        size = int(raw[i:j].split(b";")[0] or b"0", 16)
        if size == 0 or j + 2 + size > len(raw):
            break
        out += raw[j + 2:j + 2 + size]
        i = j + 2 + size + 2
    return bytes(out)


with Harness() as h:
    t = h.tap
    slow = h.start_mock()
    big = h.start_mock()
    parked = h.start_mock()

    def prepare(g):
        def add(name, base, model):
            h.admin(g.db, "channel-add", "--name", name, "--type", "openai",
                    "--base-url", base, "--key", "k", "--models", model,
                    "--priority", "10")
        add("slow", mock_knobs_url(slow, chunks=SLOW_CHUNKS,
                                   chunk_delay_ms=100), "slow")
        add("parked", mock_knobs_url(parked, ttfb_ms=1500,
                                     chunks=SLOW_CHUNKS,
                                     chunk_delay_ms=100), "parked")
        add("big", mock_knobs_url(big, chunks=BIG_CHUNKS, chunk_bytes=1024),
            "big")
    g = h.gateway(models="slow,parked,big", prepare=prepare)

    def streams(mock):
        return mock_stats(mock)["streams"]

    def ended(mock):
        s = streams(mock)
        return s["completed"] + s["incomplete"] >= 1

    # --- disconnect after the first event -------------------------------
    s = open_stream(g.base_url, g.key, "slow", MESSAGES)
    first = read_until(s, b'"content":"tok0')
    t.ok(b" 200 " in first.split(b"\r\n", 1)[0]
         and b'"content":"tok0' in first,
         "slow stream: the first content event arrived", first[:300])
    s.close()
    wait_for(lambda: ended(slow), timeout=SLOW_CHUNKS * 0.1 + 10)
    st = mock_stats(slow)
    t.eq((st["streams"]["incomplete"], st["streams"]["completed"],
          st["streams"]["open"]), (1, 0, 0),
         "client hung up: the upstream stream was cut, not completed")
    t.ok(st["chunks_sent"] < SLOW_CHUNKS,
         "client hung up: the upstream stopped early",
         f"chunks_sent {st['chunks_sent']}")

    # --- disconnect before the first byte (connection parked) -----------
    s = open_stream(g.base_url, g.key, "parked", MESSAGES)
    wait_for(lambda: mock_stats(parked)["requests"] >= 1, timeout=10)
    s.close()
    wait_for(lambda: ended(parked), timeout=SLOW_CHUNKS * 0.1 + 12)
    st = mock_stats(parked)
    t.eq((st["requests"], st["streams"]["incomplete"],
          st["streams"]["completed"]), (1, 1, 0),
         "client hung up while waiting for the first byte: upstream cut")

    t.eq(g.chat({"model": "slow", "messages": MESSAGES,
                 "max_tokens": 2})[0], 200,
         "the gateway still serves after the hang-ups")

    # --- slow client: back-pressure -------------------------------------
    rss0 = proc_rss_kb(g.proc)
    s = open_stream(g.base_url, g.key, "big", MESSAGES)
    got = read_until(s, b'"content":"tok1 ', cap=64 * 1024)
    t.ok(b'"content":"tok' in got, "big stream started")
    # stop reading until the upstream is stalled (no progress across a
    # few polls) or done
    last = [-1, 0]

    def stalled():
        n = mock_stats(big)["chunks_sent"]
        last[1] = last[1] + 1 if n == last[0] else 0
        last[0] = n
        return last[1] >= 4 or n >= BIG_CHUNKS

    wait_for(stalled, timeout=60, step=0.3)
    st = mock_stats(big)
    rss1 = proc_rss_kb(g.proc)
    paused = (st["chunks_sent"] < BIG_CHUNKS and st["streams"]["open"] == 1
              and st["streams"]["incomplete"] == 0)
    t.ok(paused, "slow client: the upstream stream is paused, "
         "neither finished nor cut",
             f"chunks_sent {st['chunks_sent']}/{BIG_CHUNKS}, "
             f"streams {st['streams']}")
    t.ok(rss1 - rss0 < 32 * 1024,
         "slow client: serve's memory stays bounded (< 32 MiB growth)",
         f"RSS {rss0} -> {rss1} KiB")
    # now read everything
    data = bytearray(got)
    s.settimeout(30)
    try:
        while True:
            p = s.recv(1 << 20)
            if not p:
                break
            data += p
            if data.endswith(b"\r\n0\r\n\r\n"):  # last chunk
                break
    except (socket.timeout, ConnectionError):
        pass
    s.close()
    # the body without the chunked framing: a chunk boundary may fall
    # anywhere, inside an event too
    body = dechunk(bytes(data[data.find(b"\r\n\r\n") + 4:]))
    n = body.count(b'"content":"tok')
    tail = body[-256:]
    whole = n == BIG_CHUNKS and tail.endswith(b"data: [DONE]\n\n")
    t.ok(whole, "slow client: after resuming it gets the whole "
         "stream (every chunk, [DONE])",
             f"{n}/{BIG_CHUNKS} content events, {len(data)} bytes, "
             f"tail {data[-80:]!r}")
    wait_for(lambda: ended(big), timeout=20)
    t.ok(g.proc.alive(), "serve is still running")
