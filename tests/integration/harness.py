"""harness.py -- shared pieces of the integration tests (stdlib only).

Each test file is one meson test speaking TAP.  It gets the planktonfly
binary as argv[1] and the services from PF_TEST_DATABASE_URL (a superuser
URL to a maintenance database) and PF_TEST_REDIS_URL, as exported by
scripts/test.  Every test file works in databases of its own, created here
and dropped at the end; every process it starts is killed at the end, also
when a check throws or meson's timeout sends SIGTERM.
"""
import atexit
import hashlib
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(HERE, "..", "..", "schema")
REQUEST_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


class Tap:
    """Minimal TAP producer: plan at the end, diagnostics as '# ' lines."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def diag(self, text):
        for line in str(text).rstrip("\n").splitlines():
            print("# " + line)
        sys.stdout.flush()

    def ok(self, cond, desc, diag=None):
        self.n += 1
        print(("ok" if cond else "not ok") + f" {self.n} - {desc}")
        if not cond:
            self.failed += 1
            if diag is not None:
                self.diag(diag)
        sys.stdout.flush()
        return bool(cond)

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, f"got:  {got!r}\nwant: {want!r}")

    def skip_all(self, reason):
        print(f"1..0 # SKIP {reason}")
        sys.stdout.flush()
        sys.exit(0)

    def done(self):
        print(f"1..{self.n}")
        sys.stdout.flush()
        return 1 if self.failed else 0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The caller's environment without any PF_* variable (the config
    loader rejects unknown ones, PF_TEST_* included), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
    env.update(extra or {})
    return env


def _prepare(url, body, headers, timeout):
    """What fetch and fetch_stream share: (request target: path and
    query, connection, body bytes or None, headers with a JSON
    Content-Type when there is a body)."""
    u = urllib.parse.urlsplit(url)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    target = u.path + ("?" + u.query if u.query else "")
    return target, conn, body, hdrs


def fetch(method, url, body=None, headers=None, timeout=30):
    """One HTTP request; returns (status, headers with lower-case names,
    body bytes).  body may be bytes, str or a JSON-able object."""
    target, conn, body, hdrs = _prepare(url, body, headers, timeout)
    try:
        conn.request(method, target, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def json_or_none(data):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def parse_sse(body):
    """Splits an SSE body into events.  Returns (events, problems): events
    are the payloads after "data: ", problems the framing violations."""
    problems = []
    text = body.decode("utf-8", errors="replace")
    if not text.endswith("\n\n"):
        problems.append("body does not end with a blank line")
    events = []
    for raw in text.split("\n\n"):
        if raw == "":
            continue
        if "\n" in raw or not raw.startswith("data: "):
            problems.append(f"event not framed as 'data: ...': {raw[:120]!r}")
            continue
        events.append(raw[len("data: "):])
    return events, problems


class TableLock:
    """A psql session holding ACCESS EXCLUSIVE on table until release()
    (stalls whatever reads it: key lookups, the accountant)."""

    def __init__(self, db, table):
        self.p = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
            env=clean_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self.p.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE "
                           "MODE;\nSELECT 'locked';\n")
        self.p.stdin.flush()
        self.p.stdout.readline()

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("ROLLBACK;\n")
            self.p.stdin.close()
            self.p.wait(30)


class ProcessExited(RuntimeError):
    pass


class Proc:
    """A started subprocess with its output in a temporary file."""

    def __init__(self, name, args, env, nofile=None):
        self.name = name
        self.out = tempfile.TemporaryFile()

        def limit():  # in the child, before exec: soft = hard = nofile
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=subprocess.STDOUT,
                                  preexec_fn=limit if nofile else None)

    def alive(self):
        return self.p.poll() is None

    def output(self, limit=4000):
        self.out.seek(0)
        data = self.out.read().decode("utf-8", errors="replace")
        return data[-limit:]

    def hung_stacks(self, why="did not stop in time"):
        """A process that did not stop in time (or, why, another stall):
        its threads' stacks (gdb, when installed) and its last log lines,
        as TAP comments, so the failure says where it hung."""
        lines = []
        if shutil.which("gdb"):
            try:
                r = subprocess.run(
                    ["gdb", "-p", str(self.p.pid), "-batch", "-nx", "-ex",
                     "thread apply all bt"], capture_output=True,
                    timeout=60)
                lines = [ln for ln in r.stdout.decode(
                    "utf-8", errors="replace").splitlines()
                    if ln.startswith(("Thread ", "#"))]
            except (OSError, subprocess.TimeoutExpired):
                pass
        print(f"# {self.name}: {why}; its threads:")
        for ln in lines[:400]:
            print("#   " + ln)
        print(f"# {self.name}: its last log lines:")
        for ln in self.output(6000).splitlines()[-40:]:
            print("#   " + ln)
        sys.stdout.flush()

    @staticmethod
    def stacks_of_live(procs, why):
        """hung_stacks(why) of every process in procs still alive: where
        each one is while requests hang."""
        for p in procs:
            if p.alive():
                p.hung_stacks(why)

    def stop(self, sig=signal.SIGTERM, wait=10):
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(wait)
            except subprocess.TimeoutExpired:
                self.hung_stacks()
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Harness:
    """Owns the databases and processes of one test file.  Use as
    `with Harness() as h:`; cleanup also runs on SIGTERM and at exit."""

    def __init__(self, need_services=True):
        self.tap = Tap()
        self.binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                                      else os.environ.get("PLANKTONFLY", ""))
        self.admin_url = os.environ.get("PF_TEST_DATABASE_URL", "")
        self.redis_url = os.environ.get("PF_TEST_REDIS_URL", "")
        self.procs = []
        self.dbs = []
        self._tmp = None
        if not os.access(self.binary, os.X_OK):
            print(f"Bail out! planktonfly binary not found: {self.binary!r}")
            sys.exit(1)
        if need_services and not self.admin_url:
            self.tap.skip_all("no services")
        signal.signal(signal.SIGTERM, self._on_term)
        atexit.register(self.cleanup)

    def _on_term(self, signum, frame):
        raise SystemExit(143)

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        if etype is not None and etype is not SystemExit:
            self.tap.ok(False, "test file ran to the end",
                        "".join(traceback.format_exception(etype, exc, tb)))
        self.cleanup()
        if etype is None or etype is not SystemExit:
            sys.exit(self.tap.done())
        return False

    def cleanup(self):
        for proc in self.procs:
            proc.stop()
        self.procs = []
        for db in self.dbs:
            self.psql(self.admin_url,
                      f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
                      check=False)
        self.dbs = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def tmpdir(self, prefix):
        """A new directory under this file's temporary root (removed at
        cleanup): accountant logs, spools, ipc sockets."""
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="pf-it-")
        return tempfile.mkdtemp(prefix=prefix + "-", dir=self._tmp)

    def role_dirs(self):
        """PF_ACCOUNTANT_LOG_DIR and PF_SPOOL_DIR of their own, for one
        serve / accountant / ingress (two may not share one)."""
        d = self.tmpdir("role")
        return {"PF_ACCOUNTANT_LOG_DIR": os.path.join(d, "accountant"),
                "PF_SPOOL_DIR": os.path.join(d, "spool")}

    # --- PostgreSQL --------------------------------------------------------

    def psql(self, url, sql, check=True):
        """Runs sql; returns rows as lists of strings."""
        r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                           env=clean_env(), capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines()]

    def scalar(self, url, sql):
        rows = self.psql(url, sql)
        return rows[0][0] if rows else None

    def new_db(self):
        """Creates an empty database; returns its URL."""
        name = "pf_it_" + secrets.token_hex(6)
        self.psql(self.admin_url, f'CREATE DATABASE "{name}"')
        self.dbs.append(name)
        u = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name,
                                        u.query, u.fragment))

    def priced_db(self, model="m"):
        """A new migrated database with one openai channel to a fresh
        mock model serving model, priced 0.5 / 1.5 per 1M tokens; returns
        (db URL, mock URL)."""
        db = self.new_db()
        self.migrate(db)
        mock = self.start_mock()
        self.admin(db, "channel-add", "--name", model, "--type", "openai",
                   "--base-url", mock, "--key", "k", "--models", model)
        self.admin(db, "price-set", "--model", model, "--input", "0.5",
                   "--output", "1.5")
        return db, mock

    # --- planktonfly -------------------------------------------------------

    def env(self, db_url=None, extra=None):
        e = {}
        if db_url:
            e["PF_DATABASE_URL"] = db_url
        if self.redis_url:
            e["PF_REDIS_URL"] = self.redis_url
        e.update(extra or {})
        return clean_env(e)

    def run(self, args, db_url=None, extra_env=None, timeout=60):
        """Runs `planktonfly ARGS` to completion; returns CompletedProcess
        (text).  A hang is a failure, not a stuck test."""
        try:
            return subprocess.run([self.binary] + args,
                                  env=self.env(db_url, extra_env),
                                  stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(
                e.cmd, -999, e.stdout or "", (e.stderr or "") + "\n(timed out)")

    def migrate(self, db_url):
        r = self.run(["migrate"], db_url)
        if r.returncode != 0:
            raise RuntimeError(f"migrate failed ({r.returncode}):\n"
                               f"{r.stdout}{r.stderr}")
        return r

    def admin(self, db_url, *args):
        """Runs an admin command that must succeed; returns its stdout
        stripped."""
        r = self.run(["admin"] + list(args), db_url)
        if r.returncode != 0:
            raise RuntimeError(f"admin {' '.join(args[:1])} failed "
                               f"({r.returncode}): {r.stderr.strip()}")
        return r.stdout.strip()

    def start(self, name, args, env, ready, timeout=30, nofile=None):
        """Starts a long-running planktonfly ARGS; ready() -> bool polls
        readiness; nofile, if given, is its open-file limit (soft and
        hard).  Returns the Proc, or raises with its output."""
        proc = Proc(name, [self.binary] + args, env, nofile)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ProcessExited(f"{name} exited with {proc.p.returncode}:"
                                    f"\n{proc.output()}")
            try:
                if ready():
                    return proc
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready after {timeout}s:\n"
                           f"{proc.output()}")

    def start_on_free_port(self, start):
        """Calls start(port) with a fresh free port; retries twice when the
        process exits early (another test may have taken the port between
        our probe and its bind)."""
        for attempt in range(3):
            try:
                return start(free_port())
            except ProcessExited:
                if attempt == 2:
                    raise

    def start_accountant(self, db_url, extra_env=None):
        """`planktonfly accountant` on ipc:// sockets of its own; returns
        (env for the ingresses that use it, Proc).  extra_env may name
        PF_ACCOUNTANT_LOG_DIR to restart one on the same log."""
        d = self.tmpdir("acct")
        env = {"PF_ACCOUNTANT_URL": f"ipc://{d}/acct.ipc",
               "PF_ACCOUNTANT_PUB_URL": f"ipc://{d}/acct-pub.ipc",
               "PF_ACCOUNTANT_LOG_DIR": os.path.join(d, "log")}
        env.update(extra_env or {})
        sock = env["PF_ACCOUNTANT_URL"][len("ipc://"):]
        if os.path.exists(sock):
            os.unlink(sock)
        proc = self.start("accountant", ["accountant"],
                          self.env(db_url, env),
                          lambda: os.path.exists(sock))
        return env, proc

    def start_mock(self, extra_args=()):
        def start(port):
            listen = f"127.0.0.1:{port}"

            def ready():
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True

            self.start("mock-model", ["mock-model", "--listen", listen]
                       + list(extra_args), self.env(), ready)
            return f"http://{listen}/v1"

        return self.start_on_free_port(start)

    def start_serve(self, db_url, extra_env=None, nofile=None):
        def start(port):
            base = f"http://127.0.0.1:{port}"
            # extra_env may name the role's directories (a restart)
            env = self.env(db_url, dict({"PF_LISTEN": f"127.0.0.1:{port}",
                                         **self.role_dirs()},
                                        **(extra_env or {})))

            def ready():
                return fetch("GET", base + "/health", timeout=2)[0] == 200

            proc = self.start("serve", ["serve"], env, ready,
                              nofile=nofile)
            return base + "/v1", proc

        return self.start_on_free_port(start)

    def gateway(self, models="mock-gpt,gpt-4o-mini", serve_env=None,
                mock_args=(), upstream=None, prepare=None,
                serve_nofile=None):
        """The walking skeleton: a migrated database, a mock model, a user
        with balance, a token, an openai channel to the mock with `models`,
        a price, and `serve`.  upstream (a base URL ending in /v1) replaces
        the mock model; prepare(g), if given, runs just before `serve`
        starts (more users, tokens, channels).  Returns a Gateway."""
        g = Gateway()
        g.db = self.new_db()
        self.migrate(g.db)
        g.mock_url = upstream or self.start_mock(mock_args)
        g.user_id = self.admin(g.db, "user-create", "--username", "alice",
                               "--quota", "500000000")
        g.key = self.admin(g.db, "token-create", "--user", "alice",
                           "--name", "it", "--unlimited")
        g.models = models.split(",")
        g.channel_id = self.admin(g.db, "channel-add", "--name", "mock",
                                  "--type", "openai", "--base-url",
                                  g.mock_url, "--key", "sk-upstream-secret",
                                  "--models", models)
        for m in g.models:
            self.admin(g.db, "price-set", "--model", m, "--input", "0.5",
                       "--output", "1.5")
        if prepare is not None:
            prepare(g)
        g.base_url, g.proc = self.start_serve(g.db, serve_env,
                                              nofile=serve_nofile)
        return g


class Gateway:
    db = mock_url = base_url = key = user_id = channel_id = None
    models = []
    proc = None

    def host_port(self):
        """(host, port) of the gateway's listener."""
        host, port = self.base_url.split("//")[1].split("/")[0].split(":")
        return host, int(port)

    def raw_chat(self, model, stream=True, headers=""):
        """A complete HTTP/1.1 chat request as bytes, for a raw socket;
        headers: extra header lines, each ending in \\r\\n."""
        body = json.dumps({"model": model, "stream": stream, "messages": [
            {"role": "user", "content": "hi"}]}).encode()
        return (f"POST /v1/chat/completions HTTP/1.1\r\n"
                f"Host: {self.host_port()[0]}\r\n"
                f"Authorization: Bearer {self.key}\r\n"
                f"Content-Type: application/json\r\n{headers}"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def auth(self, key=None):
        return {"Authorization": "Bearer " + (key or self.key)}

    def chat(self, body, headers=None, key=None):
        h = self.auth(key)
        h.update(headers or {})
        return fetch("POST", self.base_url + "/chat/completions", body, h)


class BillingSplit:
    """accountant + worker + ingress over ipc:// on one database (the
    billing tests: the accountant can be stopped on its own, payments sent
    to it with pf-acct-client).  ingress_env adds to the ingress's
    environment."""

    def __init__(self, h, db, client="", ingress_env=None):
        self.h, self.db = h, db
        self.dir = h.tmpdir("split")
        self.acct_env = None
        self.acct = None
        self.acct_log = os.path.join(self.dir, "acct-log")
        self.spool = os.path.join(self.dir, "spool")
        self.worker_url = f"ipc://{self.dir}/w"
        self.reply_url = f"ipc://{self.dir}/reply"
        self.ingress = None
        self.base = None
        self.client = client
        self.ingress_env = dict(ingress_env or {})

    def start_accountant(self):
        self.acct_env, self.acct = self.h.start_accountant(
            self.db, {"PF_ACCOUNTANT_LOG_DIR": self.acct_log,
                      "PF_ACCOUNTANT_URL": f"ipc://{self.dir}/acct.ipc",
                      "PF_ACCOUNTANT_PUB_URL":
                          f"ipc://{self.dir}/acct-pub.ipc"})

    def start_worker(self):
        sock = self.worker_url[len("ipc://"):]
        self.h.start("worker", ["worker"], self.h.env(self.db, {
            "PF_WORKER_URL": self.worker_url}),
            lambda: os.path.exists(sock))

    def start_ingress(self):
        def start(port):
            base = f"http://127.0.0.1:{port}"
            env = self.h.env(self.db, {
                "PF_LISTEN": f"127.0.0.1:{port}",
                "PF_WORKER_URL": self.worker_url,
                "PF_REPLY_URL": self.reply_url,
                "PF_ACCOUNTANT_URL": f"ipc://{self.dir}/acct.ipc",
                "PF_ACCOUNTANT_PUB_URL": f"ipc://{self.dir}/acct-pub.ipc",
                "PF_SPOOL_DIR": self.spool, **self.ingress_env})
            proc = self.h.start("ingress", ["ingress"], env, lambda: fetch(
                "GET", base + "/health", timeout=2)[0] == 200)
            return base + "/v1", proc
        self.base, self.ingress = self.h.start_on_free_port(start)

    def payment(self, uid, trade_no, quota):
        req = {"kind": "payment", "event_id": "topup:" + trade_no,
               "user": int(uid), "quota": quota, "money": quota // 100,
               "provider": "epay", "trade_no": trade_no}
        r = subprocess.run([self.client, self.acct_env["PF_ACCOUNTANT_URL"]],
                           input=json.dumps(req) + "\n",
                           capture_output=True, text=True, timeout=60)
        return r.stdout.strip()

    def spool_files(self):
        if not os.path.isdir(self.spool):
            return []
        return sorted(f for f in os.listdir(self.spool)
                      if f.startswith("spool-") and f.endswith(".log"))

    def spool_bytes(self):
        return sum(os.path.getsize(os.path.join(self.spool, f))
                   for f in self.spool_files())


# --- helpers for the relay tests (test_relay_*.py) -------------------------

TODO_PENDING = "feature pending"


def tap_todo(tap, cond, desc, reason, diag=None):
    """Like tap.ok, but a failure is reported as a TAP TODO
    ("not ok N - desc # TODO reason"), which does not fail the file.  A
    pass is a plain "ok" (meson counts "ok # TODO" as an unexpected
    pass).  For features not landed yet and known gateway bugs."""
    if cond:
        return tap.ok(True, desc)
    tap.n += 1
    print(f"not ok {tap.n} - {desc} # TODO {reason}")
    if diag is not None:
        tap.diag(diag)
    sys.stdout.flush()
    return False


def mock_root(mock_v1_url):
    """http://host:port of a mock model given its .../v1 base URL."""
    u = urllib.parse.urlsplit(mock_v1_url)
    return f"{u.scheme}://{u.netloc}"


def mock_knobs_url(mock_v1_url, **knobs):
    """The mock's base URL with path knobs (docs/mock-model.md), for a
    channel that is faulty without request headers:
    mock_knobs_url(u, status=500, ttfb_ms=50) ->
    http://host:port/mock/knobs/status=500,ttfb-ms=50/v1"""
    spec = ",".join(f"{k.replace('_', '-')}={v}" for k, v in knobs.items())
    return f"{mock_root(mock_v1_url)}/mock/knobs/{spec}/v1"


def mock_stats(mock_v1_url):
    """GET /mock/stats of a mock model as a dict."""
    st, _, body = fetch("GET", mock_root(mock_v1_url) + "/mock/stats")
    if st != 200:
        raise RuntimeError(f"mock stats: {st}")
    return json.loads(body)


def mock_reset(mock_v1_url):
    fetch("POST", mock_root(mock_v1_url) + "/mock/reset")


def mock_set_knobs(mock_v1_url, spec):
    """POST /mock/knobs: spec ("status=500,ttfb-ms=5", "" clears) applies
    to every later request to that mock."""
    st, _, body = fetch("POST", mock_root(mock_v1_url) + "/mock/knobs",
                        spec.encode(), {"Content-Type": "text/plain"})
    if st != 200:
        raise RuntimeError(f"mock knobs {spec!r}: {st} {body[:200]!r}")


class ParallelRequests:
    """One thread per item of args, each running send(*item) once (an
    OSError becomes (0, {}, message)); done[i] is set when request i
    ended, results[i] = (status, headers, body), took[i] = seconds from
    the start."""

    def __init__(self, send, args):
        self.results = [None] * len(args)
        self.took = [None] * len(args)
        self.done = [threading.Event() for _ in args]
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._one, args=(i, send, a))
                        for i, a in enumerate(args)]
        for th in self.threads:
            th.start()

    def _one(self, i, send, a):
        try:
            self.results[i] = send(*a)
        except OSError as e:
            self.results[i] = (0, {}, str(e).encode())
        self.took[i] = round(time.monotonic() - self.t0, 2)
        self.done[i].set()

    def n_done(self):
        return sum(d.is_set() for d in self.done)

    def join(self, timeout=90):
        for th in self.threads:
            th.join(timeout)


