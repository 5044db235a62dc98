#!/usr/bin/env python3
"""Channel auto-disable and probe re-enable: a channel failing
PF_CHANNEL_FAIL_MAX times in a row is disabled (status 3, a reason an
admin can read) while its requests fail over; one answering 401 is
disabled at once; a probe (every PF_CHANNEL_PROBE_MS) re-enables the
channel once its upstream answers again, and it serves again.  The
faulty mock is switched with POST /mock/knobs (server knobs); the
assertions are on database state and counts, waits are bounds."""
from harness import (Harness, mock_knobs_url, mock_set_knobs, mock_stats,
                     wait_for)

MESSAGES = [{"role": "user", "content": "hi"}]
FAIL_MAX = 3

with Harness() as h:
    t = h.tap
    flaky = h.start_mock(["--chunks", "3"])
    authm = h.start_mock()
    mock_set_knobs(flaky, "status=500")
    ids = {}

    def prepare(g):
        def add(name, base, models, prio):
            ids[name] = h.admin(g.db, "channel-add", "--name", name,
                                "--type", "openai", "--base-url", base,
                                "--key", "k", "--models", models,
                                "--priority", str(prio))
        add("flaky", flaky, "flaky", 10)
        add("auth", mock_knobs_url(authm, status=401), "auth", 10)
        ids["backup"] = g.channel_id  # the gateway's own, priority 0

    g = h.gateway(models="flaky,auth", prepare=prepare, serve_env={
        "PF_CHANNEL_FAIL_MAX": str(FAIL_MAX),
        "PF_CHANNEL_PROBE_MS": "300",
        "PF_CHANNEL_REFRESH_MS": "200"})

    def status(name):
        return h.scalar(g.db, "SELECT status FROM channels WHERE id = "
                        + ids[name])

    def reason(name):
        return h.scalar(g.db, "SELECT disabled_reason FROM channels "
                        "WHERE id = " + ids[name])

    def chat(model):
        return g.chat({"model": model, "messages": MESSAGES})[0]

    # --- repeated failures ------------------------------------------------
    codes = [chat("flaky") for _ in range(FAIL_MAX - 1)]
    t.eq(codes, [200] * (FAIL_MAX - 1),
         "failing top channel: requests fail over (200)")
    t.eq(mock_stats(flaky)["errors_injected"], FAIL_MAX - 1,
         "the flaky mock failed each of them")
    t.eq(status("flaky"), "1",
         f"{FAIL_MAX - 1} failures in a row: still enabled")
    codes = []

    def disabled():
        if len(codes) < 4 * FAIL_MAX:
            codes.append(chat("flaky"))
        return status("flaky") == "3"

    wait_for(disabled, timeout=10, step=0.1)
    t.ok(all(c == 200 for c in codes),
         "requests around the disable still get 200", codes)
    t.ok(status("flaky") == "3",
         f"after {FAIL_MAX} failures in a row: auto-disabled (status 3)",
         f"status {status('flaky')}, {len(codes)} more requests")
    t.ok("500" in (reason("flaky") or ""),
         "the disabled reason is recorded and names the status",
         repr(reason("flaky")))
    listing = h.admin(g.db, "channel-list")
    row = [ln.split("\t") for ln in listing.splitlines()
           if ln.split("\t")[:2] == [ids["flaky"], "flaky"]]
    t.ok(row and row[0][3] == "3" and row[0][4] != "",
         "admin channel-list shows status 3 and why", listing)

    # --- 401 disables at once ---------------------------------------------
    # a 401 is the channel's key, not the client's fault: it fails over
    # and disables the channel; later requests go to the backup
    t.eq(chat("auth"), 200, "401 on the top channel: failover, 200")
    wait_for(lambda: status("auth") == "3", timeout=5)
    t.ok(status("auth") == "3",
         "a channel answering 401 is disabled after one request",
         f"status {status('auth')}")
    t.ok("401" in (reason("auth") or ""), "... and the reason says 401",
         repr(reason("auth")))
    n = mock_stats(authm)["requests"]
    codes = [chat("auth") for _ in range(3)]
    t.eq(codes, [200] * 3, "after the 401: requests are still served")
    # (a probe for a 401-disabled channel comes only every 10 probe
    # intervals; allow one)
    t.ok(mock_stats(authm)["requests"] - n <= 1,
         "after the 401: the disabled channel is not tried",
         f"auth mock requests {n} -> {mock_stats(authm)['requests']}")

    # --- a failed probe is recorded, the channel stays disabled -----------
    def probed():
        return int(h.scalar(g.db, "SELECT test_at FROM channels WHERE id = "
                            + ids["flaky"]) or 0) > 0

    t.ok(wait_for(probed, timeout=10, step=0.1) and status("flaky") == "3",
         "a failed probe sets test_at and leaves the channel disabled",
         f"status {status('flaky')}")

    # --- recovery: the probe re-enables -----------------------------------
    was_disabled = status("flaky") == "3"
    mock_set_knobs(flaky, "")
    wait_for(lambda: status("flaky") == "1", timeout=15)
    t.ok(was_disabled and status("flaky") == "1",
         "upstream healthy again: a probe re-enables the channel",
         f"status {status('flaky')}, reason {reason('flaky')!r}")
    t.ok(was_disabled and (reason("flaky") or "") == "",
         "re-enabled: the disabled reason is cleared",
         repr(reason("flaky")))

    def answered_by_flaky():
        # the flaky mock answers 3 chunks, the backup the default 16
        st, _, body = g.chat({"model": "flaky", "messages": MESSAGES})
        return st == 200 and b'"content":"tok0 tok1 tok2 "' in body

    t.ok(was_disabled and wait_for(answered_by_flaky, timeout=10,
                                   step=0.2),
         "re-enabled channel serves clients again")
