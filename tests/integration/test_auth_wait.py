#!/usr/bin/env python3
"""test_auth_wait.py -- a request whose API key is not cached waits for its
lookup without holding an HTTP thread (ingress/auth.h, ing_auth_wait).

The key lookup is stalled by a transaction holding an ACCESS EXCLUSIVE
lock on `tokens`.  Then:
- more requests with uncached keys wait than the ingress has HTTP threads
  (PF_HTTP_THREADS=2), yet /health and a request with a cached key are
  answered before any waiting one ends; when the lock is released the
  waiting valid keys are served (200) and the invalid ones get 401;
- with the lock held past the lookup's deadline (PF_AUTH_WAIT_MS) the
  waiting requests end 503 in the API's error shape (OpenAI's, Anthropic's
  on /v1/messages), and the key is not cached as a denial;
- a flood of distinct unknown keys beyond PF_AUTH_PENDING_MAX gets 503 at
  once for the excess while the others still wait;
- SIGTERM while requests wait for their key: the ingress exits 0 and every
  waiting request ends (no connection stays parked).
Run against `serve` and the split roles (ingress, worker, accountant).
No timing assertions: "while they wait" is checked as an order."""
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BillingSplit, Harness, ParallelRequests,  # noqa
                     TableLock, fetch, unavailable_503, wait_for)

MSGS = [{"role": "user", "content": "Wait for the key."}]
THREADS = 2  # PF_HTTP_THREADS
VALID = 4
INVALID = 2  # VALID + INVALID > THREADS
PENDING_MAX = 128  # PF_AUTH_PENDING_MAX (common/limits.h)
EXCESS = 40
ENV = {"PF_HTTP_THREADS": str(THREADS), "PF_AUTH_CACHE_TTL_MS": "600000"}


def chat(base, key, model="m", anthropic=False, timeout=60):
    h = {"Authorization": "Bearer " + key}
    body = {"model": model, "messages": MSGS, "max_tokens": 10}
    if anthropic:
        h["anthropic-version"] = "2023-06-01"
        return fetch("POST", base + "/messages", body, h, timeout=timeout)
    return fetch("POST", base + "/chat/completions", body, h,
                 timeout=timeout)


def status(fn):
    """fn()'s status, 0 when it failed (a timeout: the old blocking
    lookup held every HTTP thread)."""
    try:
        return fn()[0]
    except OSError:
        return 0


def random_key():
    return "sk-" + secrets.token_hex(20)


def make_users(h, db, prefix, n):
    """n users, each with 100000000 quota and one unlimited key."""
    out = []
    for i in range(n):
        h.admin(db, "user-create", "--username", f"{prefix}{i}",
                "--quota", "100000000")
        out.append(h.admin(db, "token-create", "--user", f"{prefix}{i}",
                           "--unlimited"))
    return out


def requests(base, keys, anthropic=()):
    """One thread per key, each sending one request (ParallelRequests)."""
    return ParallelRequests(chat, [(base, k, "m", i in anthropic)
                                   for i, k in enumerate(keys)])


def unavailable_shape(resp, anthropic):
    return unavailable_503(resp, anthropic, "Authentication")


def check_stop(t, db, base, proc, what):
    """SIGTERM with lookups waiting on the lock."""
    lock = TableLock(db, "tokens")
    try:
        w = requests(base, [random_key() for _ in range(4)])
        time.sleep(0.5)  # let them reach the lookup (not asserted)
        rc = proc.stop(wait=60)
        w.join()
        t.eq(rc, 0, f"{what}: SIGTERM with waiting lookups: exit 0")
        t.ok(all(d.is_set() for d in w.done)
             and all(r[0] in (0, 503) for r in w.results),
             f"{what}: and every waiting request ended (503 or closed)",
             [r[0] for r in w.results if r is not None])
        out = proc.output(100000)
        t.ok("Sanitizer" not in out and "runtime error" not in out,
             f"{what}: no sanitizer report", out[-3000:])
    finally:
        lock.release()