def unavailable_503(resp, anthropic, word):
    """resp is a 503 in the API's own error shape (OpenAI
    service_unavailable, or Anthropic overloaded_error) whose message
    names word (e.g. "Billing", "Authentication")."""
    st, _, body = resp
    try:
        j = json.loads(body)
    except (ValueError, TypeError):
        return False
    if st != 503:
        return False
    if anthropic:
        return j.get("type") == "error" and isinstance(j.get("error"), dict) \
            and j["error"].get("type") == "overloaded_error" \
            and word in j["error"].get("message", "")
    err = j.get("error", {})
    return err.get("code") == "service_unavailable" \
        and err.get("type") == "server_error" \
        and word in err.get("message", "")


def pipe(a, b):
    """Copies what socket a receives to socket b until a ends or fails,
    then shuts both down (a relay's one direction; run one per direction,
    each in a thread)."""
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def wait_for(pred, timeout=20.0, step=0.1):
    """Polls pred() until it returns a true value or timeout seconds
    pass; returns the last value.  A bound, not an assertion on time."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def fetch_stream(method, url, body=None, headers=None, timeout=30):
    """Like fetch, but a response cut short (a chunked body without its
    end, a reset) is not an error: returns (status, headers, body bytes,
    complete)."""
    target, conn, body, hdrs = _prepare(url, body, headers, timeout)
    try:
        conn.request(method, target, body=body, headers=hdrs)
        resp = conn.getresponse()
        rh = {k.lower(): v for k, v in resp.getheaders()}
        data = bytearray()
        complete = True
        try:
            while True:
                piece = resp.read1(65536)
                if not piece:
                    break
                data += piece
        except http.client.IncompleteRead as e:
            data += e.partial
            complete = False
        except (ConnectionError, socket.timeout, http.client.HTTPException):
            complete = False
        return resp.status, rh, bytes(data), complete
    finally:
        conn.close()


def raw_request_head(host, port, path, body_len, headers):
    """Bytes of an HTTP/1.1 POST head (for tests on raw sockets)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}",
             f"Content-Length: {body_len}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def open_stream(base_url, key, model, messages, rcvbuf=None):
    """Send a streaming chat request on a raw socket and return it unread
    (tests that hang up, read slowly or shrink the receive buffer)."""
    host, port = base_url.split("//")[1].split("/")[0].split(":")
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20)
    s.connect((host, int(port)))
    body = json.dumps({"model": model, "messages": messages,
                       "stream": True}).encode()
    s.sendall(raw_request_head(host, port, "/v1/chat/completions",
                               len(body), {
                                   "Authorization": "Bearer " + key,
                                   "Content-Type": "application/json"})
              + body)
    return s


def read_until(s, needle, cap=1 << 20):
    """Read from s until needle arrives, EOF, or cap bytes."""
    data = bytearray()
    while needle not in data and len(data) < cap:
        p = s.recv(65536)
        if not p:
            break
        data += p
    return bytes(data)


def proc_rss_kb(proc):
    """VmRSS of a started Proc in KiB (0 if unknown)."""
    try:
        with open(f"/proc/{proc.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def spool_setting(h):
    """The ingress's spool directory setting (PF_...SPOOL...) as listed by
    `planktonfly ingress --help`, or None while the ingress side of
    billing is not built (tests report their billing checks as TODO
    then)."""
    r = h.run(["ingress", "--help"])
    m = re.search(r"\b(PF_[A-Z_]*SPOOL[A-Z_]*)\b", r.stdout + r.stderr)
    return m.group(1) if m else None
