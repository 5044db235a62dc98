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
        dbcpu = read(n + ".dbcpu")
        if dbcpu is not None:
            stages[n]["db_cpu_ticks"] = int(dbcpu)
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


rounds = int(machine.get("rounds", "1"))


def round_names(n):
    """The stage N of each round: N, then NrK (bench/run's one_conn runs
    the 1-connection stages in rounds; the others run once)."""
    return [n] + ["%sr%d" % (n, k) for k in range(2, rounds + 1)]


def added_rounds(t, n, hist, p):
    """Gateway - direct in each round that has both (same round: the
    machine in the same phase)."""
    out = []
    for m in round_names(n):
        a, d = q("%s-%s" % (m, t), hist, p), q("%s-direct" % m, hist, p)
        if a is not None and d is not None:
            out.append(a - d)
    return out


def added(t, n, hist, p):
    """The median over the rounds of the added latency (one round: it)."""
    v = sorted(added_rounds(t, n, hist, p))
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) // 2


def cpu_per_req(n):
    s = st(n)
    if not s or "gateway_cpu_ticks" not in s or not s["usage"]["answers"]:
        return None
    return s["gateway_cpu_ticks"] * 1e6 / clk_tck / s["usage"]["answers"]


def db_cpu_per_req(n):
    s = st(n)
    if not s or "db_cpu_ticks" not in s or not s["usage"]["answers"]:
        return None
    return s["db_cpu_ticks"] * 1e6 / clk_tck / s["usage"]["answers"]


def cs_per_req(n):
    s = st(n)
    if not s or "gateway_ctx_switches" not in s or not s["usage"]["answers"]:
        return None
    return s["gateway_ctx_switches"] / s["usage"]["answers"]


def rss(f):
    v = read(f)
    return int(v) if v else None


def hold_samples(t):
    """bench/run's samples of the hold stage: (ms, rss KiB, streams open
    at the load generator, streams open at the slow mock, [descriptors
    of each gateway process])."""
    out = []
    for line in (read("hold-%s.samples" % t) or "").splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        try:
            out.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]),
                        [int(x) for x in f[4].split(",") if x]))
        except ValueError:
            continue
    return out


