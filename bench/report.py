#!/usr/bin/env python3
"""bench/report.py STAGES_DIR OUT_DIR NAME -- turns the stage results that
bench/run collected into OUT_DIR/NAME.md, NAME.json and NAME.svg."""
import json
import os
import subprocess
import sys

stages_dir, out_dir, name = sys.argv[1:4]


def read(path, default=None):
    try:
        with open(os.path.join(stages_dir, path)) as f:
            return f.read().strip()
    except OSError:
        return default


machine = dict(
    line.split("=", 1) for line in read("machine", "").splitlines() if "=" in line
)
clk_tck = int(machine.get("clk_tck", "100"))
rates = [int(r) for r in machine.get("rates", "").split()]
stages = {}
for fn in sorted(os.listdir(stages_dir)):
    if fn.endswith(".json"):
        n = fn[:-5]
        with open(os.path.join(stages_dir, fn)) as f:
            stages[n] = json.load(f)
        cpu = read(n + ".cpu")
        if cpu is not None:
            stages[n]["gateway_cpu_ticks"] = int(cpu)
        cs = read(n + ".cs")
        if cs is not None:
            stages[n]["gateway_ctx_switches"] = int(cs)


def st(n):
    return stages.get(n)


def q(n, hist, p):
    s = st(n)
    return s[hist][p] if s and s[hist]["count"] else None


def us(ns):
    return "–" if ns is None else "%.1f µs" % (ns / 1000.0)


def sus(ns):
    return "–" if ns is None else "%+.1f µs" % (ns / 1000.0)


def added(t, n, hist, p):
    a, d = q("%s-%s" % (n, t), hist, p), q("%s-direct" % n, hist, p)
    return None if a is None or d is None else a - d


def cpu_per_req(n):
    s = st(n)
    if not s or "gateway_cpu_ticks" not in s or not s["usage"]["answers"]:
        return None
    return s["gateway_cpu_ticks"] * 1e6 / clk_tck / s["usage"]["answers"]


def cs_per_req(n):
    s = st(n)
    if not s or "gateway_ctx_switches" not in s or not s["usage"]["answers"]:
        return None
    return s["gateway_ctx_switches"] / s["usage"]["answers"]


def rss(f):
    v = read(f)
    return int(v) if v else None


derived = {}
for t in ("serve", "split"):
    d = {}
    d["added_p50_ns_c1"] = added(t, "c1", "latency", "p50")
    d["added_p99_ns_c1"] = added(t, "c1", "latency", "p99")
    d["added_ttft_p50_ns"] = added(t, "s1", "ttft", "p50")
    d["added_ttft_p99_ns"] = added(t, "s1", "ttft", "p99")
    for r in rates:
        d["added_p50_ns_r%d" % r] = added(t, "r%d" % r, "latency", "p50")
        d["added_p99_ns_r%d" % r] = added(t, "r%d" % r, "latency", "p99")
        d["cpu_us_per_req_r%d" % r] = cpu_per_req("r%d-%s" % (r, t))
    d["cpu_us_per_req_c64"] = cpu_per_req("c64-" + t)
    d["cpu_us_per_req_c1"] = cpu_per_req("c1-" + t)
    d["cpu_us_per_stream_s64"] = cpu_per_req("s64-" + t)
    d["ctx_switches_per_req_c1"] = cs_per_req("c1-" + t)
    d["ctx_switches_per_req_c64"] = cs_per_req("c64-" + t)
    g, dr = st("c64-" + t), st("c64-direct")
    d["throughput_ratio_c64"] = (
        g["rps"] / dr["rps"] if g and dr and dr["rps"] else None
    )
    g, dr = st("s64-" + t), st("s64-direct")
    d["stream_throughput_ratio_s64"] = (
        g["rps"] / dr["rps"] if g and dr and dr["rps"] else None
    )
    d["rss_idle_kb"] = rss("rss-idle-" + t)
    d["rss_load_kb"] = rss("rss-load-" + t)
    h = st("hold-" + t)
    before, peak = rss("rss-before-hold-" + t), rss("rss-hold-" + t)
    d["streams_held"] = h["max_open_streams"] if h else None
    d["rss_before_hold_kb"] = before
    d["rss_hold_peak_kb"] = peak
    d["rss_per_stream_bytes"] = (
        (peak - before) * 1024 / h["max_open_streams"]
        if h and h["max_open_streams"] and peak and before is not None
        else None
    )
    derived[t] = d

