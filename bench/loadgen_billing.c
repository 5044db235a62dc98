/*
 * loadgen_billing.c -- the ledger check of `planktonfly bench`.
 */
#include "bench/loadgen_billing.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ids.h"
#include "common/limits.h"

struct lg_billing {
	PGconn *pg;
	char token_id[24];
	/* the token's ledger rows before the run (count, cost) */
	int64_t base_rows, base_cost;
};

static void
set_msg(char *msg, size_t len, const char *what, PGconn *pg)
{
	const char *e = pg ? PQerrorMessage(pg) : "";
	snprintf(msg, len, "%s%s%s", what, e[0] ? ": " : "", e);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
}

/* One-row, one-column query; copies the value (or "" for NULL) to out.
 * Returns 1 with a row, 0 without, -1 on error. */
static int
query1(PGconn *pg, const char *sql, int nparams, const char *const *params,
    char *out, size_t outlen)
{
	PGresult *r
	    = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return -1;
	}
	int rows = PQntuples(r);
	if (rows > 0)
		snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return rows > 0;
}

static int
to_i64(const char *s, int64_t *ret)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return -1;
	*ret = v;
	return 0;
}

/* Runs a one-row query with the token id as $1 (nparams 0 or 1) and
 * parses ncols integers into out.  0 or -1 with msg. */
static int
row_i64(lg_billing *b, const char *sql, int nparams, int64_t *out, int ncols,
    char *msg, size_t msglen)
{
	const char *p[1] = { b->token_id };
	PGresult *r = PQexecParams(b->pg, sql, nparams, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1
	    || PQnfields(r) != ncols) {
		PQclear(r);
		set_msg(msg, msglen, "ledger query failed", b->pg);
		return -1;
	}
	for (int i = 0; i < ncols; i++) {
		if (to_i64(PQgetvalue(r, 0, i), &out[i]) != 0)
			out[i] = 0;
	}
	PQclear(r);
	return 0;
}

/* $1: the token */
static const char check_sql[]
    = "SELECT count(e.event_id), "
      "count(*) FILTER (WHERE e.event_id IS NOT NULL AND (e.cost <> x.cost OR "
      "e.token_id <> $1::int)), "
      "COALESCE(sum(e.cost), 0), "
      "COALESCE(sum(e.cost) FILTER (WHERE e.token_id = $1::int), 0), "
      "count(e.event_id) FILTER (WHERE e.token_id = $1::int), "
      "COALESCE(sum(x.cost), 0), "
      "COALESCE(sum(e.prompt_tokens), 0), "
      "COALESCE(sum(e.completion_tokens), 0), "
      "count(*) - count(DISTINCT x.id) "
      "FROM lg_check x LEFT JOIN usage_events e "
      "ON e.event_id = x.id AND e.kind = 'usage'";

static const char token_sql[]
    = "SELECT count(*), COALESCE(sum(cost), 0) FROM usage_events "
      "WHERE token_id = $1::int AND kind = 'usage'";

pf_err
lg_billing_begin(const char *url, const char *key, const char *model,
    lg_opts *o, lg_billing **ret, char *msg, size_t msglen)
{
	char hash[65];
	pf_err e = pf_sha256_hex(key, strlen(key), hash);
	if (e != PF_OK) {
		snprintf(msg, msglen, "sha256 failed");
		return e;
	}
	lg_billing *b = calloc(1, sizeof(*b));
	if (!b)
		return PF_ENOMEM;
	b->pg = PQconnectdb(url);
	if (PQstatus(b->pg) != CONNECTION_OK) {
		set_msg(msg, msglen, "cannot connect to the database", b->pg);
		lg_billing_free(b);
		return PF_EDB;
	}
	const char *p1[1] = { hash };
	int r = query1(b->pg, "SELECT id FROM tokens WHERE key_hash = $1", 1,
	    p1, b->token_id, sizeof(b->token_id));
	if (r <= 0) {
		set_msg(msg, msglen,
		    r < 0 ? "token lookup failed" : "no token with that key",
		    r < 0 ? b->pg : NULL);
		lg_billing_free(b);
		return r < 0 ? PF_EDB : PF_ENOTFOUND;
	}
	const char *pm[1] = { model };
	PGresult *res = PQexecParams(b->pg,
	    "SELECT input_micros, output_micros, cached_micros, call_micros "
	    "FROM model_prices WHERE model = $1",
	    1, NULL, pm, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		int dberr = PQresultStatus(res) != PGRES_TUPLES_OK;
		PQclear(res);
		set_msg(msg, msglen,
		    dberr ? "price lookup failed" : "no price for the model",
		    dberr ? b->pg : NULL);
		lg_billing_free(b);
		return dberr ? PF_EDB : PF_ENOTFOUND;
	}
	int64_t v[4];
	for (int i = 0; i < 4; i++) {
		if (to_i64(PQgetvalue(res, 0, i), &v[i]) != 0)
			v[i] = 0;
	}
	PQclear(res);
	if (!o->price_override) {
		o->price.input = v[0];
		o->price.output = v[1];
		o->price.cached = v[2];
		o->price.call = v[3];
	}
	char ratio[32] = "1000000";
	const char *pt[1] = { b->token_id };
	r = query1(b->pg,
	    "SELECT g.ratio_ppm FROM tokens t JOIN users u ON u.id = t.user_id "
	    "JOIN groups g ON g.name = COALESCE(NULLIF(t.\"group\", ''), "
	    "u.\"group\") WHERE t.id = $1::int",
	    1, pt, ratio, sizeof(ratio));
	if (r < 0 || to_i64(ratio, &o->group_ratio_ppm) != 0)
		o->group_ratio_ppm = 1000000;
	o->have_price = 1;
	int64_t base[2];
	if (row_i64(b, token_sql, 1, base, 2, msg, msglen) != 0) {
		lg_billing_free(b);
		return PF_EDB;
	}
	b->base_rows = base[0];
	b->base_cost = base[1];
	*ret = b;
	return PF_OK;
}

