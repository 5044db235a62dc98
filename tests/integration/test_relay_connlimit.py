#!/usr/bin/env python3
"""The open-file limit caps the client connections, so clients can never
take the descriptors the gateway needs for itself (issue 5's hold stage
at the descriptor limit: the spool failed to open its segment files and
usage events were only in memory; upstream sockets failed with 503).

`serve` starts with an open-file limit of PF_FD_RESERVE (256) + 42, so
it accepts (298 - 256) / 2 = 21 client connections (2 descriptors each:
client and upstream), 10 per HTTP loop.  Then BURST streams are opened
at once, far more than the descriptors would allow without the cap.
Expected: the gateway says so at start (PF-HTTP-CONN-LIMIT conns=21);
the streams are served a batch at a time, the rest waiting in the listen
backlog; every one ends with 200 and [DONE] (no 503), and the log has no
PF-SPOOL-IO (the spool always had its descriptors); the gateway's open
descriptors stayed well under its limit throughout."""
import json
import os
import socket
import threading
import time

from harness import Harness, wait_for

NOFILE = 256 + 42
CONNS = 21
BURST = 300

with Harness() as h:
    t = h.tap
    g = h.gateway(models="slow", mock_args=[
        "--chunks", "10", "--chunk-delay-ms", "50"], serve_nofile=NOFILE)
    host, port = g.base_url.split("//")[1].split("/")[0].split(":")
    body = json.dumps({"model": "slow", "stream": True, "messages": [
        {"role": "user", "content": "hi"}]}).encode()
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
           f"Authorization: Bearer {g.key}\r\n"
           "Content-Type: application/json\r\nConnection: close\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    log = g.proc.output(200000)
    t.ok(f"PF-HTTP-CONN-LIMIT conns={CONNS} nofile={NOFILE}" in log,
         f"at start the gateway says the limit caps it at {CONNS} "
         "connections", log[-600:])
    # the route loads asynchronously: one request through first
    wait_for(lambda: g.chat({"model": "slow", "messages": [
        {"role": "user", "content": "hi"}]})[0] == 200, timeout=20, step=0.2)

    results = [None] * BURST

    def one(i):
        data = b""
        try:
            with socket.create_connection((host, int(port)),
                                          timeout=60) as s:
                s.sendall(req)
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > 1 << 20:
                        break
        except OSError as e:
            results[i] = ("error", str(e))
            return
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        status = line.split(" ")[1] if line.count(" ") >= 2 else "-"
        results[i] = (status, b"data: [DONE]" in data)

    max_fds = [0]
    done = threading.Event()

    def sample():  # the gateway's open descriptors during the burst
        while not done.is_set():
            try:
                n = len(os.listdir(f"/proc/{g.proc.p.pid}/fd"))
            except OSError:
                n = 0
            max_fds[0] = max(max_fds[0], n)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=one, args=(i,))
               for i in range(BURST)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    done.set()
    sampler.join()
    statuses = {}
    for r in results:
        k = r[0] if r else "none"
        statuses[k] = statuses.get(k, 0) + 1
    t.diag(f"{BURST} streams through {CONNS} connections: {statuses}")
    t.eq(statuses, {"200": BURST}, f"all {BURST} streams were answered 200")
    t.ok(all(r is not None and r[1] is True for r in results),
         "every stream ended with [DONE]")
    t.ok(max_fds[0] <= NOFILE - 128,
         "the gateway never came near its open-file limit (the reserve "
         "stayed free)", max_fds[0])
    log = g.proc.output(2000000)
    t.ok("PF-SPOOL-IO" not in log, "no PF-SPOOL-IO: the spool always had "
         "its descriptors")