with open(os.path.join(out_dir, name + ".json"), "w") as f:
    json.dump({"machine": machine, "derived": derived, "stages": stages}, f,
              indent=1, sort_keys=True)

# Plot: added latency against offered load.
svg = None
plot_rows = []
for r in rates:
    row = [r]
    for t in ("serve", "split"):
        for p in ("p50", "p99"):
            v = derived[t].get("added_%s_ns_r%d" % (p, r))
            row.append("NaN" if v is None else "%.1f" % (v / 1000.0))
    plot_rows.append(row)
if plot_rows and subprocess.call(["sh", "-c", "command -v gnuplot >/dev/null"]) == 0:
    dat = os.path.join(stages_dir, "added.dat")
    with open(dat, "w") as f:
        for row in plot_rows:
            f.write(" ".join(str(x) for x in row) + "\n")
    svg = name + ".svg"
    script = f"""
set terminal svg size 800,480 dynamic font 'sans,12'
set output '{os.path.join(out_dir, svg)}'
set title 'Planktonfly added latency (gateway - direct) vs offered load, {machine.get("host","")}'
set xlabel 'offered load, requests/s (open loop)'
set ylabel 'added latency, µs'
set key top left
set grid
plot '{dat}' using 1:2 with linespoints title 'serve p50', \\
     '' using 1:3 with linespoints title 'serve p99', \\
     '' using 1:4 with linespoints title 'split (ipc) p50', \\
     '' using 1:5 with linespoints title 'split (ipc) p99'
"""
    if subprocess.run(["gnuplot"], input=script.encode()).returncode != 0:
        svg = None


def ok(v, limit, le=True):
    if v is None:
        return "–"
    return "met" if (v <= limit if le else v >= limit) else "**missed**"


def fmt(v, f="%.1f"):
    return "–" if v is None else f % v


L = []
w = L.append
w("# Planktonfly benchmark %s\n" % name)
w("Generated by `bench/run` on %s. Machine: **%s**, %s × %s, %s RAM, "
  "Linux %s. Build: commit `%s`%s, buildtype `%s`. Everything on "
  "loopback; the load generator, the mock model (1 thread) and the gateway "
  "share the CPUs. Load average (1/5/15 min): %s.\n" % (
      machine.get("date"), machine.get("host"), machine.get("cpus"),
      machine.get("cpu"), machine.get("mem"), machine.get("kernel"),
      machine.get("commit"),
      " (+%s uncommitted files)" % machine.get("dirty")
      if machine.get("dirty", "0") != "0" else "",
      machine.get("buildtype"), machine.get("loadavg", "?")))
w("*serve* = `planktonfly serve` (ingress + worker in one process, "
  "inproc://); *split* = `planktonfly ingress` + `planktonfly worker` as two "
  "processes over ipc://; *direct* = the load generator straight to the "
  "mock model. Added = gateway − direct, same stage, same run.\n")
w("## Targets (issue 5)\n")
w("| metric | target | serve | | split | |")
w("|---|---|---|---|---|---|")
S, P = derived["serve"], derived["split"]


def trow(label, target, key, limit, scale=1.0, f="%.1f", le=True, unit=""):
    a, b = S.get(key), P.get(key)
    a = None if a is None else a * scale
    b = None if b is None else b * scale
    w("| %s | %s | %s%s | %s | %s%s | %s |" % (
        label, target, fmt(a, f), unit if a is not None else "",
        ok(a, limit, le), fmt(b, f), unit if b is not None else "",
        ok(b, limit, le)))


trow("added latency p50, 1 connection, non-stream", "≤ 30 µs",
     "added_p50_ns_c1", 30, 0.001, unit=" µs")
trow("added latency p99, 1 connection, non-stream", "≤ 100 µs",
     "added_p99_ns_c1", 100, 0.001, unit=" µs")
trow("gateway CPU per request (64 connections)", "≤ 20 µs",
     "cpu_us_per_req_c64", 20, unit=" µs")
