# shellcheck shell=bash
# procs.sh -- background planktonfly processes tracked by pid files under
# .run/<name>/, so a later run can end what a killed one left behind.

# pf_unset_pf_env drops every PF_* variable inherited from the caller's
# shell (e.g. PF_API_KEY exported from the demo's output): the config
# loader rejects unknown PF_ keys.
pf_unset_pf_env() {
	local v
	for v in $(compgen -e); do
		case $v in PF_*) unset "$v" ;; esac
	done
}

# pf_proc_stop PIDFILE: TERM, then KILL after ~10 s, the planktonfly
# process recorded in PIDFILE (only if it still is one).
pf_proc_stop() {
	local pidfile=$1 pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	rm -f "$pidfile"
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null &&
	    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q planktonfly; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
}

# pf_wait_port PORT PID SECONDS: waits until PORT on loopback accepts
# connections; fails early if PID exits.
pf_wait_port() {
	local port=$1 pid=$2 tries=$(($3 * 10))
	while [ "$tries" -gt 0 ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		pf_port_busy "$port" && return 0
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}
