#!/usr/bin/env python3
"""PF_LISTEN is not shared by accident: a second gateway on a port in use
fails to start naming the address, and the first keeps serving.  With
PF_LISTEN_REUSEPORT=1 on both, two start side by side, and the old one,
draining after SIGTERM, leaves the port to the new one (a handover).  A
gateway restarted on its port right away starts although the port still
has a connection of the previous process in TIME_WAIT."""
import http.client
import json
import re
import signal
import socket
import subprocess
import time

from harness import Harness, Proc, fetch

READY = "PF-SERVE-READY"


def time_wait_on(port):
    """Sockets in TIME_WAIT with local port `port` (/proc/net/tcp{,6})."""
    return sockets_on(port, "06")


def sockets_on(port, want):
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    local, state = cols[1], cols[3]
                    if int(local.rsplit(":", 1)[1], 16) == port \
                            and state == want:
                        n += 1
        except OSError:
            pass
    return n


def listening_on(port):
    """Listening TCP sockets on `port` (/proc/net/tcp{,6})."""
    return sockets_on(port, "0A")


with Harness() as h:
    t = h.tap
    g = h.gateway()
    port = int(g.base_url.rsplit(":", 1)[1].split("/")[0])
    listen = f"127.0.0.1:{port}"
    health = f"http://{listen}/health"

    def serve_env(extra=None):
        return h.env(g.db, dict({"PF_LISTEN": listen}, **h.role_dirs(),
                                **(extra or {})))

    def _start(name, extra):
        """serve on `listen`, ready once it logged READY (/health may be
        answered by another serve on the port); None if it exited."""
        proc = Proc(name, [h.binary, "serve"], serve_env(extra))
        h.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if READY in proc.output(100000):
                return proc
            if not proc.alive():
                t.diag(f"{name} exited with {proc.p.returncode}: "
                       f"{proc.output(800)}")
                return None
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready:\n{proc.output()}")

    def start_any(name, listen_at):
        """serve on listen_at (port 0: the kernel picks); returns (Proc,
        the port from its READY line) or (None, 0)."""
        env = h.env(g.db, dict({"PF_LISTEN": listen_at}, **h.role_dirs()))
        proc = Proc(name, [h.binary, "serve"], env)
        h.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(READY + r" listen=\S+ port=(\d+)",
                          proc.output(100000))
            if m:
                return proc, int(m.group(1))
            if not proc.alive():
                t.diag(f"{name}: {proc.output(800)}")
                return None, 0
            time.sleep(0.05)
        return None, 0

    def second_fails(extra, desc):
        proc = Proc("serve-second", [h.binary, "serve"], serve_env(extra))
        h.procs.append(proc)
        try:
            proc.p.wait(60)
        except subprocess.TimeoutExpired:
            pass
        out = proc.output(100000)
        t.ok(not proc.alive() and proc.p.returncode != 0,
             f"{desc}: exits non-zero",
             f"rc={proc.p.returncode} {out[-800:]!r}")
        proc.stop()
        t.ok(f"PF_LISTEN {listen}: address already in use" in out
             and "PF_LISTEN_REUSEPORT=1" in out,
             f"{desc}: the error names the address and the way out",
             out[-800:])
        for line in out.splitlines():
            if "PF-HTTP-LISTEN" in line:
                t.diag(line)

    # --- port 0 and IPv6 (the socket is ours, not libmicrohttpd's) -----
    p0, p0port = start_any("serve-port0", "127.0.0.1:0")
    t.ok(p0 is not None and p0port != 0
         and fetch("GET", f"http://127.0.0.1:{p0port}/health",
                   timeout=5)[0] == 200,
         "PF_LISTEN=127.0.0.1:0: READY names the port the kernel chose, "
         "which answers /health", f"port {p0port}")
    if p0 is not None:
        p0.stop()
    try:
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", 0))
        have_v6 = True
    except OSError:
        have_v6 = False
    if have_v6:
        p6, p6port = start_any("serve-v6", "[::1]:0")
        t.ok(p6 is not None and p6port != 0
             and fetch("GET", f"http://[::1]:{p6port}/health",
                       timeout=5)[0] == 200,
             "PF_LISTEN=[::1]:0 serves /health over IPv6", f"port {p6port}")
        if p6 is not None:
            p6.stop()
    else:
        t.ok(True, "# SKIP no IPv6 loopback")

    # --- default: a second gateway on the port fails ---------------------
    second_fails(None, "second serve on a port in use")
    t.ok(g.proc.alive(), "the first serve still runs")
    t.eq(fetch("GET", health, timeout=5)[0], 200,
         "the first serve still answers /health")
    # opting in on one side only is not enough
    second_fails({"PF_LISTEN_REUSEPORT": "1"},
                 "second serve with PF_LISTEN_REUSEPORT=1 beside one "
                 "without")
    t.ok(g.proc.alive(), "the first serve still runs after that")

    # --- a restart right away: TIME_WAIT does not block the bind ---------
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    resp.read()
    t.eq(resp.status, 200, "a keep-alive connection to the first serve")
    t.eq(g.proc.stop(), 0, "the first serve stops on SIGTERM with 0")
    # the server closed first; our close completes its TIME_WAIT side
    conn.sock.settimeout(10)
    t.eq(conn.sock.recv(1), b"", "the stopped serve closed the connection")
    conn.close()
    t.ok(time_wait_on(port) > 0,
         "the port has a connection in TIME_WAIT (so the restart tests "
         "SO_REUSEADDR)", f"port {port}")
    a = _start("serve-restart", None)
    t.ok(a is not None, "serve restarted on the port right away")
    if a is not None:
        t.eq(fetch("GET", health, timeout=5)[0], 200,
             "the restarted serve answers /health")
        t.eq(a.stop(), 0, "the restarted serve stops with 0")

    # --- PF_LISTEN_REUSEPORT=1 on both: a handover ----------------------
    old = _start("serve-old", {"PF_LISTEN_REUSEPORT": "1"})
    # a stream in flight at the old serve (alone on the port now) that
    # hangs until we close it, so the old one drains while we look
    held = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    held.request("POST", "/v1/chat/completions", json.dumps({
        "model": "mock-gpt", "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}),
        {"Authorization": "Bearer " + g.key,
         "Content-Type": "application/json",
         "x-mock-hang-after": "1", "x-mock-hang-ms": "30000"})
    held_resp = held.getresponse()
    t.eq(held_resp.status, 200, "a stream in flight at the old serve")
    new = _start("serve-new", {"PF_LISTEN_REUSEPORT": "1"})
    t.ok(old is not None and new is not None and old.alive()
         and new.alive() and listening_on(port) == 2,
         "with PF_LISTEN_REUSEPORT=1 on both, both listen on the port",
         f"listening sockets: {listening_on(port)}")
    if old is not None and new is not None:
        old.p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while listening_on(port) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        t.eq(listening_on(port), 1,
             "the draining old serve closed its listening socket")
        codes = [fetch("GET", health, timeout=5)[0] for _ in range(16)]
        t.eq(codes, [200] * 16,
             "16 new connections during the drain: all answered by the "
             "new serve (none 503 from the draining one)")
        t.ok(old.alive(), "the old serve is still draining its stream")
        held.close()
        try:
            rc = old.p.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        t.eq(rc, 0, "the old serve exits 0 once its stream is gone")
        t.ok(new.alive(), "the new serve still runs")
        codes = [fetch("GET", health, timeout=5)[0] for _ in range(8)]
        t.eq(codes, [200] * 8, "after the handover /health answers 200")
        # restart with the opt-in, right away
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        conn.getresponse().read()
        t.eq(new.stop(), 0, "the new serve stops with 0")
        conn.sock.settimeout(10)
        conn.sock.recv(1)
        conn.close()
        again = _start("serve-again", {"PF_LISTEN_REUSEPORT": "1"})
        t.ok(again is not None,
             "a serve with PF_LISTEN_REUSEPORT=1 restarts on the port "
             "right away")
        if again is not None:
            again.stop()
