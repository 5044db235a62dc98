# shellcheck shell=bash
# procs.sh -- background processes tracked by pid files under .run/<name>/
# (pid and start time), so a later run can end what a killed one left
# behind, and only that: nothing is matched by name.

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
# name (/proc/PID/comm) contains NAME -- a guard against a recycled pid,
# for pid files written by the services themselves (PostgreSQL, Redis):
# SIGNAL first, SIGKILL if it is still there after ~10 s.
pf_kill_pid() {
	local pid=$1 name=$2 sig=$3
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	grep -q -- "$name" "/proc/$pid/comm" 2>/dev/null || return 0
	pf_kill_wait "$pid" "$sig"
}

# pf_kill_wait PID SIGNAL: SIGNAL to PID, SIGKILL if it is still there
# after ~10 s.
pf_kill_wait() {
	local pid=$1 sig=$2
	kill -"$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# pf_proc_start_time PID: the start time of process PID (field 22 of
# /proc/PID/stat, clock ticks since boot); empty if there is no PID.
# The fields are counted after the last ')': the name may hold anything.
pf_proc_start_time() {
	local st f
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	read -ra f <<<"$st"
	echo "${f[19]:-}"
}

# pf_proc_record PIDFILE PID writes "PID STARTTIME" to PIDFILE for a
# process this script just started (e.g. PID=$!): pf_proc_stop ends PID
# only while it is that same process, whatever its executable is named.
pf_proc_record() {
	echo "$2 $(pf_proc_start_time "$2")" >"$1"
}

# pf_proc_stop PIDFILE ends the process recorded in PIDFILE by
# pf_proc_record, if it is still the process that was recorded (same pid
# and start time: a recycled pid is left alone), and removes PIDFILE.
# A pid file without a start time (an older script's) is removed only.
pf_proc_stop() {
	local pid="" start=""
	[ -f "$1" ] || return 0
	read -r pid start <"$1" || true
	rm -f "$1"
	[ -n "$pid" ] && [ -n "$start" ] || return 0
	[ "$(pf_proc_start_time "$pid")" = "$start" ] || return 0
	pf_kill_wait "$pid" TERM
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

# pf_cpu_ticks PIDS: utime + stime of the (space-separated) PIDS, in clock
# ticks; a pid that is gone counts 0.
pf_cpu_ticks() {
	local sum=0 p v
	for p in $1; do
		v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
		sum=$((sum + v))
	done
	echo "$sum"
}
