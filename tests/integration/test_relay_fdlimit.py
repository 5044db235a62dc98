#!/usr/bin/env python3
"""Out of descriptors is our failure, not the channel's: a gateway that
cannot open a socket to the upstream (its own open-file limit reached)
must not count that against the channel and auto-disable it, or one
burst above the limit would take a healthy model down for everyone.

`serve` runs with PF_CHANNEL_FAIL_MAX=2; its open-file limit is lowered
(prlimit) to a few descriptors above what it uses idle; then a burst of
streams to a slow mock is opened at once, so that the accepted client
connections use up the descriptors the upstream sockets would need.
Then: some requests did fail (the limit was reached), with 503, the
channel is still enabled (status 1, no PF-CHANNEL-DISABLED), and once the
burst is gone and the limit restored a request is answered 200."""
import os
import resource
import socket
import time

from harness import Harness, wait_for

FAIL_MAX = 2
BURST = 40
SPARE = 10  # descriptors above the idle count

with Harness() as h:
    t = h.tap
    g = h.gateway(models="slow", mock_args=[
        "--chunks", "40", "--chunk-delay-ms", "100"], serve_env={
        "PF_CHANNEL_FAIL_MAX": str(FAIL_MAX),
        "PF_CHANNEL_PROBE_MS": "600000"})
    pid = g.proc.p.pid
    host, port = g.host_port()
    req = g.raw_chat("slow")

    # the route loads asynchronously: one request through first
    wait_for(lambda: g.chat({"model": "slow", "messages": [
        {"role": "user", "content": "hi"}]})[0] == 200, timeout=20, step=0.2)
    idle = len(os.listdir(f"/proc/{pid}/fd"))
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (idle + SPARE, hard))

    socks = []
    for _ in range(BURST):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(req)
        socks.append(s)
    # each gets a head (a stream or an error) or nothing while it waits
    # for a descriptor to be accepted with
    heads = []
    deadline = time.monotonic() + 15
    for s in socks:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            line = s.recv(64).split(b"\r\n", 1)[0].decode("latin-1")
        except (socket.timeout, OSError):
            line = ""
        heads.append(line.split(" ")[1] if line.count(" ") >= 2 else "-")
    counts = {k: heads.count(k) for k in sorted(set(heads))}
    t.diag(f"burst of {BURST} streams with {SPARE} spare descriptors: "
           f"statuses {counts}")
    failed = sum(1 for x in heads if x not in ("200", "-"))
    t.ok(failed >= FAIL_MAX,
         f"the descriptor limit was reached: at least {FAIL_MAX} requests "
         "failed on our side", counts)
    t.eq(sorted(set(x for x in heads if x not in ("200", "-"))), ["503"],
         "they were answered 503 (ours, retry later), not 502 (upstream)")
    status = h.scalar(g.db, "SELECT status FROM channels WHERE id = "
                      + g.channel_id)
    t.eq(status, "1", "the channel is still enabled (our failure, not its)")
    t.ok("PF-CHANNEL-DISABLED" not in g.proc.output(200000),
         "no PF-CHANNEL-DISABLED in the gateway's log")

    for s in socks:
        s.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    ok = wait_for(lambda: g.chat({"model": "slow", "messages": [
        {"role": "user", "content": "hi"}]})[0] == 200, timeout=20,
        step=0.2)
    t.ok(ok, "after the burst, with the limit restored: 200")
