/*
 * acct_bench.c -- pf-acct-bench: events applied per second by the
 * accountant's apply path, group-committed (event log append + one
 * fdatasync + one transaction per batch) against one transaction per
 * event (the way existing gateways bill), in the same run.
 *
 *   pf-acct-bench [--events N] [--single N] [--batch N] [--users N]
 *                 [--rounds N] [--lanes N] [--log-dir DIR]
 *                 [--sync-commit 0|1]
 *
 * The two modes run in N interleaved rounds (default 5) so that both see
 * the same machine load; events are spread over --users users (default
 * 1000; each user's and token's row is updated once per batch).  The
 * batched mode applies each batch over --lanes connections at once
 * (default ACCT_LANES_DEFAULT, as the accountant does; accountant/lanes.h),
 * the per-event mode over one.  As in the accountant, the lanes commit
 * with synchronous_commit = off and a synchronously committed marker on
 * a connection of its own follows the batches (accountant/durable.h); a
 * run ends when its last batch is durable.  --sync-commit 1 makes the
 * lanes commit synchronously instead (no marker), for comparison.  The
 * per-event mode always commits synchronously, as existing gateways do.
 *
 * PF_BENCH_DATABASE_URL (or PF_TEST_DATABASE_URL): a superuser URL to a
 * maintenance database; the bench creates its own database, migrates it,
 * adds users and tokens, runs, checks the ledger and drops the database.
 * Without a URL it prints a skip line and exits 0.  Measure against a
 * server with production durability (fsync=on, synchronous_commit=on),
 * e.g. one started by `pf_services_start NAME PG REDIS fresh durable`
 * (scripts/lib/services.sh), not the test clusters (fsync=off), which
 * PF_TEST_DATABASE_URL usually points to: the server's settings are
 * printed, with a warning when a commit does not reach the disk.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "accountant/db.h"
#include "accountant/durable.h"
#include "accountant/lanes.h"
#include "accountant/ledger.h"
#include "accountant/migrate.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/msg.h"
#include "common/reclog.h"

static const char *const models[]
    = { "gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "deepseek-chat" };

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints the machine's load average (other processes skew the rates). */
static void
print_load(const char *when)
{
	char line[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f != NULL) {
		if (fgets(line, sizeof(line), f) == NULL)
			line[0] = '\0';
		fclose(f);
	}
	line[strcspn(line, "\n")] = '\0';
	printf("load average %s: %s\n", when, line[0] ? line : "unknown");
}

/* CPU seconds: this process's, and (when the server runs on this machine
 * and /proc shows it) the server backend's, so that the work per event can
 * be compared across runs on a loaded machine.  -1: not available. */
static double
own_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define MAX_BACKENDS (ACCT_LANES_MAX + 1)
static long backend_pids[MAX_BACKENDS]; /* 0: unknown */
static size_t n_backends;

/* The CPU time of the bench database's backends (all lanes), summed. */
static double
backend_cpu_s(void)
{
	double sum = 0;

	if (n_backends == 0)
		return -1;
	for (size_t i = 0; i < n_backends; i++) {
		char path[64];
		unsigned long long ns;
		FILE *f;
		int ok;

		snprintf(
		    path, sizeof(path), "/proc/%ld/schedstat", backend_pids[i]);
		f = fopen(path, "r");
		if (f == NULL)
			return -1;
		ok = fscanf(f, "%llu", &ns) == 1;
		fclose(f);
		if (!ok)
			return -1;
		sum += (double)ns / 1e9;
	}
	return sum;
}

struct cpu {
	double own, backend; /* seconds; backend < 0: unknown */
};

static void
cpu_add(struct cpu *acc, const struct cpu *t0)
{
	double b = backend_cpu_s();

	acc->own += own_cpu_s() - t0->own;
	if (b < 0 || t0->backend < 0 || acc->backend < 0)
		acc->backend = -1;
	else
		acc->backend += b - t0->backend;
}

static struct cpu
cpu_now(void)
{
	struct cpu c = { own_cpu_s(), backend_cpu_s() };

	return c;
}

static void
print_cpu(const char *mode, const struct cpu *c, size_t n)
{
	if (n == 0)
		return;
	if (c->backend < 0)
		printf("%s CPU per event: client %.1f us, server backend "
		       "unknown (not on this machine)\n",
		    mode, c->own * 1e6 / (double)n);
	else
		printf("%s CPU per event: client %.1f us + server backend "
		       "%.1f us = %.1f us\n",
		    mode, c->own * 1e6 / (double)n,
		    c->backend * 1e6 / (double)n,
		    (c->own + c->backend) * 1e6 / (double)n);
}

