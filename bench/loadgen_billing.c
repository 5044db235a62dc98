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

struct lg_billing {
	PGconn *pg;
	char token_id[24];
	char last_id[24];
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
	o->price.input = v[0];
	o->price.output = v[1];
	o->price.cached = v[2];
	o->price.call = v[3];
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
	r = query1(b->pg, "SELECT COALESCE(max(id), 0) FROM usage_events", 0,
	    NULL, b->last_id, sizeof(b->last_id));
	if (r <= 0) {
		set_msg(msg, msglen, "ledger query failed", b->pg);
		lg_billing_free(b);
		return PF_EDB;
	}
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

pf_err
lg_billing_end(lg_billing *b, int64_t expected, uint32_t wait_ms,
    lg_billing_result *res, char *msg, size_t msglen)
{
	const char *p[2] = { b->token_id, b->last_id };
	int64_t last_count = -1;
	uint32_t stable_ms = 0, waited = 0;
	memset(res, 0, sizeof(*res));
	for (;;) {
		PGresult *r = PQexecParams(b->pg,
		    "SELECT count(*), COALESCE(sum(cost), 0), "
		    "COALESCE(sum(prompt_tokens), 0), "
		    "COALESCE(sum(completion_tokens), 0) FROM usage_events "
		    "WHERE token_id = $1::int AND id > $2::bigint "
		    "AND kind = 'usage'",
		    2, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			PQclear(r);
			set_msg(msg, msglen, "ledger query failed", b->pg);
			return PF_EDB;
		}
		int64_t v[4] = { 0, 0, 0, 0 };
		for (int i = 0; i < 4; i++)
			(void)to_i64(PQgetvalue(r, 0, i), &v[i]);
		PQclear(r);
		res->events = v[0];
		res->charged = v[1];
		res->prompt_tokens = v[2];
		res->completion_tokens = v[3];
		if (v[0] >= expected)
			break;
		if (v[0] == last_count) {
			stable_ms += 200;
			if (stable_ms >= 2000)
				break;
		} else {
			stable_ms = 0;
		}
		last_count = v[0];
		if (waited >= wait_ms)
			break;
		sleep_ms(200);
		waited += 200;
	}
	if (res->events == 0) {
		res->skipped = 1;
		snprintf(res->why, sizeof(res->why),
		    "the ledger got no usage events for the token (billing "
		    "not running?)");
	}
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
