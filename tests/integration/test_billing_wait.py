#!/usr/bin/env python3
"""test_billing_wait.py -- a request waiting for the accountant's grant
holds no HTTP thread (ingress/billing.h, ing_bill_wait).

With the accountant unable to answer, more requests wait for a grant than
the ingress has HTTP threads (PF_HTTP_THREADS=2); meanwhile /health and a
user whose credit was already granted are still answered; the waiting
requests end 503 in the API's error format (OpenAI's, Anthropic's on
/v1/messages) when the wait is over; when the accountant answers again,
nothing is charged twice and no request is lost (each one either got 200
and exactly one usage event, or 503 and none).  SIGTERM while the
accountant waits for a lock (its batch, on `tokens`; its durability
marker, on `accountant_durable`; a grant's balance lookup, on `tokens`):
`serve` still exits 0 (the stop cancels the wait after its grace), and a
restart on the same event log and spool charges a served request exactly
once.

Split roles: the accountant is frozen with SIGSTOP (its socket stays up,
nothing is answered) and thawed with SIGCONT.  `serve` (the accountant
runs in-process): the accountant is stalled by a transaction holding an
ACCESS EXCLUSIVE lock on `users` (its grant lookup of a user it has not
seen blocks); the waiting users' keys were looked up before the lock (the
ingress's auth cache), so only the accountant is stuck.  No timing
assertions: "while they wait" is checked as an order (the health answer
came before any waiting request ended)."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BillingSplit, Harness, ParallelRequests,  # noqa
                     TableLock, fetch, unavailable_503, wait_for)

CLIENT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else ""
MSGS = [{"role": "user", "content": "Wait for the grant."}]
THREADS = 2  # PF_HTTP_THREADS
WAITERS = 6  # > THREADS
ENV = {"PF_HTTP_THREADS": str(THREADS), "PF_AUTH_CACHE_TTL_MS": "600000"}


def chat(base, key, model="m", anthropic=False):
    h = {"Authorization": "Bearer " + key}
    body = {"model": model, "messages": MSGS, "max_tokens": 10}
    if anthropic:
        h["anthropic-version"] = "2023-06-01"
        return fetch("POST", base + "/messages", body, h)
    return fetch("POST", base + "/chat/completions", body, h)


def make_users(h, db, prefix, n):
    """n users, each with 100000000 quota and one unlimited key."""
    out = []
    for i in range(n):
        uid = h.admin(db, "user-create", "--username", f"{prefix}{i}",
                      "--quota", "100000000")
        key = h.admin(db, "token-create", "--user", f"{prefix}{i}",
                      "--unlimited")
        out.append((uid, key))
    return out


def events_of(h, db, rid):
    return int(h.scalar(db, "SELECT count(*) FROM usage_events "
                            f"WHERE event_id = '{rid}'"))


def waiters(base, users):
    """One thread per user, each sending one request, the first over
    /v1/messages (ParallelRequests)."""
    return ParallelRequests(chat, [(base, key, "m", i == 0)
                                   for i, (_, key) in enumerate(users)])


def unavailable_shape(resp, anthropic):
    return unavailable_503(resp, anthropic, "Billing")


def check_stop_locked(t, h, db, table, charged):
    """serve stopped while its accountant waits for a lock on table (what
    a served request's charge takes: its batch's, or its durability
    marker's); then restarted on the same directories with the lock gone.
    charged: whether the charge commits before the wait."""
    what = f"serve stop, {table} locked"
    env = dict(ENV, **h.role_dirs())  # kept for the restart
    base, proc = h.start_serve(db, env)
    uid, key = make_users(h, db, "stop" + table, 1)[0]
    st = wait_for(lambda: chat(base, key)[0] == 200, timeout=15, step=0.2)
    t.ok(st, f"{what}: a first request is served (key and credit known "
         "before the lock)")
    lock = TableLock(db, table)
    try:
        st, hd, _ = chat(base, key)
        rid = hd.get("x-request-id", "")
        t.eq(st, 200, f"{what}: a request is served meanwhile")
        rc = proc.stop(wait=60)
        t.eq(rc, 0, f"{what}: SIGTERM while the accountant waits for the "
             "lock: exit 0")
        t.eq(events_of(h, db, rid), int(charged),
             f"{what}: " + ("charged" if charged else "not charged (the "
                            "batch was cancelled)") + " when it stopped")
    finally:
        lock.release()
    base, proc = h.start_serve(db, env)
    got = wait_for(lambda: events_of(h, db, rid) == 1, timeout=30,
                   step=0.2)
    t.ok(got and rid, f"{what}: after a restart the request is charged, "
         "once", (rid, events_of(h, db, rid)))
    bad = h.psql(db, "SELECT u.quota, coalesce(sum(e.cost), 0) "
                     "FROM users u LEFT JOIN usage_events e "
                     "ON e.user_id = u.id AND e.kind = 'usage' "
                     f"WHERE u.id = {uid} GROUP BY u.id, u.quota "
                     "HAVING u.quota <> 100000000 - coalesce(sum(e.cost), 0)")
    t.eq(bad, [], f"{what}: the balance = 100000000 - its ledger")
    t.eq(proc.stop(wait=60), 0, f"{what}: the restarted serve exits 0")


def check_stop_grant_locked(t, h, db):
    """serve stopped while its accountant's grant lookup of a new user's
    token waits for a lock on tokens (the actor's own connection)."""
    what = "serve stop, grant lookup locked"
    base, proc = h.start_serve(db, ENV)
    uid, key = make_users(h, db, "stopgrant", 1)[0]
    t.eq(chat(base, key, model="no-such-model")[0], 404,
         f"{what}: the key is known (no credit asked for yet)")
    lock = TableLock(db, "tokens")
    try:
        st = chat(base, key)[0]
        t.eq(st, 503, f"{what}: a request waits for credit and ends 503")
        rc = proc.stop(wait=60)
        t.eq(rc, 0, f"{what}: SIGTERM while the grant lookup waits for "
             "the lock: exit 0")
    finally:
        lock.release()


def check_wait(t, h, db, base, granted, users, stall, unstall, what):
    """Stalls the accountant, then the checks of the module docstring;
    granted = (user id, key) of a user whose credit was granted before."""
    granted_key = granted[1]
    fresh = make_users(h, db, what + "b", 3)  # for the second round
    stall()
    w = waiters(base, users)
    time.sleep(0.5)  # let them reach the grant wait (not asserted)
    st = fetch("GET", base[:-3] + "/health", timeout=30)[0]
    t.ok(st == 200 and not w.n_done() > 0,
         f"{what}: /health answers while {WAITERS} requests wait for a "
         f"grant on {THREADS} HTTP threads",
         f"health {st}, ended before it: "
         f"{[d.is_set() for d in w.done]}")
    st, hd, _ = chat(base, granted_key)
    t.ok(st == 200 and not w.n_done() > 0,
         f"{what}: a user with granted credit is served meanwhile",
         f"{st}, ended before it: {[d.is_set() for d in w.done]}")
    granted_rid = hd.get("x-request-id", "")
    w.join()
    t.diag(f"{what}: the waiting requests ended after {w.took} s")
    t.ok(unavailable_shape(w.results[0], True),
         f"{what}: the waiting /v1/messages request ends 503 in "
         "Anthropic's error shape", repr(w.results[0])[:400])
    t.ok(all(unavailable_shape(r, False) for r in w.results[1:]),
         f"{what}: the waiting OpenAI requests end 503 "
         "service_unavailable in OpenAI's error shape",
         [(r[0], r[2][:200]) for r in w.results[1:]])
    unstall()
    # the accountant answers again (its late grants included): every
    # waiting user is served now
    served = []
    for uid, key in users:
        r = wait_for(lambda: (lambda x: x if x[0] == 200 else None)(
            chat(base, key)), timeout=30, step=0.2)
        served.append(r[1].get("x-request-id", "") if r else None)
    t.ok(all(served), f"{what}: accountant back: every waiting user is "
         "served", served)
    # a second round: the accountant comes back while they wait (their
    # keys looked up first: the serve stall blocks that lookup too)
    t.eq([chat(base, k, model="no-such-model")[0] for _, k in fresh],
         [404] * len(fresh), f"{what}: the second round's keys are known")
    stall()
    w2 = waiters(base, fresh)
    time.sleep(0.3)
    unstall()
    w2.join()
    ends = [r[0] for r in w2.results]
    t.ok(all(s in (200, 503) for s in ends) and 200 in ends,
         f"{what}: the accountant back during the wait: its requests are "
         "served (or 503 if the wait ended first)", ends)
    rids_ok = [granted_rid] * (st == 200) + [s for s in served if s] \
        + [r[1].get("x-request-id", "") for r in w2.results if r[0] == 200]
    rids_503 = [r[1].get("x-request-id", "") for r in w.results + w2.results
                if r[0] != 200]
    got = wait_for(lambda: all(events_of(h, db, r) == 1 for r in rids_ok),
                   timeout=30, step=0.2)
    t.ok(got and all(rids_ok), f"{what}: every served request has exactly "
         "one usage event", [(r, events_of(h, db, r)) for r in rids_ok])
    t.ok(all(r and events_of(h, db, r) == 0 for r in rids_503),
         f"{what}: the refused requests have none", rids_503)
    t.eq(h.scalar(db, "SELECT count(*) - count(DISTINCT event_id) "
                      "FROM usage_events"), "0",
         f"{what}: no event id twice in the ledger")
    ids = ",".join(str(u) for u, _ in [granted] + users + fresh)
    bad = h.psql(db, "SELECT u.id, u.quota, coalesce(sum(e.cost), 0) "
                     "FROM users u LEFT JOIN usage_events e "
                     "ON e.user_id = u.id AND e.kind = 'usage' "
                     f"WHERE u.id IN ({ids}) GROUP BY u.id, u.quota "
                     "HAVING u.quota <> 100000000 - coalesce(sum(e.cost), 0)")
    t.eq(bad, [], f"{what}: each user's balance = 100000000 - its ledger "
         "(charged once)")


with Harness() as h:
    t = h.tap
    if not os.access(CLIENT, os.X_OK):
        print(f"Bail out! pf-acct-client not found: {CLIENT!r}")
        sys.exit(1)

    # --- split roles: the accountant frozen ---------------------------------
    db, _ = h.priced_db("m")
    granted = make_users(h, db, "granted", 1)[0]
    users = make_users(h, db, "wait", WAITERS)
    sp = BillingSplit(h, db, CLIENT, ENV)
    sp.start_accountant()
    sp.start_worker()
    sp.start_ingress()
    st = wait_for(lambda: chat(sp.base, granted[1])[0] == 200, timeout=15,
                  step=0.2)
    t.ok(st, "split: a first request is served (its credit granted)")

    def freeze():
        sp.acct.p.send_signal(signal.SIGSTOP)

    def thaw():
        sp.acct.p.send_signal(signal.SIGCONT)

    try:
        check_wait(t, h, db, sp.base, granted, users, freeze, thaw, "split")
    finally:
        thaw()

    # --- serve: the accountant stalled on a table lock ----------------------
    lock = []

    def prepare(g):
        g.granted = make_users(h, g.db, "granted", 1)[0]
        g.users = make_users(h, g.db, "wait", WAITERS)

    g = h.gateway(models="m", serve_env=ENV, prepare=prepare)
    st = wait_for(lambda: chat(g.base_url, g.granted[1])[0] == 200,
                  timeout=15, step=0.2)
    t.ok(st, "serve: a first request is served (its credit granted)")
    # the keys' lookups cached: a model nobody serves answers 404 after
    # the key is checked, before any grant is asked for
    looked = [chat(g.base_url, k, model="no-such-model")[0]
              for _, k in g.users]
    t.eq(looked, [404] * WAITERS, "serve: the waiting users' keys are "
         "known to the ingress")

    def stall():
        lock.append(TableLock(g.db, "users"))

    def unstall():
        while lock:
            lock.pop().release()

    try:
        check_wait(t, h, g.db, g.base_url, g.granted, g.users, stall,
                   unstall, "serve")
    finally:
        unstall()
    g.proc.stop(wait=60)
    check_stop_locked(t, h, g.db, "tokens", False)
    check_stop_locked(t, h, g.db, "accountant_durable", True)
    check_stop_grant_locked(t, h, g.db)