trow("added time to first token p50, 1 connection", "≤ 100 µs",
     "added_ttft_p50_ns", 100, 0.001, unit=" µs")
trow("throughput at 64 connections / direct", "≥ 50 %",
     "throughput_ratio_c64", 50, 100.0, f="%.0f", le=False, unit=" %")
streams_target = int(machine.get("streams", "10000"))
trow("concurrent streams held", "%d" % streams_target, "streams_held",
     streams_target, f="%d", le=False)
trow("RSS per open stream", "≤ 8 KiB", "rss_per_stream_bytes", 8,
     1 / 1024.0, unit=" KiB")
trow("idle RSS", "≤ 20 MB", "rss_idle_kb", 20, 1 / 1000.0, unit=" MB")
w("")
checks = [(n, (st(n) or {}).get("billing")) for n in
          ("billing-serve", "billing-serve-stream", "billing-split")]
checks = [(n, b) for n, b in checks if b is not None]
if not checks:
    w("Billing check: not run (the build does not bill yet, or the "
      "stage was not asked for).\n")
else:
    w("Billing check (`planktonfly bench --check-billing`: every completed "
      "answer looked up by its x-request-id in the ledger):\n")
    w("| run | result | answers checked | in the ledger | charged | "
      "expected | other rows (cost) |")
    w("|---|---|---|---|---|---|---|")
    for n, b in checks:
        if "error" in b:
            w("| %s | **error**: %s | | | | | |" % (n, b["error"]))
            continue
        w("| %s | %s | %d | %d | %d | %d | %d (%d) |" % (
            n, "OK" if b["ok"] else "**FAILED**: " + b["why"], b["checked"],
            b["found"], b["charged"], b["expected"], b["other_rows"],
            b["other_cost"]))
    w("")
    w("Other rows are requests of the run that did not complete for the "
      "bench (in flight when it stopped, cut): billed by the policy, not "
      "compared.\n")

w("## Added latency\n")
w("| load | serve p50 | serve p99 | split p50 | split p99 |")
w("|---|---|---|---|---|")
w("| 1 connection (closed loop) | %s | %s | %s | %s |" % (
    sus(S["added_p50_ns_c1"]), sus(S["added_p99_ns_c1"]),
    sus(P["added_p50_ns_c1"]), sus(P["added_p99_ns_c1"])))
for r in rates:
    w("| %d req/s (open loop) | %s | %s | %s | %s |" % (
        r, sus(S["added_p50_ns_r%d" % r]), sus(S["added_p99_ns_r%d" % r]),
        sus(P["added_p50_ns_r%d" % r]), sus(P["added_p99_ns_r%d" % r])))
w("| TTFT, stream, 1 connection | %s | %s | %s | %s |" % (
    sus(S["added_ttft_p50_ns"]), sus(S["added_ttft_p99_ns"]),
    sus(P["added_ttft_p50_ns"]), sus(P["added_ttft_p99_ns"])))
w("")
if svg:
    w("![added latency against load](%s)\n" % svg)

w("## CPU and memory of the gateway\n")
w("| | serve | split (ingress + worker) |")
w("|---|---|---|")
w("| CPU µs per request, 1 connection | %s | %s |" % (
    fmt(S["cpu_us_per_req_c1"]), fmt(P["cpu_us_per_req_c1"])))
for r in rates:
    w("| CPU µs per request, %d req/s | %s | %s |" % (
        r, fmt(S["cpu_us_per_req_r%d" % r]), fmt(P["cpu_us_per_req_r%d" % r])))
w("| CPU µs per request, 64 connections | %s | %s |" % (
    fmt(S["cpu_us_per_req_c64"]), fmt(P["cpu_us_per_req_c64"])))
w("| CPU µs per stream (22 events), 64 connections | %s | %s |" % (
    fmt(S["cpu_us_per_stream_s64"]), fmt(P["cpu_us_per_stream_s64"])))
w("| context switches per request, 1 connection | %s | %s |" % (
    fmt(S["ctx_switches_per_req_c1"]), fmt(P["ctx_switches_per_req_c1"])))
w("| context switches per request, 64 connections | %s | %s |" % (
    fmt(S["ctx_switches_per_req_c64"]), fmt(P["ctx_switches_per_req_c64"])))