def hold_derive(t, d, target):
    """The hold stage's numbers: RSS taken where the held count has
    plateaued, divided only by the streams held then; and, when the
    target was not reached, why."""
    h = st("hold-" + t)
    smp = hold_samples(t)
    before = rss("rss-before-hold-" + t)
    d["streams_target"] = target
    d["streams_held"] = h["max_open_streams"] if h else None
    d["rss_before_hold_kb"] = before
    d["rss_hold_peak_kb"] = max((x[1] for x in smp), default=None)
    d["rss_per_stream_bytes"] = None
    d["rss_per_connection_bytes"] = None
    d["hold_why_short"] = []
    d["hold_notes"] = []
    left = (read("hold-%s.leftover" % t) or "").split()
    if len(left) == 2 and int(left[0]) <= 0 and int(left[1]) > 2:
        d["hold_notes"].append(
            "the streams of the stage before were still open at the slow "
            "mock for %s s after it ended (the gateway had not cancelled "
            "them upstream); this stage started after they had ended"
            % left[1])
    if len(left) == 2 and int(left[0]) > 0:
        d["hold_notes"].append(
            "%s streams of the stage before were still open at the slow "
            "mock %s s after it ended (the gateway had not cancelled them "
            "upstream); the slow mock was restarted before this stage"
            % (left[0], left[1]))
    for line in (read("hold-%s.reenabled" % t) or "").splitlines():
        f = line.split(None, 2)
        if len(f) == 3:
            d["hold_notes"].append(
                "channel %s was disabled (status %s) when this stage was "
                "to start (a stage before failed on it); bench/run enabled "
                "it again" % (f[2], f[1]))
    probe = read("hold-%s.probe" % t)
    if probe and probe != "200":
        d["hold_notes"].append("the probe stream before the stage did not "
                               "go through (status %s)" % probe)
    if not h:
        return
    conns = h["config"]["connections"]
    # how the stage ended (bench/run's hold-T.end): "held" (all streams
    # open for the hold time), "stalled" (no more opened for a while) or
    # "limit" (the ramp limit); ms until all were open (-1: never), until
    # the most were open, and until the end
    end = (read("hold-%s.end" % t) or "").split()
    if len(end) == 4:
        d["hold_ended"] = end[0]
        d["hold_all_open_ms"] = int(end[1]) if int(end[1]) >= 0 else None
        d["hold_most_open_ms"] = int(end[2])
        d["hold_stage_ms"] = int(end[3])
    # connections whose stream was not open when the most were: never
    # started in time (or ended before the peak, counted below)
    d["hold_never_started"] = max(0, conns - h["max_open_streams"])
    # streams that ended during the stage (answered in full, non-2xx or
    # failed): the streams outlast the stage, so each is a held stream
    # lost, and the held count undercounts by as many
    d["hold_ended_during"] = sum(h["status_class"].values()) + \
        sum(h["errors"].values())
    mx = max((x[2] for x in smp), default=0)
    if mx > 0 and before is not None:
        # the plateau: samples within 2 % of the most streams open,
        # without the last sample (it may come after the load generator
        # closed its connections)
        body = smp[:-1] if len(smp) > 1 else smp
        plat = [x for x in body if x[2] >= 0.98 * mx] or \
            [x for x in smp if x[2] >= 0.98 * mx]
        at = max(plat, key=lambda x: x[1])
        d["hold_plateau"] = {"ms": at[0], "rss_kb": at[1], "held": at[2],
                             "open_at_mock": at[3], "fds": at[4]}
        d["rss_plateau_kb"] = at[1]
        d["streams_held_plateau"] = at[2]
        d["rss_per_stream_bytes"] = (at[1] - before) * 1024.0 / at[2]
        d["rss_per_connection_bytes"] = (at[1] - before) * 1024.0 / conns
    held = d["streams_held"] or 0
    if held >= 0.99 * target:
        return
    why = d["hold_why_short"]
    lim = {}
    for line in (read("hold-%s.limits" % t) or "").splitlines():
        f = line.split()
        if len(f) == 2 and f[1].isdigit():
            lim[f[0]] = int(f[1])
    roles = list(lim.keys())
    before_fds = [int(x) for x in (read("hold-%s.fds-before" % t) or "")
                  .split(",") if x.strip().isdigit()]
    per_stream = {"serve": 2, "ingress": 1, "worker": 1}
    for i, r in enumerate(roles):
        L = lim[r]
        peak = max((x[4][i] for x in smp if len(x[4]) > i), default=0)
        if peak >= L - 64:
            why.append("%s reached its open-file limit (%d descriptors of "
                       "%d)" % (r, peak, L))
        k = per_stream.get(r)
        if k and i < len(before_fds):
            # the gateway accepts (limit - 256) / k client connections
            # (PF_FD_RESERVE, docs/operating.md "Open files")
            cap = (L - max(before_fds[i], 256)) // k
            if cap < target:
                why.append("%s's open-file limit of %d allows at most "
                           "~%d streams (%d descriptor%s per stream, 256 "
                           "kept for the gateway's own files)"
                           % (r, L, cap, k, "s" if k > 1 else ""))
    if d.get("hold_ended") == "stalled":
        why.append("no more stream opened for %s s (the most, %d, were open "
                   "%.1f s into the stage)" % (
                       machine.get("hold_stall_secs", "?"),
                       h["max_open_streams"], d["hold_most_open_ms"] / 1e3))
    elif d.get("hold_ended") == "limit":
        why.append("not all streams had opened by the stage's limit of "
                   "%.0f s" % (d["hold_stage_ms"] / 1e3))
    errs = {k: v for k, v in h["errors"].items() if v}
    if errs:
        why.append("load generator errors: " + ", ".join(
            "%s %d" % kv for kv in sorted(errs.items())))
    bad = {k: v for k, v in h.get("status", {}).items()
           if not k.startswith("2") and v}
    if bad:
        why.append("non-2xx answers: " + ", ".join(
            "%s × %d" % kv for kv in sorted(bad.items())))
    if len(smp) >= 6:
        last = [x for x in smp[:-1] if x[2] > 0]
        if len(last) >= 5 and last[-1][2] - last[-5][2] > 0.01 * last[-1][2]:
            rate = (last[-1][2] - last[-5][2]) * 1000.0 / max(
                1, last[-1][0] - last[-5][0])
            why.append("streams were still starting when the stage ended "
                       "(%.0f/s over its last 2 s): starting them is slower "
                       "than the stage (CPU)" % rate)
    pl = d.get("hold_plateau")
    if pl and pl["open_at_mock"] > pl["held"] + max(2, 0.01 * pl["held"]):
        why.append("%d streams were open at the slow mock but only %d had "
                   "reached the load generator (streams stuck in the "
                   "gateway)" % (pl["open_at_mock"], pl["held"]))
    if not why:
        why.append("not found by bench/run (see its stages/hold-%s.txt)" % t)