def check(t, h, db, base, what):
    cached = make_users(h, db, what + "c", 1)[0]
    valid = make_users(h, db, what + "v", VALID)
    late = make_users(h, db, what + "l", 2)
    t.eq(chat(base, cached)[0], 200,
         f"{what}: the cached key is served (looked up, credit granted)")
    locks = []
    try:
        # --- round 1: the lock is released while they wait -------------
        locks.append(TableLock(db, "tokens"))
        keys = valid + [random_key() for _ in range(INVALID)]
        w = requests(base, keys)
        time.sleep(0.5)  # let them reach the lookup (not asserted)
        st = status(lambda: fetch("GET", base[:-3] + "/health",
                                  timeout=30))
        t.ok(st == 200 and w.n_done() == 0,
             f"{what}: /health answers while {len(keys)} requests wait "
             f"for their key on {THREADS} HTTP threads",
             f"health {st}, ended before it: {w.n_done()}")
        st = status(lambda: chat(base, cached, timeout=30))
        t.ok(st == 200 and w.n_done() == 0,
             f"{what}: a request with a cached key is served meanwhile",
             f"{st}, ended before it: {w.n_done()}")
        locks.pop().release()
        w.join()
        got = [r[0] for r in w.results]
        t.eq(got, [200] * VALID + [401] * INVALID,
             f"{what}: lock released: the waiting valid keys are served, "
             "the invalid ones get 401")

        # --- round 2: the lock outlasts the lookup's deadline ----------
        locks.append(TableLock(db, "tokens"))
        w = requests(base, [late[0], random_key(), late[0]],
                     anthropic=(2,))
        w.join()
        t.ok(all(unavailable_shape(r, False) for r in w.results[:2]),
             f"{what}: a lookup past its deadline ends 503 in OpenAI's "
             "error shape", [(r[0], r[2][:200]) for r in w.results[:2]])
        t.ok(unavailable_shape(w.results[2], True),
             f"{what}: and in Anthropic's on /v1/messages",
             repr(w.results[2])[:300])
        locks.pop().release()
        st = wait_for(lambda: chat(base, late[0])[0] == 200, timeout=30,
                      step=0.2)
        t.ok(st, f"{what}: lock released: that key is served (the timeout "
             "was not cached as a denial)")

        # --- round 3: a flood of unknown keys beyond the cap -----------
        locks.append(TableLock(db, "tokens"))
        n = PENDING_MAX + EXCESS
        w = requests(base, [random_key() for _ in range(n)])
        enough = wait_for(lambda: w.n_done() >= EXCESS, timeout=60,
                          step=0.02)
        ended = w.n_done()
        quick = [r[0] for r in w.results if r is not None]
        t.ok(enough and ended < n,
             f"{what}: of {n} distinct unknown keys, the ones beyond "
             f"the cap end while the others still wait",
             f"ended {ended} of {n}")
        t.ok(len(quick) >= EXCESS and all(s == 503 for s in quick),
             f"{what}: those get 503 at once", quick[:20])
        st = status(lambda: fetch("GET", base[:-3] + "/health",
                                  timeout=30))
        t.ok(st == 200 and w.n_done() < n,
             f"{what}: /health answers during the flood",
             f"health {st}, ended {w.n_done()}")
        locks.pop().release()
        w.join()
        got = [r[0] for r in w.results]
        t.ok(all(s in (401, 503) for s in got) and got.count(503) >= EXCESS,
             f"{what}: every flooded request ended (401, or 503)",
             {s: got.count(s) for s in set(got)})
        st = wait_for(lambda: chat(base, late[1])[0] == 200, timeout=30,
                      step=0.2)
        t.ok(st, f"{what}: after the flood a new key is served")
    finally:
        while locks:
            locks.pop().release()


with Harness() as h:
    t = h.tap
    g = h.gateway(models="m", serve_env=ENV)
    check(t, h, g.db, g.base_url, "serve")
    check_stop(t, g.db, g.base_url, g.proc, "serve")

    db, _ = h.priced_db("m")
    sp = BillingSplit(h, db, "", ENV)
    sp.start_accountant()
    sp.start_worker()
    sp.start_ingress()
    check(t, h, db, sp.base, "split")
    check_stop(t, db, sp.base, sp.ingress, "split")
