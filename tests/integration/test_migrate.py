#!/usr/bin/env python3
"""Migrations: a fresh database gets every schema/NNN_*.sql once; running
migrate again changes nothing; two concurrent migrates are safe."""
import glob
import os
import subprocess

from harness import SCHEMA_DIR, Harness

MIGRATIONS = sorted(os.path.basename(p)
                    for p in glob.glob(os.path.join(SCHEMA_DIR, "[0-9]*.sql")))
TABLES = ["users", "tokens", "channels", "user_channels", "abilities",
          "model_prices", "top_ups", "payment_callbacks", "redemptions",
          "usage_events", "logs", "options", "quota_data"]

with Harness() as h:
    t = h.tap
    t.ok(len(MIGRATIONS) > 0, f"schema has migrations ({len(MIGRATIONS)})")
    db = h.new_db()

    first = h.run(["migrate"], db)
    t.eq(first.returncode, 0, "first migrate exits 0")
    applied = [line for line in first.stdout.splitlines() if line.strip()]
    t.eq(len(applied), len(MIGRATIONS),
         "first migrate prints one line per migration")
    for name in MIGRATIONS:
        stem = name[:-len(".sql")]
        t.ok(any(stem in line or name[:3] in line for line in applied),
             f"first migrate reports {stem}", first.stdout)
    count = h.scalar(db, "SELECT count(*) FROM schema_migrations")
    t.eq(count, str(len(MIGRATIONS)), "schema_migrations has one row each")
    present = {r[0] for r in h.psql(
        db, "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public'")}
    for table in TABLES:
        t.ok(table in present, f"table {table} exists")
    money = h.scalar(db, "SELECT data_type FROM information_schema.columns "
                         "WHERE table_name = 'users' AND column_name = 'quota'")
    t.eq(money, "bigint", "users.quota is BIGINT")

    second = h.run(["migrate"], db)
    t.eq(second.returncode, 0, "second migrate exits 0")
    t.ok("up to date" in second.stdout.lower(),
         "second migrate says up to date", second.stdout + second.stderr)
    t.eq(h.scalar(db, "SELECT count(*) FROM schema_migrations"),
         str(len(MIGRATIONS)), "second migrate adds no schema_migrations row")

    # Two nodes migrating one fresh database at the same time.
    db2 = h.new_db()
    procs = [subprocess.Popen([h.binary, "migrate"], env=h.env(db2),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for i, p in enumerate(procs):
        t.eq(p.returncode, 0, f"concurrent migrate {i + 1} exits 0")
        if p.returncode:
            t.diag(outs[i][1])
    t.eq(h.scalar(db2, "SELECT count(*) FROM schema_migrations"),
         str(len(MIGRATIONS)), "concurrent migrates record each migration once")
    total = sum(len([l for l in o[0].splitlines() if l.strip()
                     and "up to date" not in l.lower()]) for o in outs)
    t.eq(total, len(MIGRATIONS),
         "concurrent migrates applied each migration exactly once")

    bad = h.run(["migrate"], "postgres://postgres@127.0.0.1:1/none",
                timeout=30)
    t.ok(bad.returncode != 0 and bad.stderr.strip() != "",
         "migrate against an unreachable database fails with a message",
         f"rc={bad.returncode} stderr={bad.stderr!r}")