derived = {}
for t in ("serve", "split"):
    d = {}
    d["added_p50_ns_c1"] = added(t, "c1", "latency", "p50")
    d["added_p99_ns_c1"] = added(t, "c1", "latency", "p99")
    d["added_ttft_p50_ns"] = added(t, "s1", "ttft", "p50")
    d["added_ttft_p99_ns"] = added(t, "s1", "ttft", "p99")
    d["added_p50_ns_c1_rounds"] = added_rounds(t, "c1", "latency", "p50")
    d["added_ttft_p50_ns_rounds"] = added_rounds(t, "s1", "ttft", "p50")
    for r in rates:
        d["added_p50_ns_r%d" % r] = added(t, "r%d" % r, "latency", "p50")
        d["added_p99_ns_r%d" % r] = added(t, "r%d" % r, "latency", "p99")
        d["cpu_us_per_req_r%d" % r] = cpu_per_req("r%d-%s" % (r, t))
    d["cpu_us_per_req_c64"] = cpu_per_req("c64-" + t)
    d["cpu_us_per_req_c1"] = cpu_per_req("c1-" + t)
    d["cpu_us_per_stream_s64"] = cpu_per_req("s64-" + t)
    d["db_cpu_us_per_req_c1"] = db_cpu_per_req("c1-" + t)
    d["db_cpu_us_per_req_c64"] = db_cpu_per_req("c64-" + t)
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
    d["pss_idle_kb"] = rss("pss-idle-" + t)
    d["rss_load_kb"] = rss("rss-load-" + t)
    hold_derive(t, d, int(machine.get("streams", "10000")))
    derived[t] = d