static void
sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u,
		.tv_nsec = (long)(ms % 1000u) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Runs a command; 0 on success, else -1 with msg set. */
static int
exec_ok(PGconn *pg, const char *sql, char *msg, size_t msglen)
{
	PGresult *r = PQexec(pg, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok)
		set_msg(msg, msglen, "ledger check setup failed", pg);
	return ok ? 0 : -1;
}

/* COPYs v[0..n) into the temporary table lg_check.  0 or -1 with msg. */
static int
load_ids(PGconn *pg, const lg_billed *v, size_t n, char *msg, size_t msglen)
{
	if (exec_ok(pg,
	        "CREATE TEMP TABLE lg_check (id text NOT NULL, cost bigint "
	        "NOT NULL)",
	        msg, msglen)
	    != 0)
		return -1;
	PGresult *r = PQexec(pg, "COPY lg_check FROM STDIN");
	int ok = PQresultStatus(r) == PGRES_COPY_IN;
	PQclear(r);
	char buf[64 * 1024];
	size_t len = 0;
	for (size_t i = 0; ok && i < n; i++) {
		char line[PF_LOADGEN_REQUEST_ID_MAX + 32];
		int k = snprintf(line, sizeof(line), "%s\t%lld\n", v[i].id,
		    (long long)v[i].cost);
		if (k < 0 || (size_t)k >= sizeof(line))
			continue; /* cannot happen: ids are capped */
		if (len + (size_t)k > sizeof(buf)) {
			ok = PQputCopyData(pg, buf, (int)len) == 1;
			len = 0;
		}
		memcpy(buf + len, line, (size_t)k);
		len += (size_t)k;
	}
	if (ok && len > 0)
		ok = PQputCopyData(pg, buf, (int)len) == 1;
	if (PQputCopyEnd(pg, ok ? NULL : "bench gave up") != 1)
		ok = 0;
	r = PQgetResult(pg);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		ok = 0;
	PQclear(r);
	while ((r = PQgetResult(pg)) != NULL)
		PQclear(r);
	if (!ok) {
		set_msg(msg, msglen, "cannot load the answers' ids", pg);
		return -1;
	}
	return 0;
}

pf_err
lg_billing_end(lg_billing *b, const lg_billed *v, size_t n, uint32_t wait_ms,
    lg_billing_result *res, char *msg, size_t msglen)
{
	memset(res, 0, sizeof(*res));
	res->checked = (int64_t)n;
	if (load_ids(b->pg, v, n, msg, msglen) != 0)
		return PF_EDB;
	int64_t c[9];
	int64_t last_found = -1;
	uint32_t stable_ms = 0, waited = 0;
	for (;;) {
		if (row_i64(b, check_sql, 1, c, 9, msg, msglen) != 0)
			return PF_EDB;
		if (c[0] >= (int64_t)n)
			break;
		if (c[0] == last_found) {
			stable_ms += 200;
			if (stable_ms >= 5000)
				break;
		} else {
			stable_ms = 0;
		}
		last_found = c[0];
		if (waited >= wait_ms)
			break;
		sleep_ms(200);
		waited += 200;
	}
	int64_t t[2];
	if (row_i64(b, token_sql, 1, t, 2, msg, msglen) != 0)
		return PF_EDB;
	res->found = c[0];
	res->wrong = c[1];
	res->charged = c[2];
	res->expected = c[5];
	res->prompt_tokens = c[6];
	res->completion_tokens = c[7];
	res->dup_ids = c[8];
	res->other_rows = t[0] - b->base_rows - c[4];
	res->other_cost = t[1] - b->base_cost - c[3];
	if (n == 0)
		snprintf(res->why, sizeof(res->why),
		    "no completed answer with usage and an x-request-id to "
		    "check");
	else if (res->dup_ids > 0)
		snprintf(res->why, sizeof(res->why),
		    "%lld answers share an x-request-id with another",
		    (long long)res->dup_ids);
	else if (res->found == 0)
		snprintf(res->why, sizeof(res->why),
		    "none of the %lld completed answers is in the ledger "
		    "(billing not running?)",
		    (long long)n);
	else if (res->found < (int64_t)n)
		snprintf(res->why, sizeof(res->why),
		    "%lld of %lld completed answers are not in the ledger",
		    (long long)((int64_t)n - res->found), (long long)n);
	else if (res->wrong > 0 || res->charged != res->expected)
		snprintf(res->why, sizeof(res->why),
		    "%lld answers charged another cost (or to another token): "
		    "charged %lld, expected %lld",
		    (long long)res->wrong, (long long)res->charged,
		    (long long)res->expected);
	else
		res->ok = 1;
	return PF_OK;
}

void
lg_billing_free(lg_billing *b)
{
	if (!b)
		return;
	if (b->pg)
		PQfinish(b->pg);
	free(b);
}
