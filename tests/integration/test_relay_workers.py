#!/usr/bin/env python3
"""Separate processes: one `planktonfly ingress` and two `planktonfly
worker`s over ipc://.  Requests spread over both workers; a client that
hangs up cancels the upstream transfer on whichever worker runs it
(targeted cancel: relay.head names the worker thread's control address);
a killed worker leaves the other serving; when the last worker is killed,
a stream it ran and a request waiting for its first byte end at once as
worker_lost (not at the deadline).  The hang-ups are repeated against
`serve` in its fused layout (PF_HTTP_THREADS=1 and 2 loops, each running
its HTTP daemon and transfers) and with PF_SERVE_FUSED=0
(PF_WORKER_THREADS=1 and 2 transfer threads behind the HTTP threads)."""
import atexit
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import (Harness, fetch, free_port, mock_knobs_url, mock_stats,
                     open_stream, read_until, wait_for)

MESSAGES = [{"role": "user", "content": "hi"}]
STREAMS = 6
SLOW_CHUNKS = 100  # x 100 ms


with Harness() as h:
    t = h.tap
    tmp = tempfile.mkdtemp(prefix="pf-it-workers-")
    atexit.register(shutil.rmtree, tmp, True)
    w_urls = [f"ipc://{tmp}/w{i}" for i in (1, 2)]
    reply = f"ipc://{tmp}/reply"
    db = h.new_db()
    h.migrate(db)
    mock = h.start_mock()
    slow = h.start_mock()
    h.admin(db, "user-create", "--username", "alice", "--quota",
            "500000000")
    key = h.admin(db, "token-create", "--user", "alice", "--unlimited")
    h.admin(db, "channel-add", "--name", "fast", "--type", "openai",
            "--base-url", mock, "--key", "k", "--models", "fast")
    h.admin(db, "channel-add", "--name", "hang", "--type", "openai",
            "--base-url", mock_knobs_url(slow, ttfb_ms=60000),
            "--key", "k", "--models", "hang")
    h.admin(db, "channel-add", "--name", "slow", "--type", "openai",
            "--base-url", mock_knobs_url(slow, chunks=SLOW_CHUNKS,
                                         chunk_delay_ms=100),
            "--key", "k", "--models", "slow")
    for m in ("fast", "slow", "hang"):
        h.admin(db, "price-set", "--model", m, "--input", "0.5",
                "--output", "1.5")

    acct_env, acct = h.start_accountant(db)
    workers = []
    for u in w_urls:
        workers.append(h.start("worker", ["worker"], h.env(db, {
            "PF_WORKER_URL": u}), lambda u=u: os.path.exists(
                u[len("ipc://"):])))

    def start_ingress(port):
        base = f"http://127.0.0.1:{port}"
        # a request pushed to a worker in the instant it is killed is lost
        # in that worker's socket; the ingress answers it 504 worker_lost at
        # deadline + 5 s -- keep that inside this test's 30 s fetch timeout
        env = h.env(db, {"PF_LISTEN": f"127.0.0.1:{port}",
                         "PF_WORKER_URL": ",".join(w_urls),
                         "PF_REPLY_URL": reply,
                         "PF_TOTAL_TIMEOUT_MS": "15000",
                         "PF_ACCOUNTANT_URL": acct_env["PF_ACCOUNTANT_URL"],
                         "PF_ACCOUNTANT_PUB_URL":
                             acct_env["PF_ACCOUNTANT_PUB_URL"],
                         "PF_SPOOL_DIR": os.path.join(tmp, "spool")})
        proc = h.start("ingress", ["ingress"], env, lambda: fetch(
            "GET", base + "/health", timeout=2)[0] == 200)
        return base + "/v1", proc
    base_url, ingress = h.start_on_free_port(start_ingress)
    auth = {"Authorization": "Bearer " + key}

    # `planktonfly ROLE` runs the role's own executable (linking only the
    # role's libraries) when it lies beside planktonfly: same process,
    # now planktonfly-ROLE (cmd/main.c)
    bindir = os.path.dirname(h.binary)
    for role, proc in (("accountant", acct), ("worker", workers[0]),
                       ("ingress", ingress)):
        want = "planktonfly-" + role
        if not os.access(os.path.join(bindir, want), os.X_OK):
            want = os.path.basename(h.binary)
        t.eq(os.path.basename(os.readlink(f"/proc/{proc.p.pid}/exe")), want,
             f"planktonfly {role} runs as {want}")

    def chat(model="fast", base=None, timeout=30):
        return fetch("POST", (base or base_url) + "/chat/completions",
                     {"model": model, "messages": MESSAGES}, auth,
                     timeout=timeout)[0]

    # both workers connected: a request gets through
    wait_for(lambda: chat() == 200, timeout=15, step=0.2)
    codes = [chat() for _ in range(8)]
    t.eq(codes, [200] * 8, "ingress + 2 workers over ipc://: 8 x 200")

    # hang up on several slow streams at once; with two workers some of
    # them run on each, and every cancel must reach its own worker
    def hang_ups(base, k, mock, model, what):
        socks = [open_stream(base, k, model, MESSAGES) for _ in range(STREAMS)]
        firsts = [read_until(s, b'"content":"tok0') for s in socks]
        t.ok(all(b'"content":"tok0' in f for f in firsts),
             f"{what}: {STREAMS} slow streams started")
        # side by side: none waited for another to finish upstream (the
        # worker once queued them behind one another: CURLOPT_PIPEWAIT)
        st = mock_stats(mock)["streams"]
        t.ok(st["completed"] == 0,
             f"{what}: the streams run upstream at the same time",
             f"mock streams {st}")
        for s in socks:
            s.close()

        def ended():
            st = mock_stats(mock)["streams"]
            return st["completed"] + st["incomplete"] >= STREAMS

        wait_for(ended, timeout=SLOW_CHUNKS * 0.1 + 15, step=0.2)
        st = mock_stats(mock)["streams"]
        t.ok((st["incomplete"], st["completed"]) == (STREAMS, 0),
             f"{what}: every hung-up stream was cancelled upstream",
             f"mock streams {st}")

    hang_ups(base_url, key, slow, "slow", "2 worker processes")

    # requests pushed to a worker that dies before it reads them: worker 0
    # is frozen (SIGSTOP; its socket still takes what is pushed to it)
    # while requests go round-robin over both, then SIGKILLed.  The ingress
    # knows which worker each request went to (a push socket per worker),
    # so the lost ones end at once as 504 worker_lost -- not at deadline +
    # 5 s (20 s; the client waits at most 10 s) -- billed nothing, once.
    workers[0].p.send_signal(signal.SIGSTOP)
    pool = concurrent.futures.ThreadPoolExecutor(6)
    futs = [pool.submit(lambda: fetch(
        "POST", base_url + "/chat/completions",
        {"model": "fast", "messages": MESSAGES}, auth, timeout=10))
        for _ in range(6)]
    served_before = mock_stats(mock)["requests"]
    wait_for(lambda: mock_stats(mock)["requests"] >= served_before + 1,
             timeout=5, step=0.05)
    time.sleep(0.3)  # the rest pushed (not asserted)
    workers[0].p.send_signal(signal.SIGKILL)
    workers[0].p.wait(10)
    lost = []
    for f in futs:
        try:
            lost.append(f.result())
        except (socket.timeout, TimeoutError) as e:
            lost.append((repr(e), {}, b""))
    pool.shutdown()
    codes = [r[0] for r in lost]
    t.ok(all(c in (200, 504) for c in codes) and 504 in codes,
         "requests pushed to a worker killed before it read them: 504 at "
         "once (the others 200)", codes)
    t.ok(all(b"worker_lost" in r[2] for r in lost if r[0] == 504),
         "... with code worker_lost", [r[2][:200] for r in lost])

    def event_rows(rid):
        return h.psql(db, "SELECT end_reason, cost FROM usage_events "
                          f"WHERE event_id = '{rid}'")

    rids = [(r[0], r[1].get("x-request-id", "")) for r in lost]
    wait_for(lambda: all(event_rows(rid) for _, rid in rids), timeout=20,
             step=0.2)
    evs = [(c, event_rows(rid)) for c, rid in rids]
    t.ok(all(len(rows) == 1 and (rows[0][0], int(rows[0][1]) > 0)
             == (("worker_lost", False) if c == 504 else ("done", True))
             for c, rows in evs),
         "each has one usage event: the lost ones worker_lost with cost 0",
         evs)

    # one worker dies: the other keeps serving
    codes = [chat() for _ in range(6)]
    t.ok(codes.count(200) >= 4 and all(c in (200, 503, 504)
                                        for c in codes),
         "a killed worker: the other one serves (no hang)", codes)
    wait_for(lambda: chat() == 200, timeout=10, step=0.2)
    codes = [chat() for _ in range(6)]
    t.eq(codes, [200] * 6, "after the kill: every request served")
    t.ok(ingress.alive() and workers[1].alive(),
         "ingress and the other worker still run")

    # a second ingress on the first one's PF_REPLY_URL does not start.
    # Before it fails, NNG's check for a stale ipc:// socket connects to
    # the first one's reply listener and closes at once: with NNG 1.5.2
    # alone that listener accepted no worker again (issue #1518;
    # common/nngfix.c).  Worker 1 is then replaced, and the new one must
    # get its replies to the first ingress.
    second = h.env(db, {"PF_LISTEN": f"127.0.0.1:{free_port()}",
                        "PF_WORKER_URL": ",".join(w_urls),
                        "PF_REPLY_URL": reply,
                        "PF_ACCOUNTANT_URL": acct_env["PF_ACCOUNTANT_URL"],
                        "PF_ACCOUNTANT_PUB_URL":
                            acct_env["PF_ACCOUNTANT_PUB_URL"],
                        "PF_SPOOL_DIR": os.path.join(tmp, "spool2")})
    r = subprocess.run([h.binary, "ingress"], env=second,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode != 0 and "PF-RELAY-LISTEN" in r.stderr
         and "another ingress" in r.stderr,
         "a second ingress on the same PF_REPLY_URL refuses to start and "
         "says why", r.stderr[-400:])
    workers[1].p.send_signal(signal.SIGKILL)
    workers[1].p.wait(10)
    workers[1] = h.start("worker", ["worker"], h.env(db, {
        "PF_WORKER_URL": w_urls[1]}), lambda: os.path.exists(
            w_urls[1][len("ipc://"):]))

    def quick_chat():
        try:
            return chat(timeout=5)
        except (socket.timeout, TimeoutError) as e:
            return repr(e)

    wait_for(lambda: quick_chat() == 200, timeout=15, step=0.2)
    codes = [quick_chat() for _ in range(6)]
    t.eq(codes, [200] * 6, "... and the first ingress still hears a worker "
         "that connects afterwards")

    # with a PF_REPLY_URL of its own, a second ingress starts beside the
    # first (a handover, docs/operating.md) and the same worker answers
    # both
    second["PF_REPLY_URL"] = f"ipc://{tmp}/reply2"

    def start_second(port):
        base = f"http://127.0.0.1:{port}"
        proc = h.start("ingress", ["ingress"],
                       dict(second, PF_LISTEN=f"127.0.0.1:{port}"),
                       lambda: fetch("GET", base + "/health",
                                     timeout=2)[0] == 200)
        return base + "/v1", proc
    base2, ingress2 = h.start_on_free_port(start_second)
    codes = [chat(base=b, timeout=10) for b in (base_url, base2)
             for _ in range(3)]
    t.eq(codes, [200] * 6, "a second ingress with a PF_REPLY_URL of its own "
         "serves beside the first, through the same worker")
    ingress2.stop()

    # the last worker dies while it runs a stream (its head came) and a
    # request still waiting for its first byte: the ingress sees the
    # worker's pipes drop and ends both as worker_lost at once.  The
    # deadline is 15 s away (+ 5 s grace); the client waits at most 10 s.
    s = open_stream(base_url, key, "slow", MESSAGES)
    s.settimeout(10)
    first = read_until(s, b'"content":"tok0')
    t.ok(b'"content":"tok0' in first, "last worker: a slow stream runs")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    hung = pool.submit(lambda: fetch(
        "POST", base_url + "/chat/completions",
        {"model": "hang", "messages": MESSAGES}, auth, timeout=10))
    wait_for(lambda: mock_stats(slow)["requests"] >= 1 + STREAMS + 1,
             timeout=10, step=0.1)
    workers[1].p.send_signal(signal.SIGKILL)
    workers[1].p.wait(10)
    try:
        rest = read_until(s, b"\r\n0\r\n\r\n")
        ended = True
    except socket.timeout:
        rest, ended = b"", False
    s.close()
    # an errored stream is cut: the connection closes without the last
    # chunk
    t.ok(ended and not rest.endswith(b"\r\n0\r\n\r\n"),
         "last worker killed mid-stream: the stream is cut at once",
         rest[-300:])
    try:
        st = hung.result()[0]
    except (socket.timeout, TimeoutError) as e:
        st = repr(e)
    pool.shutdown()
    t.eq(st, 504, "last worker killed before the first byte: 504 at once")

    # the same hang-ups against serve: fused loops, and HTTP threads
    # handing requests to one or two transfer threads
    layouts = [{"PF_HTTP_THREADS": "1"}, {"PF_HTTP_THREADS": "2"},
               {"PF_SERVE_FUSED": "0", "PF_WORKER_THREADS": "1"},
               {"PF_SERVE_FUSED": "0", "PF_WORKER_THREADS": "2"}]
    for threads, env in enumerate(layouts):
        slow2 = h.start_mock()
        h.admin(db, "channel-add", "--name", f"slow-t{threads}", "--type",
                "openai", "--base-url",
                mock_knobs_url(slow2, chunks=SLOW_CHUNKS,
                               chunk_delay_ms=100),
                "--key", "k", "--models", f"slow{threads}",
                "--priority", "10")
        h.admin(db, "price-set", "--model", f"slow{threads}", "--input",
                "0.5", "--output", "1.5")
        serve_url, serve = h.start_serve(db, env)
        hang_ups(serve_url, key, slow2, f"slow{threads}",
                 "serve, " + " ".join(f"{k}={v}" for k, v in env.items()))
        serve.stop()
