#!/usr/bin/env python3
"""Per-channel proxies: a channel with --proxy http://... or
socks5h://... reaches its upstream through that proxy (a tiny proxy in
this file counts what passes: HTTP forward requests, CONNECT tunnels,
SOCKS5 connects); a channel without a proxy goes direct even though the
serve process has http_proxy / HTTPS_PROXY / ALL_PROXY pointing at a trap
proxy; a channel whose proxy is down fails over."""
import socket
import struct
import threading

from harness import (Harness, fetch_stream, free_port, mock_stats,
                     parse_sse, pipe)

MESSAGES = [{"role": "user", "content": "hi"}]


def recv_exact(s, n):
    d = b""
    while len(d) < n:
        p = s.recv(n - len(d))
        if not p:
            raise ConnectionError("short read")
        d += p
    return d


class Proxy:
    """HTTP (absolute-form forward and CONNECT) and SOCKS5 (no auth,
    CONNECT, IPv4 or domain names) on one loopback port, counting."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"forward": 0, "connect": 0, "socks5": 0}
        self.targets = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def count(self, kind, target):
        with self.lock:
            self.counts[kind] += 1
            self.targets.append(target)

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        try:
            first = c.recv(1, socket.MSG_PEEK)
            if first == b"\x05":
                self.socks5(c)
            elif first:
                self.http(c)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def socks5(self, c):
        _, n = recv_exact(c, 2)
        recv_exact(c, n)
        c.sendall(b"\x05\x00")
        ver, cmd, _, atyp = recv_exact(c, 4)
        if atyp == 1:
            host = socket.inet_ntoa(recv_exact(c, 4))
        elif atyp == 3:
            host = recv_exact(c, recv_exact(c, 1)[0]).decode()
        else:
            c.sendall(b"\x05\x08\x00\x01" + b"\0" * 6)
            return
        port = struct.unpack("!H", recv_exact(c, 2))[0]
        if cmd != 1:
            c.sendall(b"\x05\x07\x00\x01" + b"\0" * 6)
            return
        try:
            u = socket.create_connection((host, port), timeout=10)
        except OSError:
            c.sendall(b"\x05\x05\x00\x01" + b"\0" * 6)
            return
        self.count("socks5", f"{atyp}:{host}:{port}")
        c.sendall(b"\x05\x00\x00\x01" + b"\0" * 6)
        self.tunnel(c, u)

    def http(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            p = c.recv(65536)
            if not p:
                return
            head += p
            if len(head) > 65536:
                return
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            u = socket.create_connection((host, int(port)), timeout=10)
            self.count("connect", target)
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                u.sendall(rest)
            self.tunnel(c, u)
            return
        if not target.startswith("http://"):
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n"
                      b"Content-Length: 0\r\n\r\n")
            return
        hostport, _, path = target[len("http://"):].partition("/")
        host, _, port = hostport.partition(":")
        u = socket.create_connection((host, int(port or 80)), timeout=10)
        self.count("forward", target)
        # one request per connection: the upstream closes after it
        out = [f"{method} /{path} {version}"]
        out += [ln for ln in lines[1:]
                if not ln.lower().startswith(("connection:",
                                              "proxy-connection:"))]
        out.append("Connection: close")
        u.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rest)
        self.tunnel(c, u)

    def tunnel(self, c, u):
        t = threading.Thread(target=pipe, args=(u, c), daemon=True)
        t.start()
        pipe(c, u)
        t.join(30)
        u.close()


with Harness() as h:
    t = h.tap
    via_http = Proxy()
    via_socks = Proxy()
    trap = Proxy()
    trap_url = f"http://127.0.0.1:{trap.port}"
    env_proxies = {k: trap_url for k in (
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
        "all_proxy", "ALL_PROXY")}
    down = f"http://127.0.0.1:{free_port()}"
    direct = h.start_mock()

    def prepare(g):
        def add(name, models, proxy, base=None, prio=0):
            args = ["channel-add", "--name", name, "--type", "openai",
                    "--base-url", base or g.mock_url, "--key", "k",
                    "--models", models, "--priority", str(prio)]
            if proxy:
                args += ["--proxy", proxy]
            h.admin(g.db, *args)
        add("http-proxy", "via-http", f"http://127.0.0.1:{via_http.port}")
        # a host name, so socks5h has a name for the proxy to resolve
        add("socks5h", "via-socks", f"socks5h://127.0.0.1:{via_socks.port}",
            base=g.mock_url.replace("127.0.0.1", "localhost"))
        add("direct", "direct", None, base=direct)
        add("proxy-down", "failover", down, prio=10)
        add("direct-fb", "failover", None, base=direct, prio=5)

        # the gateway's own channel serves only "unused"
        h.psql(g.db, "DELETE FROM abilities WHERE model <> 'unused' "
                     "AND channel_id = " + g.channel_id)

    serve_env = dict(env_proxies, no_proxy="", NO_PROXY="")
    g = h.gateway(models="unused,via-http,via-socks,direct,failover",
                  prepare=prepare, serve_env=serve_env)

    def requests_of(mock):
        return mock_stats(mock)["requests"]

    before = requests_of(g.mock_url)
    st, _, _ = g.chat({"model": "via-http", "messages": MESSAGES})
    t.eq(st, 200, "channel with an http:// proxy: 200")
    c = via_http.snapshot()
    t.eq(c["forward"] + c["connect"], 1,
         "the http proxy carried exactly one request")
    t.eq(requests_of(g.mock_url) - before, 1, "... which reached the mock")

    st, _, body, complete = fetch_stream(
        "POST", g.base_url + "/chat/completions",
        {"model": "via-http", "messages": MESSAGES, "stream": True},
        g.auth())
    events, problems = parse_sse(body)
    t.ok(st == 200 and complete and events[-1:] == ["[DONE]"],
         "a stream through the http proxy arrives whole", problems)
    c = via_http.snapshot()
    t.eq(c["forward"] + c["connect"], 2, "... and went through the proxy")

    st, _, _ = g.chat({"model": "via-socks", "messages": MESSAGES})
    t.eq(st, 200, "channel with a socks5h:// proxy: 200")
    t.eq(via_socks.snapshot()["socks5"], 1,
         "the SOCKS5 proxy carried exactly one connection")
    with via_socks.lock:
        target = via_socks.targets[-1] if via_socks.targets else ""
    t.ok(target.startswith("3:"),
         "socks5h: the proxy resolved the name (domain address type)",
         target)

    st, _, _ = g.chat({"model": "direct", "messages": MESSAGES})
    t.eq(st, 200, "channel without a proxy: 200")
    t.eq(requests_of(direct), 1, "the direct channel's mock got it")
    st, _, _ = g.chat({"model": "failover", "messages": MESSAGES})
    t.eq(st, 200, "channel whose proxy is down: failover, 200")
    t.eq(requests_of(direct), 2, "... served by the next (direct) channel")
    t.eq(trap.snapshot(), {"forward": 0, "connect": 0, "socks5": 0},
         "*_proxy environment variables were ignored (trap proxy unused)")
