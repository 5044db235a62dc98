#!/usr/bin/env python3
"""test_billing.py -- the ingress side of billing: a request is charged
exactly its cost, insufficient quota is refused with 429, a top-up is
seen, the usage spool survives an accountant and an ingress restart, and
the end-reason policy (client cut: prompt + delivered; upstream failed
before output: nothing).  Split roles (accountant + worker + ingress over
ipc://) so the accountant can be stopped and payments sent to it with
pf-acct-client (argv[2]); one check through `serve` (accountant
in-process)."""
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BillingSplit as Split, Harness, Proc, fetch,  # noqa
                     fetch_stream, mock_knobs_url, open_stream, read_until,
                     wait_for)

CLIENT = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else ""
MSGS = [{"role": "user", "content": "Say hello to the billing test."}]
QPU = 500000
PRICE_IN, PRICE_OUT = 500000, 1500000  # micro-USD per 1M tokens


def cost_of(prompt, completion, cached=0):
    """pf_money_cost for the test prices, ratio 1 (integer, rounded up)."""
    n = (prompt - cached) * PRICE_IN + cached * PRICE_IN \
        + completion * PRICE_OUT
    num = n * 1000000 * QPU
    den = 10 ** 18
    return -(-num // den)


def chat(base, key, body, path="/chat/completions", headers=None):
    h = {"Authorization": "Bearer " + key}
    h.update(headers or {})
    return fetch("POST", base + path, body, h)


def event(h, db, rid):
    rows = h.psql(db, "SELECT cost, end_reason, prompt_tokens, "
                      "completion_tokens, cached_tokens, estimated, "
                      "user_id, token_id FROM usage_events "
                      f"WHERE event_id = '{rid}'")
    if not rows:
        return None
    r = rows[0]
    return {"cost": int(r[0]), "reason": r[1], "prompt": int(r[2]),
            "completion": int(r[3]), "cached": int(r[4]),
            "estimated": r[5] == "t", "user": r[6], "token": r[7]}


def wait_event(h, db, rid, timeout=20):
    return wait_for(lambda: event(h, db, rid), timeout=timeout, step=0.1)


def user_quota(h, db, uid):
    return int(h.scalar(db, f"SELECT quota FROM users WHERE id = {uid}"))


def ledger_sum(h, db, uid):
    return int(h.scalar(db, "SELECT coalesce(sum(cost), 0) FROM "
                            f"usage_events WHERE user_id = {uid} "
                            "AND kind = 'usage'"))


with Harness() as h:
    t = h.tap
    if not os.access(CLIENT, os.X_OK):
        print(f"Bail out! pf-acct-client not found: {CLIENT!r}")
        sys.exit(1)

    # --- through serve: the accountant runs in-process -------------------
    g = h.gateway(models="mock-gpt")
    q0 = user_quota(h, g.db, g.user_id)
    st, hd, body = g.chat({"model": "mock-gpt", "messages": MSGS,
                           "max_tokens": 20})
    t.eq(st, 200, "serve: a chat completion answers 200")
    rid = hd.get("x-request-id", "")
    usage = json.loads(body).get("usage", {}) if st == 200 else {}
    ev = wait_event(h, g.db, rid)
    t.ok(ev is not None, "serve: the request's usage event reaches the "
         "ledger (event id = x-request-id)", rid)
    if ev:
        want = cost_of(usage.get("prompt_tokens", 0),
                       usage.get("completion_tokens", 0))
        t.eq((ev["cost"], ev["reason"], ev["prompt"], ev["completion"]),
             (want, "done", usage.get("prompt_tokens"),
              usage.get("completion_tokens")),
             "serve: charged exactly the upstream usage x price, reason "
             "done")
        t.eq(user_quota(h, g.db, g.user_id), q0 - ev["cost"],
             "serve: the user's quota went down by the cost")
        t.eq(h.scalar(g.db, "SELECT count(*) FROM logs WHERE type = 2 "
                            f"AND request_id = '{rid}'"), "1",
             "serve: one consume log row for the request")
    g.proc.stop()

    # --- split roles --------------------------------------------------------
    db = h.new_db()
    h.migrate(db)
    mock = h.start_mock()
    slow = h.start_mock()
    broken = h.start_mock()
    h.admin(db, "channel-add", "--name", "m", "--type", "openai",
            "--base-url", mock, "--key", "k", "--models", "m")
    h.admin(db, "channel-add", "--name", "slow", "--type", "openai",
            "--base-url", mock_knobs_url(slow, chunks=400,
                                         chunk_delay_ms=25),
            "--key", "k", "--models", "slow")
    h.admin(db, "channel-add", "--name", "broken", "--type", "openai",
            "--base-url", mock_knobs_url(broken, status=500),
            "--key", "k", "--models", "broken")
    for m in ("m", "slow", "broken"):
        h.admin(db, "price-set", "--model", m, "--input", "0.5",
                "--output", "1.5")
    alice = h.admin(db, "user-create", "--username", "alice", "--quota",
                    "100000000")
    akey = h.admin(db, "token-create", "--user", "alice", "--quota",
                   "50000000")
    atok = h.scalar(db, f"SELECT id FROM tokens WHERE user_id = {alice}")
    bob = h.admin(db, "user-create", "--username", "bob", "--quota", "10")
    bkey = h.admin(db, "token-create", "--user", "bob", "--unlimited")
    carol = h.admin(db, "user-create", "--username", "carol", "--quota",
                    "0")
    ckey = h.admin(db, "token-create", "--user", "carol", "--unlimited")

    sp = Split(h, db, CLIENT)
    sp.start_accountant()
    sp.start_worker()
    sp.start_ingress()
    base = sp.base

    # exactly its cost, user and token both charged
    a_q0 = user_quota(h, db, alice)
    a_r0 = int(h.scalar(db, f"SELECT remain_quota FROM tokens "
                            f"WHERE id = {atok}"))
    st, hd, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        chat(base, akey, {"model": "m", "messages": MSGS,
                          "max_tokens": 30})), timeout=15, step=0.2) \
        or (0, {}, b"")
    t.eq(st, 200, "split roles: a chat completion answers 200")
    rid = hd.get("x-request-id", "")
    usage = json.loads(body).get("usage", {}) if st == 200 else {}
    ev = wait_event(h, db, rid)
    want = cost_of(usage.get("prompt_tokens", 0),
                   usage.get("completion_tokens", 0))
    t.ok(ev is not None and ev["cost"] == want and want > 0
         and ev["reason"] == "done" and ev["token"] == atok,
         "split roles: the event is charged exactly its cost, reason done",
         f"event {ev} want cost {want}")
    t.eq(user_quota(h, db, alice), a_q0 - want,
         "the user's quota went down by exactly the cost")
    t.eq(int(h.scalar(db, f"SELECT remain_quota FROM tokens "
                          f"WHERE id = {atok}")), a_r0 - want,
         "the token's remain_quota went down by exactly the cost")

    # a stream: charged from its usage too
    st, hd, body, complete = fetch_stream(
        "POST", base + "/chat/completions",
        {"model": "m", "messages": MSGS, "stream": True, "max_tokens": 30,
         "stream_options": {"include_usage": True}},
        {"Authorization": "Bearer " + akey})
    srid = hd.get("x-request-id", "")
    ev = wait_event(h, db, srid)
    t.ok(st == 200 and complete and ev is not None and ev["cost"] > 0
         and ev["reason"] == "done",
         "a stream that completes is charged, reason done", f"{st} {ev}")

    # insufficient quota: 429 in each API's shape
    st, _, body = chat(base, bkey, {"model": "m", "messages": MSGS})
    j = json.loads(body) if body else {}
    err = j.get("error", {})
    t.ok(st == 429 and err.get("code") == "insufficient_quota"
         and err.get("type") == "insufficient_quota",
         "a user whose balance does not cover the estimate: OpenAI 429 "
         "insufficient_quota", f"{st} {body[:300]!r}")
    st, _, body = chat(base, bkey, {"model": "m", "max_tokens": 100,
                                    "messages": MSGS}, path="/messages",
                       headers={"anthropic-version": "2023-06-01"})
    j = json.loads(body) if body else {}
    t.ok(st == 429 and j.get("type") == "error"
         and isinstance(j.get("error"), dict)
         and "quota" in j["error"].get("message", ""),
         "the same on /v1/messages: 429 in Anthropic's error shape",
         f"{st} {body[:300]!r}")
    t.eq(h.scalar(db, f"SELECT count(*) FROM usage_events "
                      f"WHERE user_id = {bob}"), "0",
         "a refused request writes no usage event")

    # a top-up (payment event straight to the accountant) is seen
    st, _, _ = chat(base, ckey, {"model": "m", "messages": MSGS,
                                 "max_tokens": 20})
    t.eq(st, 429, "carol (balance 0) is refused")
    ack = sp.payment(carol, "T-carol-1", 50000000)
    t.ok(ack.startswith("ack"), "the payment is acked", ack)
    st = wait_for(lambda: chat(base, ckey, {
        "model": "m", "messages": MSGS, "max_tokens": 20})[0] == 200,
        timeout=15, step=0.2)
    t.ok(st, "after the top-up carol's requests are admitted")

    # client cut a stream: prompt + what was delivered
    s = open_stream(base, akey, "slow", MSGS)
    head = read_until(s, b'"content":"tok5')
    rid_m = [ln for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"x-request-id:")]
    cut_rid = rid_m[0].split(b":", 1)[1].strip().decode() if rid_m else ""
    s.close()
    ev = wait_event(h, db, cut_rid)
    t.ok(ev is not None and ev["reason"] == "client_gone"
         and ev["prompt"] > 0 and 0 < ev["completion"] < 400
         and ev["cost"] == cost_of(ev["prompt"], ev["completion"],
                                   ev["cached"]),
         "a stream the client cut: billed prompt + completion delivered "
         "(client_gone)", f"{cut_rid} {ev}")

    # upstream failed before any output: nothing billed, reason recorded
    st, hd, _ = chat(base, akey, {"model": "broken", "messages": MSGS})
    brid = hd.get("x-request-id", "")
    ev = wait_event(h, db, brid)
    t.ok(st >= 500 and ev is not None and ev["cost"] == 0
         and ev["reason"] == "upstream_error",
         "upstream failed before any output: cost 0, reason "
         "upstream_error", f"{st} {ev}")

    # --- spool: the accountant is down -------------------------------------
    def accountant_down(n, warm_desc, served_desc):
        """A request first, on a new token of alice's: it has no credit,
        so it asks the accountant that is up now, ahead of what it needs
        (max_tokens 100000: room for n small ones).  Credit an earlier
        accountant granted would not do: the first reply of a restarted
        accountant (a renewal's, at any time) carries its new epoch and
        drops it.  Once its event is in the ledger, alice's balance is
        read and the accountant SIGKILLed; then n small requests within
        the credit.  Returns (that balance, the served requests' ids)."""
        key = h.admin(db, "token-create", "--user", "alice", "--unlimited",
                      "--name", f"down{n}")
        small = {"model": "m", "messages": MSGS, "max_tokens": 10}
        st, hd, _ = chat(sp.base, key, dict(small, max_tokens=100000))
        t.eq(st, 200, warm_desc)
        # else its event could land after the balance is read, and the
        # "charged once" checks would count it too
        wait_event(h, db, hd.get("x-request-id", ""))
        before = user_quota(h, db, alice)
        sp.acct.stop(signal.SIGKILL)
        rids, sts = [], []
        for _ in range(n):
            st, hd, _ = chat(sp.base, key, small)
            sts.append(st)
            if st == 200:
                rids.append(hd.get("x-request-id", ""))
        t.ok(len(rids) == n, served_desc, sts)
        return before, rids

    before, rids = accountant_down(
        5, "a request before the accountant goes down",
        "accountant down: requests within the granted credit are still "
        "served")
    t.ok(wait_for(lambda: sp.spool_bytes() > 0, timeout=5),
         "their usage events are in the spool", sp.spool_files())
    sp.start_accountant()
    got = wait_for(lambda: all(event(h, db, r) for r in rids), timeout=30,
                   step=0.2)
    t.ok(got, "accountant back: every spooled event arrives")
    costs = sum(event(h, db, r)["cost"] for r in rids) if got else -1
    t.eq(user_quota(h, db, alice), before - costs,
         "... and is charged once (quota down by exactly their costs)")
    t.ok(wait_for(lambda: sp.spool_files() == [] or sp.spool_bytes() == 0,
                  timeout=15, step=0.2),
         "acked spool segments are deleted", sp.spool_files())

    # --- spool: the ingress restarts with events not acked ------------------
    before, rids = accountant_down(
        3, "a request before the accountant goes down again",
        "accountant down again: 3 requests served")
    sp.ingress.stop(signal.SIGKILL)
    t.ok(sp.spool_bytes() > 0, "the ingress was killed with the events "
         "in its spool", sp.spool_files())
    sp.start_accountant()
    sp.start_ingress()
    got = wait_for(lambda: all(event(h, db, r) for r in rids), timeout=30,
                   step=0.2)
    t.ok(got, "restarted ingress: the spooled events are resent")
    costs = sum(event(h, db, r)["cost"] for r in rids) if got else -1
    t.eq(user_quota(h, db, alice), before - costs,
         "... and charged once")
    dup = h.scalar(db, "SELECT count(*) - count(DISTINCT event_id) "
                       "FROM usage_events")
    t.eq(dup, "0", "no event id twice in the ledger")
    t.eq(ledger_sum(h, db, alice),
         int(h.scalar(db, f"SELECT used_quota FROM users "
                          f"WHERE id = {alice}")),
         "alice: ledger total = used_quota")

    # --- overdraft bound: many requests at once, balance for a few --------
    # each request's estimate (prompt counted over the whole body +
    # max_tokens) is above its cost, so the bound sum(max(0, c - e)) is 0
    dave = h.admin(db, "user-create", "--username", "dave", "--quota", "150")
    dkey = h.admin(db, "token-create", "--user", "dave", "--unlimited")
    results = []

    def one():
        results.append(chat(sp.base, dkey, {"model": "m", "messages": MSGS,
                                         "max_tokens": 10})[0])

    threads = [threading.Thread(target=one) for _ in range(60)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    hung = sum(th.is_alive() for th in threads)
    if hung or 200 not in results:
        # seen once in CI right after the ingress restart above (all 50
        # answers 429, 10 requests hanging): where every process was
        Proc.stacks_of_live(h.procs, f"{hung} of 60 client threads "
                            f"waiting, {results.count(200)} served")
    n_ok = results.count(200)
    t.ok(n_ok >= 1 and results.count(429) >= 1
         and all(c in (200, 429) for c in results),
         "60 concurrent requests, balance for a few: some served, the "
         "rest 429", sorted(results))
    wait_for(lambda: int(h.scalar(db, "SELECT count(*) FROM usage_events "
                                      f"WHERE user_id = {dave}")) >= n_ok,
             timeout=20, step=0.2)
    dq = user_quota(h, db, dave)
    t.ok(dq >= 0 and dq == 150 - ledger_sum(h, db, dave),
         "the balance never went below -bound (0 here) and equals "
         "150 - the ledger", f"quota {dq} served {n_ok}")

    # --- accountant restart: its pools are gone (epoch) ---------------------
    # erin has two tokens; the ingress warms credit for both, then the
    # accountant is SIGKILLed and restarted.  The first grant.reply of the
    # new accountant carries a new epoch: the ingress drops the credit it
    # mirrored from the old pools (docs/billing.md, "Accountant restart").
    # Without that, token A's old credit would be spent on top of what the
    # new accountant grants token B.  Requests run one at a time with
    # c <= e and every earlier event committed before the first new ask,
    # so the documented bound is 0 here: the balance never goes below 0.
    small = {"model": "m", "messages": MSGS, "max_tokens": 16}
    e_est = cost_of(-(-len(json.dumps(small)) // 4), 16)
    eq = 8 * e_est
    erin = h.admin(db, "user-create", "--username", "erin", "--quota",
                   str(eq))
    ekeys = [h.admin(db, "token-create", "--user", "erin", "--unlimited",
                     "--name", n) for n in ("ea", "eb")]

    def erin_events():
        return int(h.scalar(db, "SELECT count(*) FROM usage_events "
                                f"WHERE user_id = {erin}"))

    warm = [chat(sp.base, k, small)[0] for k in ekeys]
    t.eq(warm, [200, 200], "erin: both tokens served (credit warmed)")
    wait_for(lambda: erin_events() >= 2, timeout=20, step=0.1)
    sp.acct.stop(signal.SIGKILL)
    sp.start_accountant()
    # a request too big for the balance asks at once: the reply (429)
    # carries the new epoch
    big = dict(small, max_tokens=100000)
    st = wait_for(lambda: (lambda s: s if s == 429 else None)(
        chat(sp.base, ekeys[1], big)[0]), timeout=30, step=0.2)
    t.eq(st, 429, "after the restart a request above the balance: 429")
    time.sleep(1.2)  # past PF_BILLING_DENY_MS
    served, last, n503 = warm.count(200), {}, 0
    for _ in range(100):
        for k in ekeys:
            s = chat(sp.base, k, small)[0]
            if s == 503:
                n503 += 1
                time.sleep(0.2)
            last[k] = s
            served += s == 200
        if all(last.get(k) == 429 for k in ekeys):
            break
    t.ok(all(last.get(k) == 429 for k in ekeys) and served > 2,
         "erin: served until the balance ran out, then 429 on both tokens",
         f"served {served}, last {last}, 503s {n503}")
    wait_for(lambda: erin_events() >= served, timeout=20, step=0.2)
    eqf = user_quota(h, db, erin)
    t.ok(eqf >= 0 and eqf == eq - ledger_sum(h, db, erin),
         "accountant restart: total charged <= balance (the old credit "
         "was not spent again) and the balance equals the ledger",
         f"balance {eq}, now {eqf}, served {served}, e ~{e_est}")