# The reference proxies (nginx, HAProxy): the same c1 / c64 / s1
# measures as the gateways.
reference = (read("reference") or "").split()
for t in reference:
    d = {}
    d["added_p50_ns_c1"] = added(t, "c1", "latency", "p50")
    d["added_p99_ns_c1"] = added(t, "c1", "latency", "p99")
    d["added_ttft_p50_ns"] = added(t, "s1", "ttft", "p50")
    d["added_p50_ns_c1_rounds"] = added_rounds(t, "c1", "latency", "p50")
    d["added_ttft_p50_ns_rounds"] = added_rounds(t, "s1", "ttft", "p50")
    d["cpu_us_per_req_c64"] = cpu_per_req("c64-" + t)
    d["ctx_switches_per_req_c64"] = cs_per_req("c64-" + t)
    g, dr = st("c64-" + t), st("c64-direct")
    d["throughput_ratio_c64"] = (
        g["rps"] / dr["rps"] if g and dr and dr["rps"] else None
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
if any(x != "NaN" for row in plot_rows for x in row[1:]) and subprocess.call(["sh", "-c", "command -v gnuplot >/dev/null"]) == 0:
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
w("Open files: soft limit %s for everything bench/run starts (the target "
  "needs %s through serve, 2 per stream; %s). Database: %s.\n" % (
      machine.get("nofile", "?"), machine.get("nofile_need", "?"),
      machine.get("nofile_raise", "?"), machine.get("postgres", "?")))
w("*serve* = `planktonfly serve` (ingress + worker in one process; by "
  "default (PF_SERVE_FUSED=1, since session 5) each of its PF_HTTP_THREADS "
  "loops runs an HTTP daemon and the upstream transfers of its requests, "
  "so a request crosses no thread); *split* = ingress + worker + "
  "accountant as three processes over ipc:// (run as %s); *direct* = the "
  "load generator straight to the mock model. Added = gateway − direct, "
  "same stage, same run.\n" % ", ".join(
      "`%s`" % c.strip() for c in machine.get(
          "split_cmds", "planktonfly ingress, planktonfly worker, "
          "planktonfly accountant").split(",")))
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


def upper(x):
    """' (upper bound)' when connections without a stream were counted."""
    h, tg = x.get("streams_held_plateau"), x.get("streams_target")
    return " (upper bound)" if h and tg and h < 0.99 * tg else ""


trow("RSS per held stream (at the plateau; see Holding streams)",
     "≤ 8 KiB", "rss_per_stream_bytes", 8, 1 / 1024.0, unit=" KiB")
if upper(S) or upper(P):
    L[-1] = "| RSS per held stream (at the plateau; see Holding streams) | " \
        "≤ 8 KiB | %s%s | %s | %s%s | %s |" % (
            fmt(S.get("rss_per_stream_bytes") and
                S["rss_per_stream_bytes"] / 1024.0, "%.1f KiB"), upper(S),
            ok(S.get("rss_per_stream_bytes") and
               S["rss_per_stream_bytes"] / 1024.0, 8),
            fmt(P.get("rss_per_stream_bytes") and
                P["rss_per_stream_bytes"] / 1024.0, "%.1f KiB"), upper(P),
            ok(P.get("rss_per_stream_bytes") and
               P["rss_per_stream_bytes"] / 1024.0, 8))
trow("idle RSS (summed over the processes)", "≤ 20 MB", "rss_idle_kb", 20,
     1 / 1000.0, unit=" MB")
trow("idle PSS (summed; shared pages counted once)", "≤ 20 MB",
     "pss_idle_kb", 20, 1 / 1000.0, unit=" MB")
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
if rounds > 1:
    cols = [t for t in ("serve", "split", *reference)
            if derived.get(t, {}).get("added_p50_ns_c1_rounds")]
    w("At 1 connection (and for TTFT) every figure is the median over %d "
      "rounds. In each round, direct, serve, split and the reference "
      "proxies ran one after the other, and added = gateway − direct of "
      "the same round. Each round's added p50:\n" % rounds)
    label = {"nginx": "nginx", "haproxy": "HAProxy"}
    w("| round | " + " | ".join(
        "%s p50 | %s TTFT p50" % (label.get(t, t), label.get(t, t))
        for t in cols) + " |")
    w("|---|" + "---|---|" * len(cols))
    for k in range(rounds):
        cells = []
        for t in cols:
            a = derived[t]["added_p50_ns_c1_rounds"]
            b = derived[t]["added_ttft_p50_ns_rounds"]
            cells.append(sus(a[k]) if k < len(a) else "–")
            cells.append(sus(b[k]) if k < len(b) else "–")
        w("| %d | %s |" % (k + 1, " | ".join(cells)))
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
w("| PostgreSQL CPU µs per request, 1 connection (not in the rows above) | %s | %s |" % (
    fmt(S["db_cpu_us_per_req_c1"]), fmt(P["db_cpu_us_per_req_c1"])))
w("| PostgreSQL CPU µs per request, 64 connections | %s | %s |" % (
    fmt(S["db_cpu_us_per_req_c64"]), fmt(P["db_cpu_us_per_req_c64"])))
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
w("| PSS idle | %s | %s |" % (
    fmt(S.get("pss_idle_kb"), "%d KiB"), fmt(P.get("pss_idle_kb"), "%d KiB")))
w("| RSS at 64 connections | %s | %s |" % (
    fmt(S["rss_load_kb"], "%d KiB"), fmt(P["rss_load_kb"], "%d KiB")))
w("")
w("CPU = utime + stime of the gateway process(es) from /proc/PID/stat over "
  "the whole stage (warmup included) divided by the 2xx answers of the "
  "stage (warmup included); resolution 1/%d s. PostgreSQL CPU: the same "
  "for the bench's PostgreSQL (postmaster and children), where the "
  "accountant's transactions run; it shares the machine's CPUs with the "
  "gateway but is not counted in its figures.\n" % clk_tck)

if reference:
    names = {"nginx": "nginx", "haproxy": "HAProxy"}
    cols = ["serve", "split"] + reference
    w("## Reference proxies on this machine\n")
    w("%s as plain reverse proxies to the same mock, measured in the "
      "same run as the gateways: keep-alive upstream connections, answers "
      "not buffered, 2 worker processes / threads (serve has 2 HTTP "
      "threads). They check no key, bill nothing and route nothing, so "
      "they show what relaying alone costs on this machine; the targets "
      "are for the whole gateway.\n" % " and ".join(
          names.get(t, t) for t in reference))
    w("| | target | " + " | ".join(names.get(t, t) for t in cols) + " |")
    w("|---|---|" + "---|" * len(cols))
    rows = (
        ("added latency p50, 1 connection", "≤ 30 µs",
         lambda x: sus(x["added_p50_ns_c1"])),
        ("added latency p99, 1 connection", "≤ 100 µs",
         lambda x: sus(x["added_p99_ns_c1"])),
        ("added TTFT p50, 1 connection", "≤ 100 µs",
         lambda x: sus(x["added_ttft_p50_ns"])),
        ("CPU µs per request, 64 connections", "≤ 20 µs",
         lambda x: fmt(x["cpu_us_per_req_c64"])),
        ("context switches per request, 64 connections", "",
         lambda x: fmt(x["ctx_switches_per_req_c64"])),
        ("throughput vs direct, 64 connections", "≥ 50 %",
         lambda x: fmt(x["throughput_ratio_c64"]
                       and x["throughput_ratio_c64"] * 100, "%.0f %%")),
    )
    for label, target, f in rows:
        w("| %s | %s | %s |" % (label, target, " | ".join(
            f(derived[t]) for t in cols)))
    w("")

def thread_rows(n):
    s = st(n)
    text = read(n + ".threads")
    if not s or not text or not s["usage"]["answers"]:
        return {}
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2:
            rows[f[0]] = int(f[1]) * 1e6 / clk_tck / s["usage"]["answers"]
    return rows


by_thread = {t: thread_rows("c64-" + t) for t in ("serve", "split")}
if any(by_thread.values()):
    w("## Where the CPU goes: 64 connections, by thread\n")
    w("CPU µs per request of each thread (threads of one name summed: "
      "`pf-loop` is all the HTTP loops), process/thread, from "
      "/proc/PID/task/*/stat over the stage; threads under 1 % of the "
      "total are left out.\n")
    w("| | thread | CPU µs per request | share |")
    w("|---|---|---|---|")
    for t in ("serve", "split"):
        rows = by_thread[t]
        total = sum(rows.values())
        for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
            if total and v >= 0.01 * total:
                w("| %s | %s | %.1f | %.0f %% |" % (t, k, v, 100 * v / total))
    w("")

w("## Holding streams\n")
w("`hold`: %s connections, each asking for a stream that lasts %s s "
  "(longer than the stage); the stage ends %s s after all streams are "
  "open, or when no more stream has opened for %s s, or at %s s. "
  "Never started = connections without an open stream when the most "
  "were open. Every 0.5 s bench/run samples the gateway's RSS and "
  "descriptors, the "
  "streams open at the load generator (2xx headers received) and at the "
  "slow mock. The *plateau* is the sample with the most RSS among those "
  "within 2 %% of the most streams held (not the last sample). Per held "
  "stream = (RSS at the plateau − RSS before) ÷ streams held then; when "
  "fewer streams than connections were held, that also counts the "
  "connections that were open but not streaming, so it is an upper "
  "bound, and per connection (÷ connections) a lower bound.\n" % (
      machine.get("streams"), machine.get("hold_stream_secs", "30"),
      machine.get("hold_secs", "?"), machine.get("hold_stall_secs", "?"),
      int(machine.get("hold_ramp_secs", "0") or 0) +
      int(machine.get("hold_secs", "0") or 0)))
w("| | serve | split (ingress + worker + accountant) |")
w("|---|---|---|")


def hrow(label, key, f):
    w("| %s | %s | %s |" % (label, fmt(S.get(key), f), fmt(P.get(key), f)))


hrow("target (connections)", "streams_target", "%d")
hrow("most streams held at once", "streams_held", "%d")
hrow("streams held at the plateau", "streams_held_plateau", "%d")
hrow("streams never started", "hold_never_started", "%d")
hrow("requests ended during the stage", "hold_ended_during", "%d")
w("| all streams open after | %s | %s |" % tuple(
    fmt(x.get("hold_all_open_ms") / 1e3 if x.get("hold_all_open_ms")
        is not None else None, "%.1f s") if x.get("hold_ended") else "–"
    for x in (S, P)))
w("| stage ended | %s | %s |" % tuple(
    {"held": "all open, held", "stalled": "no more opening",
     "limit": "at its time limit"}.get(x.get("hold_ended"), "–")
    for x in (S, P)))
w("| open at the slow mock at the plateau | %s | %s |" % tuple(
    fmt((x.get("hold_plateau") or {}).get("open_at_mock"), "%d")
    for x in (S, P)))
hrow("RSS before", "rss_before_hold_kb", "%d KiB")
hrow("RSS at the plateau", "rss_plateau_kb", "%d KiB")
hrow("RSS peak", "rss_hold_peak_kb", "%d KiB")
hrow("RSS per held stream", "rss_per_stream_bytes", "%.0f B")
hrow("RSS per connection", "rss_per_connection_bytes", "%.0f B")
w("")
for t, x in (("serve", S), ("split", P)):
    if x.get("hold_why_short"):
        w("**%s did not reach the target** (%s of %s streams held): %s.\n" % (
            t, fmt(x.get("streams_held"), "%d"), x.get("streams_target"),
            "; ".join(x["hold_why_short"])))
        if x.get("streams_held_plateau") and x.get("streams_target") and \
                x["streams_held_plateau"] < 0.99 * x["streams_target"]:
            w("Its RSS per held stream includes the %d connections that "
              "were open but not streaming: read it as an upper bound.\n"
              % (x["streams_target"] - x["streams_held_plateau"]))
    for note in x.get("hold_notes", []):
        w("%s: %s.\n" % (t, note))

w("## Every stage\n")
w("Latency from the intended send time (open loop) or the send "
  "(closed loop), to the last byte; TTFT to the first SSE event.\n")
w("| stage | measured | req/s | p50 | p90 | p99 | p99.9 | max | TTFT p50 | "
  "TTFT p99 | non-2xx | errors | max open streams |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
order = [*round_names("c1"), *("r%d" % r for r in rates), "c64",
         *round_names("s1"), "s64", "hold"]
for o in order:
    for t in ("direct", "serve", "split", *reference):
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
w("Stages: `c1` 1 connection (`c1rK`, `s1rK`: round K of the "
  "1-connection stages); `rN` open loop at N req/s (64 connections "
  "available); `c64` 64 connections; `s1`/`s64` streams (16 content "
  "chunks, no delay) on 1/64 connections; `hold` %s connections each "
  "holding a stream of %s chunks 1 s apart (the stage ends before the "
  "streams do). Each stage runs 1 s of warmup (not recorded) first, "
  "except `hold`.\n" % (machine.get("streams"),
                        machine.get("hold_stream_secs", "30")))

for perf_file, perf_title in (
        ("perf-self.txt",
         "## Profile: serve at 64 connections (perf, self time)\n"),
        ("perf-dso.txt", "By library (self time):\n"),
        ("perf-children.txt", "Inclusive (children) ≥ 5 %:\n")):
    perf_text = read(perf_file)
    if perf_text:
        w(perf_title)
        w("```")
        w(perf_text)
        w("```\n")

with open(os.path.join(out_dir, name + ".md"), "w") as f:
    f.write("\n".join(L) + "\n")
