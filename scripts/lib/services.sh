# shellcheck shell=bash
# services.sh -- a private PostgreSQL and Redis under .run/<name>/ on
# loopback and non-default ports.  Source with setup.sh and procs.sh.
#
#   pf_services_start NAME PG_PORT REDIS_PORT [fresh] [durable]
#   pf_services_stop NAME
#
# After a start, PF_SVC_DATABASE_URL (superuser, maintenance database
# "postgres") and PF_SVC_REDIS_URL are set.  A start first stops whatever a
# previous (perhaps killed) run left behind under the same NAME; "fresh"
# also throws its data away.  PostgreSQL runs with fsync=off and
# synchronous_commit=off (throw-away test stores) unless "durable" is
# given: then with production durability (fsync=on, synchronous_commit=on,
# full_page_writes=on), which benchmarks of anything that commits need.  PostgreSQL refuses to run as root, so as root
# the cluster belongs to the "postgres" OS user.

pf_pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then
		echo "$d"
	elif command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
	else
		pf_die "PostgreSQL server binaries (initdb) not found"
	fi
}

# pf_as_pg runs a command as the owner of the cluster.
pf_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# pf_make_traversable lets the postgres user reach DIR: as root, adds the
# search (x) bit -- never read -- to every ancestor that lacks it.
pf_make_traversable() {
	local d=$1
	[ "$(id -u)" -eq 0 ] || return 0
	while [ "$d" != "/" ] && [ -n "$d" ]; do
		if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
			pf_log "allowing the postgres user to traverse $d (chmod o+x)"
			chmod o+x "$d"
		fi
		d=$(dirname "$d")
	done
}

# pf_give_pg hands a path to the postgres user when we run as root.
pf_give_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres: "$1"
	fi
}

pf_run_dir() { echo "$PF_ROOT/.run/$1"; }

pf_pg_stop() {
	local dir pgdata bindir pid
	dir=$(pf_run_dir "$1")
	pgdata=$dir/pg
	[ -f "$pgdata/postmaster.pid" ] || return 0
	bindir=$(pf_pg_bindir)
	if pf_as_pg "$bindir/pg_ctl" stop -D "$pgdata" -m fast -w -t 30 >/dev/null 2>&1; then
		return 0
	fi
	# pg_ctl refused (stale pid file, or not ours to signal): kill by pid.
	pid=$(head -n 1 "$pgdata/postmaster.pid" 2>/dev/null || true)
	pf_kill_pid "$pid" postgres INT
	rm -f "$pgdata/postmaster.pid"
}

pf_redis_stop() {
	local dir pid port
	dir=$(pf_run_dir "$1")
	[ -f "$dir/redis.conf" ] || return 0
	port=$(awk '$1 == "port" { print $2 }' "$dir/redis.conf")
	if [ -n "$port" ]; then
		redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
	fi
	pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
	pf_kill_pid "$pid" redis TERM
	rm -f "$dir/redis.pid"
}

pf_services_stop() {
	pf_pg_stop "$1"
	pf_redis_stop "$1"
}

pf_port_busy() {
	# bash's /dev/tcp: a successful connect means someone listens.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pf_pg_start() {
	local name=$1 port=$2 fresh=$3 durable=${4:-} dir pgdata bindir dur
	dir=$(pf_run_dir "$name")
	pgdata=$dir/pg
	bindir=$(pf_pg_bindir)
	pf_port_busy "$port" && pf_die "port $port is in use; cannot start PostgreSQL for '$name'"
	[ "$fresh" = fresh ] && rm -rf "$pgdata"
	mkdir -p "$dir"
	chmod 755 "$PF_ROOT/.run" "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		getent passwd postgres >/dev/null ||
		    pf_die "no 'postgres' OS user (is the postgresql package installed?)"
		pf_make_traversable "$dir"
	fi
	if [ ! -f "$pgdata/PG_VERSION" ]; then
		rm -rf "$pgdata"
		mkdir -p "$pgdata"
		pf_give_pg "$pgdata"
		chmod 700 "$pgdata"
		pf_as_pg "$bindir/initdb" -D "$pgdata" -U postgres --auth=trust \
		    -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
		    { cat "$dir/initdb.log" >&2; pf_die "initdb failed"; }
	fi
	pf_give_pg "$pgdata"
	touch "$dir/pg.log"
	pf_give_pg "$dir/pg.log"
	# TCP on loopback only, no Unix socket (paths under a deep checkout can
	# exceed the 107-byte limit); durability is not needed for a dev stack,
	# but a benchmark must pay what production pays for a commit.
	if [ "$durable" = durable ]; then
		# What a production operator sets on a dedicated server, none of
		# which weakens durability (docs/billing.md, "PostgreSQL
		# settings"): shared_buffers well above the 128MB default (the
		# ledger's backends otherwise write out dirty buffers themselves),
		# compressed full-page images in the WAL, and checkpoints spaced
		# so that fewer pages are written whole after each one.
		dur="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
		dur="$dur -c shared_buffers=${PF_PG_SHARED_BUFFERS:-1GB}"
		dur="$dur -c wal_compression=lz4 -c max_wal_size=4GB"
		dur="$dur -c checkpoint_timeout=15min"
	else
		dur="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	pf_as_pg "$bindir/pg_ctl" start -D "$pgdata" -l "$dir/pg.log" -w -t 60 \
	    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' $dur -c max_connections=200" \
	    >/dev/null || { tail -n 20 "$dir/pg.log" >&2; pf_die "PostgreSQL did not start"; }
	for _ in $(seq 1 100); do
		"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && return 0
		sleep 0.1
	done
	tail -n 20 "$dir/pg.log" >&2
	pf_die "PostgreSQL is not accepting connections on port $port"
}

pf_redis_start() {
	local name=$1 port=$2 dir
	dir=$(pf_run_dir "$name")
	pf_port_busy "$port" && pf_die "port $port is in use; cannot start Redis for '$name'"
	mkdir -p "$dir/redis"
	cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir/redis
save ""
appendonly no
CONF
	redis-server "$dir/redis.conf" || pf_die "redis-server did not start"
	for _ in $(seq 1 100); do
		[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	tail -n 20 "$dir/redis.log" >&2
	pf_die "Redis is not answering on port $port"
}

pf_services_start() {
	local name=$1 pg_port=$2 redis_port=$3 fresh="" durable="" a
	shift 3
	for a in "$@"; do
		case $a in
		fresh) fresh=fresh ;;
		durable) durable=durable ;;
		"") ;;
		*) pf_die "pf_services_start: unknown option '$a'" ;;
		esac
	done
	pf_services_stop "$name"
	pf_pg_start "$name" "$pg_port" "$fresh" "$durable"
	pf_redis_start "$name" "$redis_port"
	PF_SVC_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
	PF_SVC_REDIS_URL="redis://127.0.0.1:$redis_port/0"
	pf_log "services '$name' up: PostgreSQL 127.0.0.1:$pg_port${durable:+ (durable: fsync=on, synchronous_commit=on)}, Redis 127.0.0.1:$redis_port"
}