static int
die(const char *what, const char *msg)
{
	fprintf(stderr, "pf-acct-bench: %s: %s\n", what, msg);
	return 1;
}

/* Replaces the database name of url (the part after the last '/'). */
static void
with_db(const char *url, const char *db, char *out, size_t outlen)
{
	const char *slash = strrchr(url, '/');
	const char *q = strchr(url, '?');
	int n = slash ? (int)(slash - url) : (int)strlen(url);

	snprintf(out, outlen, "%.*s/%s%s", n, url, db, q ? q : "");
}

struct gen {
	pf_msg *msgs;
	pf_buf *enc;
	int64_t total;
};

static int
generate(struct gen *g, size_t n, int64_t users)
{
	int64_t now_ms = (int64_t)time(NULL) * 1000;

	g->msgs = calloc(n, sizeof(*g->msgs));
	g->enc = calloc(n, sizeof(*g->enc));
	g->total = 0;
	if (g->msgs == NULL || g->enc == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		pf_msg *m = &g->msgs[i];
		pf_usage *u = &m->u.usage;
		const char *model = models[i % 4];

		m->kind = PF_MSG_USAGE;
		if (pf_id_new(u->event_id) != PF_OK)
			return -1;
		u->user_id = 1 + (int64_t)(i % (size_t)users);
		u->token_id = u->user_id;
		u->channel_id = 1 + (int64_t)(i % 3);
		u->model.ptr = (const uint8_t *)model;
		u->model.len = strlen(model);
		u->tokens.prompt = 200 + (int64_t)(i % 500);
		u->tokens.completion = 50 + (int64_t)(i % 300);
		u->cost = 100 + (int64_t)(i % 1000);
		u->price_input = 150000;
		u->price_output = 600000;
		u->group_ratio_ppm = 1000000;
		u->started_ms = now_ms - 2000;
		u->ended_ms = now_ms;
		u->reason = PF_END_DONE;
		u->stream = (uint8_t)(i % 2);
		g->total += u->cost;
		pf_buf_init(&g->enc[i]);
		if (pf_msg_encode(m, &g->enc[i]) != PF_OK)
			return -1;
	}
	return 0;
}

static int
setup_db(PGconn *conn, int64_t users, char *errbuf, size_t errlen)
{
	char sql[1024];
	size_t applied;

	FILE *devnull = fopen("/dev/null", "w");
	pf_err err;

	if (devnull == NULL)
		return -1;
	err = acct_migrate_run(conn, acct_migrations, acct_migrations_count,
	    devnull, &applied, errbuf, errlen);
	fclose(devnull);
	if (err != PF_OK)
		return -1;
	snprintf(sql, sizeof(sql),
	    "INSERT INTO users (username, quota) SELECT 'u' || g, "
	    "1000000000000 FROM generate_series(1, %" PRId64 ") g;"
	    "INSERT INTO tokens (user_id, name, key_hash, remain_quota) "
	    "SELECT g, 't', md5(g::text) || md5(g::text || 'x'), "
	    "1000000000000 FROM generate_series(1, %" PRId64 ") g;"
	    "INSERT INTO channels (name, base_url, models) SELECT 'c' || g, "
	    "'http://127.0.0.1:9/v1', 'gpt-4o' FROM generate_series(1, 3) g;",
	    users, users);
	return acct_db_exec(conn, sql, 0, NULL, NULL, errbuf, errlen) == PF_OK
	    ? 0
	    : -1;
}

/* Applies msgs[0..n) in batches of batch (1 = one transaction per event,
 * no log) over lanes, or l when lanes is NULL; returns the seconds taken
 * or -1. */
static double sync_s; /* time spent in the event log's fdatasync */

/* Checks that all of ev[0..k) were applied. */
static int
all_applied(const acct_event *ev, size_t k, char *errbuf, size_t errlen)
{
	for (size_t j = 0; j < k; j++) {
		if (ev[j].outcome != ACCT_APPLIED) {
			snprintf(errbuf, errlen, "event %s: %d %s", ev[j].id,
			    ev[j].outcome, ev[j].reason);
			return 0;
		}
	}
	return 1;
}