w("| throughput vs direct, 64 connections | %s | %s |" % (
    fmt(S["throughput_ratio_c64"] and S["throughput_ratio_c64"] * 100, "%.0f %%"),
    fmt(P["throughput_ratio_c64"] and P["throughput_ratio_c64"] * 100, "%.0f %%")))
w("| stream throughput vs direct, 64 connections | %s | %s |" % (
    fmt(S["stream_throughput_ratio_s64"] and S["stream_throughput_ratio_s64"] * 100, "%.0f %%"),
    fmt(P["stream_throughput_ratio_s64"] and P["stream_throughput_ratio_s64"] * 100, "%.0f %%")))
w("| RSS idle | %s | %s |" % (
    fmt(S["rss_idle_kb"], "%d KiB"), fmt(P["rss_idle_kb"], "%d KiB")))
w("| RSS at 64 connections | %s | %s |" % (
    fmt(S["rss_load_kb"], "%d KiB"), fmt(P["rss_load_kb"], "%d KiB")))
w("| streams held open at once | %s | %s |" % (
    fmt(S["streams_held"], "%d"), fmt(P["streams_held"], "%d")))
w("| RSS before / peak while holding | %s / %s | %s / %s |" % (
    fmt(S["rss_before_hold_kb"], "%d KiB"), fmt(S["rss_hold_peak_kb"], "%d KiB"),
    fmt(P["rss_before_hold_kb"], "%d KiB"), fmt(P["rss_hold_peak_kb"], "%d KiB")))
w("| RSS per open stream | %s | %s |" % (
    fmt(S["rss_per_stream_bytes"], "%.0f B"),
    fmt(P["rss_per_stream_bytes"], "%.0f B")))
w("")
w("CPU = utime + stime of the gateway process(es) from /proc/PID/stat over "
  "the whole stage (warmup included) divided by the 2xx answers of the "
  "stage (warmup included); resolution 1/%d s.\n" % clk_tck)

w("## Every stage\n")
w("Latency from the intended send time (open loop) or the send "
  "(closed loop), to the last byte; TTFT to the first SSE event.\n")
w("| stage | measured | req/s | p50 | p90 | p99 | p99.9 | max | TTFT p50 | "
  "TTFT p99 | non-2xx | errors | max open streams |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
order = ["c1", *("r%d" % r for r in rates), "c64", "s1", "s64", "hold"]
for o in order:
    for t in ("direct", "serve", "split"):
        s = st("%s-%s" % (o, t))
        if not s:
            continue
        lat = s["latency"]
        non2xx = sum(v for k, v in s["status_class"].items() if k != "2xx")
        errs = sum(s["errors"].values())
        w("| %s-%s | %.1f s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s |" % (
            o, t, s["elapsed_ns"] / 1e9, s["rps"], us(lat["p50"]), us(lat["p90"]), us(lat["p99"]),
            us(lat["p99.9"]), us(lat["max"]),
            us(s["ttft"]["p50"]) if s["ttft"]["count"] else "–",
            us(s["ttft"]["p99"]) if s["ttft"]["count"] else "–",
            non2xx, errs,
            s["max_open_streams"] if s["config"]["stream"] else "–"))
w("")
w("Stages: `c1` 1 connection; `rN` open loop at N req/s (64 connections "
  "available); `c64` 64 connections; `s1`/`s64` streams (16 content "
  "chunks, no delay) on 1/64 connections; `hold` %s connections each "
  "holding a stream of 30 chunks 1 s apart (the stage ends before the "
  "streams do). Each stage runs 1 s of warmup (not recorded) first, "
  "except `hold`.\n" % (machine.get("streams"),))

perf_self = read("perf-self.txt")
if perf_self:
    w("## Profile: serve at 64 connections (perf, self time)\n")
    w("```")
    w(perf_self)
    w("```\n")
perf_dso = read("perf-dso.txt")
if perf_dso:
    w("By library (self time):\n")
    w("```")
    w(perf_dso)
    w("```\n")
perf_children = read("perf-children.txt")
if perf_children:
    w("Inclusive (children) ≥ 5 %:\n")
    w("```")
    w(perf_children)
    w("```\n")

with open(os.path.join(out_dir, name + ".md"), "w") as f:
    f.write("\n".join(L) + "\n")
