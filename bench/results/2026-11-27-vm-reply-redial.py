#!/usr/bin/env python3
"""After each ingress SIGKILL + restart (the worker left running): how long
the first request through the new ingress takes, and the second.  Split
roles over ipc:// through the integration harness; run it like an
integration test:

    PF_TEST_DATABASE_URL=... PF_TEST_REDIS_URL=... ROUNDS=20 \\
        python3 bench/results/2026-11-27-vm-reply-redial.py PLANKTONFLY

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

with Harness() as h:
    db = h.new_db()
    h.migrate(db)
    mock = h.start_mock()
    h.admin(db, "channel-add", "--name", "m", "--type", "openai",
            "--base-url", mock, "--key", "k", "--models", "m")
    h.admin(db, "price-set", "--model", "m", "--input", "0.5",
            "--output", "1.5")
    h.admin(db, "user-create", "--username", "a", "--quota", "100000000")
    key = h.admin(db, "token-create", "--user", "a", "--unlimited")
    sp = Split(h, db, "")
    sp.start_accountant()
    sp.start_worker()
    sp.start_ingress()
    body = json.dumps({"model": "m", "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]})
    hdr = {"Authorization": "Bearer " + key,
           "Content-Type": "application/json"}

    def post():
        t0 = time.monotonic()
        st = fetch("POST", sp.base + "/chat/completions", body.encode(),
                   hdr)[0]
        return (time.monotonic() - t0) * 1000, st

    post()
    firsts = []
    for _ in range(ROUNDS):
        sp.ingress.stop(signal.SIGKILL)
        sp.start_ingress()
        (a, s1), (b, s2) = post(), post()
        firsts.append(a)
        print(f"first {a:8.1f} ms ({s1})  second {b:6.1f} ms ({s2})")
    firsts.sort()
    print(f"first: min {firsts[0]:.1f} median {firsts[len(firsts) // 2]:.1f}"
          f" max {firsts[-1]:.1f} ms")
    h.tap.ok(len(firsts) == ROUNDS, "measured")
