#!/usr/bin/env python3
"""`planktonfly admin`: stdout carries exactly the new value, the database
holds what the CLI contract promises, and errors exit non-zero (1 for
failures, 2 for usage errors) with a message on stderr."""
import re

from harness import Harness, sha256_hex

KEY_RE = re.compile(r"^sk-[A-Za-z0-9]{48}$")


def fails(t, r, desc, code=None):
    cond = r.returncode != 0 if code is None else r.returncode == code
    t.ok(cond and r.stderr.strip() != "" and r.stdout.strip() == "",
         desc, f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}")


with Harness() as h:
    t = h.tap
    db = h.new_db()
    h.migrate(db)

    # users
    r = h.run(["admin", "user-create", "--username", "bob", "--quota",
               "1000000", "--group", "vip"], db)
    t.eq(r.returncode, 0, "user-create exits 0")
    t.ok(re.fullmatch(r"\d+\n?", r.stdout) is not None,
         "user-create prints the id alone", repr(r.stdout))
    uid = r.stdout.strip()
    row = h.psql(db, f"SELECT username, quota, \"group\", role FROM users "
                     f"WHERE id = {int(uid or 0)}")
    t.eq(row, [["bob", "1000000", "vip", "user"]],
         "user row holds username, quota, group, default role")
    r = h.run(["admin", "user-create", "--username", "root1", "--role",
               "root", "--password", "hunter2-secret"], db)
    t.eq(r.returncode, 0, "user-create --role root --password exits 0")
    pw = h.scalar(db, "SELECT password_hash FROM users "
                      "WHERE username = 'root1'")
    t.ok(pw not in (None, "", "hunter2-secret") and "hunter2" not in pw,
         "password stored hashed, never in clear", repr(pw))
    fails(t, h.run(["admin", "user-create", "--username", "bob"], db),
          "user-create of an existing username fails", 1)
    fails(t, h.run(["admin", "user-create"], db),
          "user-create without --username is a usage error", 2)
    fails(t, h.run(["admin", "user-create", "--username", "x", "--role",
                    "emperor"], db), "user-create with a bad role fails")

    # tokens
    r = h.run(["admin", "token-create", "--user", "bob", "--name", "t1",
               "--quota", "777"], db)
    t.eq(r.returncode, 0, "token-create exits 0")
    key = r.stdout.strip()
    t.ok(KEY_RE.match(key) is not None and r.stdout.count("\n") <= 1,
         "token-create prints the sk- key alone (sk- + 48 alphanumerics)",
         repr(r.stdout))
    row = h.psql(db, "SELECT t.key_hash, t.key_prefix, t.remain_quota, "
                     "t.unlimited_quota, t.name FROM tokens t JOIN users u "
                     "ON u.id = t.user_id WHERE u.username = 'bob'")
    t.eq(row, [[sha256_hex(key), key[:8], "777", "f", "t1"]],
         "token row: sha256 hex of the full key, prefix, quota, name")
    leaked = h.scalar(db, "SELECT count(*) FROM tokens WHERE "
                          f"position('{key[3:]}' in key_hash || key_prefix "
                          "|| name) > 0") if key else "?"
    t.eq(leaked, "0", "the key itself is not stored")
    r = h.run(["admin", "token-create", "--user", "bob", "--unlimited",
               "--models", "m1,m2", "--group", "vip"], db)
    t.eq(r.returncode, 0, "token-create --unlimited --models exits 0")
    k2 = r.stdout.strip()
    row = h.psql(db, "SELECT unlimited_quota, models, \"group\" FROM tokens "
                     f"WHERE key_hash = '{sha256_hex(k2)}'")
    t.eq(row, [["t", "m1,m2", "vip"]], "unlimited token with models, group")
    t.ok(k2 != key, "each token-create makes a new key")
    fails(t, h.run(["admin", "token-create", "--user", "nosuchuser"], db),
          "token-create for an unknown user fails", 1)
    fails(t, h.run(["admin", "token-create"], db),
          "token-create without --user is a usage error", 2)

    # channels
    r = h.run(["admin", "channel-add", "--name", "c1", "--type", "openai",
               "--base-url", "http://127.0.0.1:9/v1", "--key", "sk-up",
               "--models", "m1,m2,m3", "--group", "default,vip",
               "--priority", "5", "--weight", "3"], db)
    t.eq(r.returncode, 0, "channel-add exits 0")
    t.ok(re.fullmatch(r"\d+\n?", r.stdout) is not None,
         "channel-add prints the id alone", repr(r.stdout))
    cid = int(r.stdout.strip() or 0)
    row = h.psql(db, "SELECT type, base_url, models, priority, weight, "
                     f"status FROM channels WHERE id = {cid}")
    t.eq(row, [["1", "http://127.0.0.1:9/v1", "m1,m2,m3", "5", "3", "1"]],
         "channel row holds type openai, url, models, priority, weight")
    t.eq(h.scalar(db, "SELECT count(*) FROM abilities "
                      f"WHERE channel_id = {cid}"), "6",
         "abilities: one per (group, model)")
    r = h.run(["admin", "channel-add", "--name", "c2", "--type",
               "anthropic", "--base-url", "http://127.0.0.1:9/v1",
               "--models", "claude-x", "--model-mapping",
               '{"claude-x":"claude-real"}'], db)
    t.eq(r.returncode, 0, "channel-add --type anthropic --model-mapping")
    fails(t, h.run(["admin", "channel-add", "--name", "c3", "--type",
                    "carrier-pigeon", "--base-url", "http://x/v1",
                    "--models", "m"], db),
          "channel-add with an unknown type fails")
    fails(t, h.run(["admin", "channel-add", "--name", "c4", "--type",
                    "openai", "--models", "m"], db),
          "channel-add without --base-url is a usage error", 2)

    # prices
    r = h.run(["admin", "price-set", "--model", "m1", "--input", "0.27",
               "--output", "1.10", "--cached", "0.07"], db)
    t.eq(r.returncode, 0, "price-set per token exits 0")
    row = h.psql(db, "SELECT input_micros, output_micros, cached_micros, "
                     "call_micros FROM model_prices WHERE model = 'm1'")
    t.eq(row, [["270000", "1100000", "70000", "0"]],
         "prices stored exactly as micro-USD")
    r = h.run(["admin", "price-set", "--model", "m1", "--input", "3",
               "--output", "15"], db)
    t.eq(h.scalar(db, "SELECT input_micros || '/' || output_micros FROM "
                      "model_prices WHERE model = 'm1'"), "3000000/15000000",
         "price-set again replaces the price")
    r = h.run(["admin", "price-set", "--model", "img", "--call", "0.04"], db)
    t.eq(r.returncode, 0, "price-set --call exits 0")
    t.eq(h.scalar(db, "SELECT call_micros FROM model_prices "
                      "WHERE model = 'img'"), "40000", "per-call price")
    fails(t, h.run(["admin", "price-set", "--model", "m1", "--input",
                    "abc", "--output", "1"], db),
          "price-set with a non-decimal price fails")
    fails(t, h.run(["admin", "price-set", "--model", "m1"], db),
          "price-set without prices is a usage error", 2)

    # option errors: exit 2 and one line naming the command and the option
    for argv, msg in [
            (["user-create", "--bogus"], "unknown option '--bogus'"),
            (["user-create", "--username=x", "--bogus=1"],
             "unknown option '--bogus'"),
            (["user-create"], "--username is required"),
            (["token-list"], "--user is required"),
            (["token-list", "--user"], "option '--user' needs a value"),
            (["token-create", "--user", "bob", "--unlimited=yes"],
             "option '--unlimited' takes no value"),
            (["price-set", "--model", "a", "--model", "b"],
             "option '--model' given twice"),
            (["channel-add", "--name", "c", "--type", "openai",
              "--base-url", "http://x/v1"], "--models is required"),
            (["channel-enable", "--id", "1", "--reason", "x"],
             "unknown option '--reason'"),
            (["channel-disable", "--reason", "x"], "--id is required"),
            (["user-list", "extra"], "unexpected argument 'extra'")]:
        r = h.run(["admin"] + argv, db)
        fails(t, r, f"admin {' '.join(argv)} is a usage error", 2)
        t.ok(r.stderr.startswith(f"planktonfly admin {argv[0]}: {msg}\n"),
             f"admin {' '.join(argv)} says: {msg}", repr(r.stderr))
    r = h.run(["admin", "channel-disable", "--help"], db)
    t.ok(r.returncode == 0 and "--reason TEXT" in r.stdout
         and "--config FILE" in r.stdout,
         "channel-disable --help lists its options and --config", repr(r))

    fails(t, h.run(["admin", "no-such-command"], db),
          "unknown admin command is a usage error", 2)
    t.eq(h.run(["admin", "--help"], db).returncode, 0, "admin --help exits 0")