/* The durability marker after a batch (dur NULL: none), as the actor's
 * durable_begin: collected when answered, started when none is in flight;
 * wait: until everything before pos is durable. */
static int
mark(
    acct_durable *dur, pf_reclog_pos pos, int wait, char *errbuf, size_t errlen)
{
	pf_reclog_pos done;

	if (dur == NULL)
		return 0;
	if (acct_durable_busy(dur) && (wait || acct_durable_ready(dur))
	    && acct_durable_end(dur, &done, errbuf, errlen) != PF_OK)
		return -1;
	if (!acct_durable_busy(dur)
	    && acct_durable_begin(dur, pos, errbuf, errlen) != PF_OK)
		return -1;
	if (wait && acct_durable_end(dur, &done, errbuf, errlen) != PF_OK)
		return -1;
	return 0;
}

/* With lanes, as the accountant does: batch N+1 is appended to the log
 * and synced while the lanes apply batch N (ev holds 2 * batch events). */
static double
run(acct_ledger *l, acct_lanes *lanes, acct_durable *dur, pf_reclog *log,
    struct gen *g, size_t from, size_t n, size_t batch, acct_event *ev,
    char *errbuf, size_t errlen)
{
	double t0 = now_s();
	size_t cur = 0, prev_k = 0;

	for (size_t i = 0; i < n; i += batch) {
		size_t k = n - i < batch ? n - i : batch;
		acct_event *e = &ev[cur * batch];

		for (size_t j = 0; j < k; j++) {
			pf_buf *b = &g->enc[from + i + j];

			acct_event_init(&e[j], &g->msgs[from + i + j], 0);
			if (log != NULL
			    && pf_reclog_append(log, b->data, b->len, 0, NULL)
			        != PF_OK)
				return -1;
		}
		if (log != NULL) {
			double t1 = now_s();

			if (pf_reclog_sync(log) != PF_OK)
				return -1;
			sync_s += now_s() - t1;
		}
		if (lanes == NULL) {
			if (acct_ledger_apply(l, e, k, 0, errbuf, errlen)
			        != PF_OK
			    || !all_applied(e, k, errbuf, errlen))
				return -1;
			continue;
		}
		if (acct_lanes_busy(lanes)
		    && (acct_lanes_wait(lanes, errbuf, errlen) != PF_OK
		        || !all_applied(
		            &ev[(cur ^ 1) * batch], prev_k, errbuf, errlen)
		        || mark(dur, pf_reclog_end(log), 0, errbuf, errlen)
		            != 0))
			return -1;
		if (acct_lanes_submit(lanes, e, k, 0) != PF_OK) {
			snprintf(errbuf, errlen, "cannot submit");
			return -1;
		}
		prev_k = k;
		cur ^= 1;
	}
	if (lanes != NULL && acct_lanes_busy(lanes)
	    && (acct_lanes_wait(lanes, errbuf, errlen) != PF_OK
	        || !all_applied(&ev[(cur ^ 1) * batch], prev_k, errbuf, errlen)
	        || mark(dur, pf_reclog_end(log), 1, errbuf, errlen) != 0))
		return -1;
	return now_s() - t0;
}

