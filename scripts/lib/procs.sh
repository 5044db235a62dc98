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

# pf_kill_pid PID NAME SIGNAL ends process PID if it is still alive and its
# name (/proc/PID/comm) contains NAME -- a guard against a recycled pid:
# SIGNAL first, SIGKILL if it is still there after ~10 s.
pf_kill_pid() {
	local pid=$1 name=$2 sig=$3
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	grep -q -- "$name" "/proc/$pid/comm" 2>/dev/null || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# pf_proc_stop PIDFILE ends the planktonfly process recorded in PIDFILE.
pf_proc_stop() {
	local pid
	pid=$(cat "$1" 2>/dev/null || true)
	rm -f "$1"
	pf_kill_pid "$pid" planktonfly TERM
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
