#!/usr/bin/env python3
"""A stop is never held up by a table lock: `serve`'s channel reloader
(pf-routes) reads `channels`, and its health thread (pf-health) writes a
failing channel's status there.  Both ran blocking statements that
nothing cancelled, so a lock on `channels` (a migration, an admin's
transaction) held an ingress's SIGTERM forever: the rolling restart of
docs/operating.md hung.

Here `serve` reloads every 200 ms and disables a channel after one
failure; a psql session takes ACCESS EXCLUSIVE on `channels`; a request to
a channel answering 500 makes pf-health try its UPDATE behind the lock,
and the next reload blocks as well.  Then SIGTERM: the gateway cancels
the two statements after its 1 s grace and exits 0
(PF-DB-STOP-CANCEL in its log).  The bound on the exit is generous (the
harness's 30 s); it only tells "ends" from "hangs"."""
import os
import signal
import time

from harness import Harness, TableLock, mock_knobs_url, wait_for

MESSAGES = [{"role": "user", "content": "hi"}]

with Harness() as h:
    t = h.tap
    bad = h.start_mock()

    def prepare(g):
        h.admin(g.db, "channel-add", "--name", "bad", "--type", "openai",
                "--base-url", mock_knobs_url(bad, status=500), "--key", "k",
                "--models", "bad", "--priority", "10")

    g = h.gateway(models="bad", prepare=prepare, serve_env={
        "PF_CHANNEL_FAIL_MAX": "1",
        "PF_CHANNEL_PROBE_MS": "600000",
        "PF_CHANNEL_REFRESH_MS": "200"})
    lock = TableLock(g.db, "channels")
    try:
        # served by the failing channel (priority 10): pf-health queues
        # its auto-disable, an UPDATE that waits behind the lock
        st = g.chat({"model": "bad", "messages": MESSAGES})[0]
        t.diag(f"request to the failing channel: {st}")
        time.sleep(1.0)  # reloads are stuck behind the lock by now
        blocked = h.scalar(
            g.db, "SELECT count(*) FROM pg_stat_activity WHERE "
            "wait_event_type = 'Lock' AND application_name = "
            "'planktonfly-ingress'")
        t.ok(int(blocked or 0) >= 1,
             "a statement of the gateway waits for the lock", blocked)
        code = g.proc.stop(signal.SIGTERM, wait=30)
        t.eq(code, 0, "SIGTERM: the gateway exits 0 despite the lock")
        t.ok("PF-DB-STOP-CANCEL" in g.proc.output(200000),
             "it said it cancelled a statement (PF-DB-STOP-CANCEL)")
    finally:
        lock.release()
    # a backend ends a moment after its client has gone: wait for it
    left = lambda: h.scalar(  # noqa: E731
        g.db, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
        "current_database() AND application_name = 'planktonfly-ingress'")
    wait_for(lambda: left() == "0", timeout=20, step=0.2)
    t.eq(left(), "0", "no session of the gateway is left")
