#!/usr/bin/env python3
"""test_bench_tls.py -- `planktonfly bench --url https://...`.

The mock model behind a TLS terminator that this file runs itself
(Python's ssl module; certificates made with the openssl command).  Over
TLS the answers count like plain ones (non-stream, stream, and an open loop
whose idle connections receive the server's session tickets); the
server's certificate is checked against --cacert or the system's store,
and against the URL's host (an IP literal or a DNS name), unless
--insecure; a failed handshake counts as a connect error and says why;
the TLS options without https:// are a usage error; a --requests run
that can make no connection stops.  Needs no services.
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, pipe  # noqa: E402


def make_cert(d, name, san):
    """A self-signed P-256 certificate for san; returns (cert, key)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True)
    return cert, key


class Terminator:
    """Accepts TLS on 127.0.0.1 (and ::1 when it can) and relays the
    plain bytes to target_port, in threads of this process."""

    def __init__(self, cert, key, target_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.target = target_port
        self.socks = []
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        self._listen(s)
        self.v6 = False
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", self.port))
            self._listen(s6)
            self.v6 = True
        except OSError:
            pass

    def _listen(self, s):
        s.listen(128)
        self.socks.append(s)
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        try:
            t = self.ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            c.close()  # the client refused our certificate
            return
        u = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=pipe, args=(t, u), daemon=True).start()
        pipe(u, t)

    def close(self):
        for s in self.socks:
            s.close()


def main():
    with Harness(need_services=False) as h:
        t = h.tap
        d = h.tmpdir("tls")
        cert, key = make_cert(d, "local",
                              "IP:127.0.0.1,IP:::1,DNS:localhost")
        other, okey = make_cert(d, "elsewhere.test", "DNS:elsewhere.test")
        mock = h.start_mock(["--chunks", "8"])
        mock_port = int(mock.split(":")[2].split("/")[0])
        good = Terminator(cert, key, mock_port)
        wrong = Terminator(other, okey, mock_port)

        def bench(url, *args, timeout=60):
            out = os.path.join(d, "result.json")
            if os.path.exists(out):
                os.unlink(out)
            r = h.run(["bench", "--url", url, "--quiet", "--json", out]
                      + list(args), timeout=timeout)
            res = None
            if os.path.exists(out):
                with open(out) as f:
                    res = json.load(f)
            return r, res

        def clean(res, n=None):
            return (res is not None and not any(res["errors"].values())
                    and (n is None or res["ok"] == n))

        url = f"https://127.0.0.1:{good.port}/v1"
        r, res = bench(url, "--cacert", cert, "--requests", "200",
                       "--connections", "4")
        t.ok(r.returncode == 0 and clean(res, 200)
             and res["usage"]["completion_tokens"] == 200 * 8,
             "https with --cacert: 200 answers, no errors, their usage "
             "counted", (r.stdout + r.stderr)[-600:])
        t.ok("POST https://127.0.0.1:" in r.stdout,
             "the summary names the https URL", r.stdout[-300:])

        r, res = bench(url, "--cacert", cert, "--requests", "40",
                       "--connections", "2", "--stream")
        t.ok(clean(res, 40) and res["ttft"]["count"] == 40
             and res["events"] >= 40 * 8,
             "https streams: 40 streams with their first token and events",
             (r.stdout + r.stderr)[-600:])

        # open loop: connections wait idle between requests, where the
        # server's TLS 1.3 session tickets reach them
        r, res = bench(url, "--cacert", cert, "--rate", "50",
                       "--connections", "4", "--duration", "2")
        t.ok(clean(res) and res["ok"] >= 50 and res["connects"] == 4,
             "https open loop: answers on 4 connections kept open, no "
             "errors", (r.stdout + r.stderr)[-600:])

        r, res = bench(url, "--duration", "1")
        t.ok(res is not None and res["ok"] == 0
             and res["errors"]["connect"] > 0
             and "TLS handshake" in r.stderr and "certificate" in r.stderr,
             "a self-signed certificate fails against the system's store: "
             "connect errors, and stderr says why",
             (r.stdout + r.stderr)[-600:])

        # every handshake fails, so no request is ever sent: a --requests
        # run must end by itself, not wait forever
        r, res = bench(url, "--requests", "5", timeout=40)
        t.ok(r.returncode == 1 and "stopping" in r.stderr
             and res is not None and res["ok"] == 0
             and res["errors"]["connect"] > 0,
             "a --requests run that cannot connect stops after 10 s, "
             "exit 1, with its result", (r.stdout + r.stderr)[-600:])

        wurl = f"https://127.0.0.1:{wrong.port}/v1"
        r, res = bench(wurl, "--cacert", other, "--duration", "1")
        t.ok(res is not None and res["ok"] == 0
             and res["errors"]["connect"] > 0 and "mismatch" in r.stderr,
             "a certificate for another name fails (the URL's IP is "
             "checked)", (r.stdout + r.stderr)[-600:])

        r, res = bench(wurl, "--insecure", "--requests", "20")
        t.ok(clean(res, 20), "--insecure accepts that certificate",
             (r.stdout + r.stderr)[-600:])

        if good.v6:
            r, res = bench(f"https://localhost:{good.port}/v1", "--cacert",
                           cert, "--requests", "20")
            t.ok(clean(res, 20), "a DNS name in the URL: checked against "
                 "the certificate and sent as SNI",
                 (r.stdout + r.stderr)[-600:])
            r, res = bench(f"https://localhost:{wrong.port}/v1",
                           "--cacert", other, "--duration", "1")
            t.ok(res is not None and res["ok"] == 0
                 and "mismatch" in r.stderr,
                 "a DNS name the certificate does not carry fails",
                 (r.stdout + r.stderr)[-600:])
        else:
            t.ok(True, "a DNS name in the URL # SKIP no IPv6 loopback")
            t.ok(True, "a DNS name the certificate lacks # SKIP no IPv6")

        r = h.run(["bench", "--url", mock, "--insecure", "--requests", "1"])
        t.eq(r.returncode, 2, "--insecure with http:// is a usage error")
        r = h.run(["bench", "--url", url, "--cacert",
                   os.path.join(d, "none.pem"), "--requests", "1"])
        t.ok(r.returncode == 1 and "trusted certificates" in r.stderr,
             "an unreadable --cacert stops the run at once", r.stderr[-300:])
        good.close()
        wrong.close()


main()
