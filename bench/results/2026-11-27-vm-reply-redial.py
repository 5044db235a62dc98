#!/usr/bin/env python3
"""How long requests wait after a role restarts.  Split roles over ipc://
through the integration harness; run it like an integration test:

    PF_TEST_DATABASE_URL=... PF_TEST_REDIS_URL=... ROLE=ingress \\
        ROUNDS=20 python3 bench/results/2026-11-27-vm-reply-redial.py \\
        PLANKTONFLY

Each round SIGKILLs ROLE and starts it again (the other roles keep
running):
- ingress: once the new ingress answers /health, times its first request
  and the one after;
- worker or accountant: down DOWN_S seconds (1), then, once the new one
  is up, sends requests until one answers 200: the time that took and the
  errors before it.  For the accountant each round uses a new token, so
  its first request needs a grant from the new accountant.

2026-11-27-vm-reply-redial.md has the numbers."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "integration"))
from harness import BillingSplit as Split, Harness, fetch  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "20"))
ROLE = os.environ.get("ROLE", "ingress")
DOWN_S = float(os.environ.get("DOWN_S", "1"))

with Harness() as h:
    db = h.new_db()
    h.migrate(db)
    mock = h.start_mock()
    h.admin(db, "channel-add", "--name", "m", "--type", "openai",
            "--base-url", mock, "--key", "k", "--models", "m")
    h.admin(db, "price-set", "--model", "m", "--input", "0.5",
            "--output", "1.5")
    h.admin(db, "user-create", "--username", "a", "--quota", "100000000")
    sp = Split(h, db, "")
    sp.start_accountant()
    sp.start_worker()
    sp.start_ingress()
    body = json.dumps({"model": "m", "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]})

    def post(key):
        t0 = time.monotonic()
        st = fetch("POST", sp.base + "/chat/completions", body.encode(),
                   {"Authorization": "Bearer " + key,
                    "Content-Type": "application/json"})[0]
        return st, (time.monotonic() - t0) * 1000

    key = h.admin(db, "token-create", "--user", "a", "--unlimited")
    post(key)
    res = []
    for r in range(ROUNDS):
        if ROLE == "ingress":
            sp.ingress.stop(signal.SIGKILL)
            sp.start_ingress()
            (s1, a), (s2, b) = post(key), post(key)
            res.append(a)
            print(f"first {a:8.1f} ms ({s1})  second {b:6.1f} ms ({s2})",
                  flush=True)
            continue
        if ROLE == "accountant":
            key = h.admin(db, "token-create", "--user", "a", "--unlimited",
                          "--name", f"r{r}")
            sp.acct.stop(signal.SIGKILL)
            time.sleep(DOWN_S)
            sp.start_accountant()
        else:
            w = [p for p in h.procs if p.name == "worker" and p.alive()][0]
            w.stop(signal.SIGKILL)
            time.sleep(DOWN_S)
            sp.start_worker()
        t0, errors = time.monotonic(), []
        while post(key)[0] != 200 and time.monotonic() - t0 < 30:
            errors.append(1)
        res.append((time.monotonic() - t0) * 1000)
        print(f"first 200 after {res[-1]:7.1f} ms, {len(errors)} errors "
              "before", flush=True)
    res.sort()
    print(f"{ROLE}: first request: min {res[0]:.1f} median "
          f"{res[len(res) // 2]:.1f} max {res[-1]:.1f} ms")
    h.tap.ok(len(res) == ROUNDS and res[-1] < 30000, "measured")
