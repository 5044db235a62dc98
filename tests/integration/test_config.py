#!/usr/bin/env python3
"""Configuration errors stop a command at start-up with the key named;
--help describes the keys.  Needs no services."""
from harness import Harness

with Harness(need_services=False) as h:
    t = h.tap

    def refuses(cmd, env, key):
        r = h.run([cmd], "postgres://postgres@127.0.0.1:1/none", env,
                  timeout=20)
        t.ok(r.returncode not in (0, -999) and key in r.stderr,
             f"{cmd} with {env} exits non-zero naming {key}",
             f"rc={r.returncode} stderr={r.stderr[-500:]!r}")

    refuses("serve", {"PF_BOGUS": "1"}, "PF_BOGUS")
    refuses("serve", {"PF_BODY_MAX": "abc"}, "PF_BODY_MAX")
    refuses("serve", {"PF_BODY_MAX": "-5"}, "PF_BODY_MAX")
    refuses("serve", {"PF_LISTEN": "not-an-address"}, "PF_LISTEN")
    refuses("migrate", {"PF_BOGUS": "1"}, "PF_BOGUS")

    r = h.run(["--help"])
    t.ok(r.returncode == 0 and "serve" in r.stdout and "migrate" in r.stdout,
         "planktonfly --help lists the commands", r.stdout[-300:])
    for cmd in ["serve", "migrate", "admin", "mock-model"]:
        r = h.run([cmd, "--help"])
        t.ok(r.returncode == 0 and r.stdout.strip() != "",
             f"planktonfly {cmd} --help exits 0 with text",
             f"rc={r.returncode} {r.stderr[-300:]!r}")
    r = h.run(["serve", "--help"])
    t.ok("PF_BODY_MAX" in r.stdout and "PF_LISTEN" in r.stdout,
         "serve --help names the PF_ keys")
    r = h.run(["mock-model", "--help"])
    t.ok("PF_LOG_LEVEL" in r.stdout and "PF_DATABASE_URL" not in r.stdout,
         "mock-model --help names only the key it reads (PF_LOG_LEVEL)",
         r.stdout[-400:])
    r = h.run(["serve", "--no-such-option"], timeout=20)
    t.ok(r.returncode not in (0, -999),
         "serve with an unknown option exits non-zero", r.stderr[-300:])
    r = h.run(["no-such-command"])
    t.eq(r.returncode, 2, "unknown command exits 2")