int
main(int argc, char **argv)
{
	const char *url = getenv("PF_BENCH_DATABASE_URL");
	const char *log_dir = NULL;
	size_t n_batch = 200000, n_single = 5000, batch = PF_ACCT_BATCH_MAX;
	int64_t users = 1000;
	size_t rounds = 5, n_lanes = ACCT_LANES_DEFAULT;
	int sync_commit = 0;
	char dbname[64], dburl[1024], errbuf[1024],
	    tmpl[] = "/tmp/pf-acct-"
	             "bench-XXXXXX";
	PGconn *admin = NULL, *conn = NULL;
	acct_ledger *l = NULL;
	acct_lanes *lanes = NULL;
	acct_durable *dur = NULL;
	pf_reclog *log = NULL;
	acct_event *ev = NULL;
	struct gen g;
	double tb, ts, rb, rs;
	struct cpu cb = { 0, 0 }, cs = { 0, 0 }, t0;
	int rc = 1;

	for (int i = 1; i + 1 < argc; i += 2) {
		long v = strtol(argv[i + 1], NULL, 10);

		if (strcmp(argv[i], "--events") == 0)
			n_batch = (size_t)v;
		else if (strcmp(argv[i], "--single") == 0)
			n_single = (size_t)v;
		else if (strcmp(argv[i], "--batch") == 0)
			batch = (size_t)v;
		else if (strcmp(argv[i], "--users") == 0)
			users = v;
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = (size_t)v;
		else if (strcmp(argv[i], "--lanes") == 0)
			n_lanes = (size_t)v;
		else if (strcmp(argv[i], "--log-dir") == 0)
			log_dir = argv[i + 1];
		else if (strcmp(argv[i], "--sync-commit") == 0)
			sync_commit = v != 0;
		else
			return die("usage", argv[i]);
	}
	if (batch < 1 || batch > PF_ACCT_BATCH_MAX || users < 1 || rounds < 1
	    || n_lanes < 1 || n_lanes > ACCT_LANES_MAX)
		return die("usage",
		    "--batch 1..2048, --users >= 1, --rounds >= 1, --lanes "
		    "1..16");
	if (url == NULL)
		url = getenv("PF_TEST_DATABASE_URL");
	if (url == NULL || url[0] == '\0') {
		printf("pf-acct-bench: skipped (set PF_BENCH_DATABASE_URL)\n");
		return 0;
	}
	if (log_dir == NULL) {
		log_dir = mkdtemp(tmpl);
		if (log_dir == NULL)
			return die("mkdtemp", "failed");
	}
	if (generate(&g, n_batch + n_single, users) != 0)
		return die("generate", "out of memory");
	ev = calloc(2 * batch, sizeof(*ev));
	snprintf(dbname, sizeof(dbname), "pf_acct_bench_%d", (int)getpid());
	with_db(url, dbname, dburl, sizeof(dburl));
	if (ev == NULL
	    || acct_db_connect(url, &admin, errbuf, sizeof(errbuf)) != PF_OK)
		return die("connect", errbuf);
	{
		char sql[128];

		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
		if (acct_db_exec(
		        admin, sql, 0, NULL, NULL, errbuf, sizeof(errbuf))
		    != PF_OK)
			return die("create database", errbuf);
	}
	if (acct_db_connect(dburl, &conn, errbuf, sizeof(errbuf)) != PF_OK
	    || setup_db(conn, users, errbuf, sizeof(errbuf)) != 0
	    || acct_ledger_new(conn, &l, errbuf, sizeof(errbuf)) != PF_OK
	    || acct_lanes_new(
	           dburl, n_lanes, !sync_commit, &lanes, errbuf, sizeof(errbuf))
	        != PF_OK
	    || (!sync_commit
	        && (acct_durable_new(dburl, &dur) != PF_OK
	            || acct_durable_connect(dur, errbuf, sizeof(errbuf))
	                != PF_OK))) {
		die("setup", errbuf);
		goto out;
	}
	if (pf_reclog_open(log_dir, "events", 0, &log) != PF_OK) {
		die("event log", log_dir);
		goto out;
	}
	{
		/* The durability settings decide what a commit costs: print
		 * them with the numbers. */
		PGresult *res;

		if (acct_db_exec(conn,
		        "SELECT 'PostgreSQL ' || "
		        "current_setting('server_version') "
		        "|| ', fsync=' || current_setting('fsync') "
		        "|| ', synchronous_commit=' "
		        "|| current_setting('synchronous_commit') "
		        "|| ', full_page_writes=' "
		        "|| current_setting('full_page_writes') "
		        "|| ', shared_buffers=' "
		        "|| current_setting('shared_buffers') "
		        "|| CASE WHEN current_setting('fsync') = 'off' "
		        "OR current_setting('synchronous_commit') = 'off' "
		        "THEN ' -- WARNING: not production durability, commits "
		        "do not wait for the disk (a test cluster?)' ELSE '' "
		        "END",
		        0, NULL, &res, errbuf, sizeof(errbuf))
		    != PF_OK) {
			die("settings", errbuf);
			goto out;
		}
		printf("server: %s\n", acct_db_value(res, 0, 0));
		acct_db_result_free(res);
	}
	printf("pf-acct-bench: %zu events batched (%zu per batch over %zu "
	       "connections, %s, log in %s), %zu events one transaction "
	       "each, %" PRId64 " users, %zu rounds\n",
	    n_batch, batch, n_lanes,
	    sync_commit ? "synchronous commits"
	                : "asynchronous commits + durability marker",
	    log_dir, n_single, users, rounds);
	fflush(stdout);
	print_load("before");
	/* Interleaved rounds: both modes see the same machine load (other
	 * processes come and go) and the same table sizes. */
	tb = ts = 0;
	{
		PGresult *res = NULL;

		if (acct_db_exec(conn,
		        "SELECT pid FROM pg_stat_activity WHERE datname = "
		        "current_database() AND backend_type = 'client "
		        "backend'",
		        0, NULL, &res, errbuf, sizeof(errbuf))
		    == PF_OK) {
			for (int i = 0;
			     i < acct_db_rows(res) && n_backends < MAX_BACKENDS;
			     i++)
				backend_pids[n_backends++] = strtol(
				    acct_db_value(res, i, 0), NULL, 10);
		}
		acct_db_result_free(res);
	}
	for (size_t r = 0; r < rounds; r++) {
		size_t s0 = n_single * r / rounds,
		       s1 = n_single * (r + 1) / rounds;
		size_t b0 = n_batch * r / rounds,
		       b1 = n_batch * (r + 1) / rounds;
		double x;

		t0 = cpu_now();
		x = run(l, NULL, NULL, NULL, &g, n_batch + s0, s1 - s0, 1, ev,
		    errbuf, sizeof(errbuf));
		if (x < 0) {
			die("per-event run", errbuf);
			goto out;
		}
		ts += x;
		cpu_add(&cs, &t0);
		t0 = cpu_now();
		x = run(l, lanes, dur, log, &g, b0, b1 - b0, batch, ev, errbuf,
		    sizeof(errbuf));
		if (x < 0) {
			die("batched run", errbuf);
			goto out;
		}
		tb += x;
		cpu_add(&cb, &t0);
	}
	{
		PGresult *res;
		int64_t sum;

		if (acct_db_exec(conn,
		        "SELECT (SELECT sum(cost) FROM usage_events) || ' ' || "
		        "(SELECT sum(quota) FROM quota_data) || ' ' || "
		        "(SELECT sum(quota) FROM logs WHERE type = 2) || ' ' "
		        "|| "
		        "(SELECT sum(used_quota) FROM users) || ' ' || "
		        "(SELECT sum(used_quota) FROM channels)",
		        0, NULL, &res, errbuf, sizeof(errbuf))
		    != PF_OK) {
			die("check", errbuf);
			goto out;
		}
		{
			const char *p = acct_db_value(res, 0, 0);
			int same = 1, k = 0;

			for (char *end; k < 5; k++, p = end) {
				sum = strtoll(p, &end, 10);
				if (end == p)
					break;
				same = same && sum == g.total;
			}
			same = same && k == 5;
			printf("ledger check: %s (want %" PRId64 " each)\n",
			    acct_db_value(res, 0, 0), g.total);
			sum = same ? g.total : -1;
		}
		acct_db_result_free(res);
		if (sum != g.total) {
			die("check", "ledger total differs");
			goto out;
		}
	}
	print_load("after");
	rb = (double)n_batch / tb;
	rs = (double)n_single / ts;
	printf("batched:   %10.0f events/s (%.3f s)\n", rb, tb);
	printf("per-event: %10.0f events/s (%.3f s)\n", rs, ts);
	printf("ratio:     %10.1fx\n", rb / rs);
	print_cpu("batched:  ", &cb, n_batch);
	print_cpu("per-event:", &cs, n_single);
	printf(
	    "(batched: %.3f s of it in the event log's fdatasync)\n", sync_s);
	rc = 0;
out:
	pf_reclog_close(log);
	acct_lanes_free(lanes);
	acct_durable_free(dur);
	acct_ledger_free(l);
	acct_db_close(conn);
	if (admin != NULL) {
		char sql[128];

		snprintf(
		    sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
		if (acct_db_exec(
		        admin, sql, 0, NULL, NULL, errbuf, sizeof(errbuf))
		    != PF_OK)
			fprintf(stderr, "pf-acct-bench: drop: %s\n", errbuf);
	}
	acct_db_close(admin);
	if (strcmp(log_dir, tmpl) == 0) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "pf-acct-bench: cleanup failed\n");
	}
	for (size_t i = 0; i < n_batch + n_single; i++)
		pf_buf_fini(&g.enc[i]);
	free(g.enc);
	free(g.msgs);
	free(ev);
	return rc;
}
