/*
 * router.c -- routing snapshot reload thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/thread.h"
#include "ingress/db.h"
#include "ingress/router.h"

#define REFRESH_MIN_MS 100u

struct ing_router {
	const pf_config *cfg;
	pthread_mutex_t mu; /* guards cur, stop, kick */
	pthread_cond_t cv;
	ing_snapshot *cur;
	int stop;
	int kick;
	int started;
	pthread_t thread;
	PGconn *db;         /* reload thread only */
	ing_db_guard guard; /* a stop cancels a reload stuck on a lock */
};

static const char load_sql[]
    = "SELECT a.\"group\", a.model, a.priority, a.weight, c.id, c.type, "
      "c.base_url, c.key, c.proxy, c.model_mapping, c.connect_timeout_ms, "
      "c.first_byte_timeout_ms, c.idle_timeout_ms, c.total_timeout_ms, "
      "c.created_at "
      "FROM abilities a JOIN channels c ON c.id = a.channel_id "
      "WHERE a.enabled AND c.status = 1 ORDER BY c.id";

/* models whose channels for a group are all disabled: told apart from
 * models nobody serves (503, not 404) */
static const char disabled_sql[]
    = "SELECT DISTINCT a.\"group\", a.model "
      "FROM abilities a JOIN channels c ON c.id = a.channel_id "
      "WHERE NOT (a.enabled AND c.status = 1)";

static const char prices_sql[]
    = "SELECT model, input_micros, output_micros, cached_micros, "
      "call_micros FROM model_prices";
static const char groups_sql[] = "SELECT name, ratio_ppm FROM groups";

static int64_t
col_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static uint32_t
col_u32(const PGresult *res, int row, int col)
{
	int64_t v = col_i64(res, row, col);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* load_prices reads model prices and group multipliers into s. */
static pf_err
load_prices(PGconn *db, ing_snapshot *s)
{
	PGresult *res;
	ing_prices *p = ing_prices_new();
	pf_err err = PF_OK;

	if (p == NULL)
		return PF_ENOMEM;
	res = PQexec(db, prices_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = PF_EDB;
		goto done;
	}
	for (int i = 0; i < PQntuples(res) && err == PF_OK; i++) {
		pf_price pr = { .input = col_i64(res, i, 1),
			.output = col_i64(res, i, 2),
			.cached = col_i64(res, i, 3),
			.call = col_i64(res, i, 4) };
		err = ing_prices_add_model(p, PQgetvalue(res, i, 0), &pr);
		if (err == PF_EINVAL)
			err = PF_OK;
	}
	PQclear(res);
	res = PQexec(db, groups_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = PF_EDB;
		goto done;
	}
	for (int i = 0; i < PQntuples(res) && err == PF_OK; i++) {
		err = ing_prices_add_group(
		    p, PQgetvalue(res, i, 0), col_i64(res, i, 1));
		if (err == PF_EINVAL)
			err = PF_OK;
	}
done:
	PQclear(res);
	if (err != PF_OK) {
		ing_prices_free(p);
		return err;
	}
	ing_prices_seal(p);
	ing_snapshot_set_prices(s, p);
	return PF_OK;
}

/* load_disabled marks the (group, model) pairs served only by disabled
 * channels in s. */
static pf_err
load_disabled(PGconn *db, ing_snapshot *s)
{
	PGresult *res = PQexec(db, disabled_sql);
	pf_err err = PF_OK;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return PF_EDB;
	}
	for (int i = 0; i < PQntuples(res) && err == PF_OK; i++) {
		err = ing_snapshot_add_disabled(
		    s, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		if (err == PF_EINVAL)
			err = PF_OK;
	}
	PQclear(res);
	return err;
}

/* load builds a snapshot from the database (reload thread or start). */
static pf_err
load(ing_router *r, ing_snapshot **ret)
{
	PGresult *res;
	ing_snapshot *s;
	int64_t last_id = -1;
	pf_err err;

	err = ing_db_ensure(r->cfg->database_url, &r->db);
	ing_db_guard_set(&r->guard, r->db);
	if (err != PF_OK)
		return err;
	res = PQexec(r->db, load_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		/* maybe the server went away: reconnect next time */
		if (PQstatus(r->db) != CONNECTION_OK) {
			ing_db_close(r->db);
			r->db = NULL;
		}
		return PF_EDB;
	}
	s = ing_snapshot_new();
	if (s == NULL) {
		PQclear(res);
		return PF_ENOMEM;
	}
	err = PF_OK;
	for (int i = 0; i < PQntuples(res) && err == PF_OK; i++) {
		int64_t id = col_i64(res, i, 4);
		if (id != last_id) {
			ing_channel_row row = {
				.id = id,
				.type = (int32_t)col_i64(res, i, 5),
				.base_url = PQgetvalue(res, i, 6),
				.key = PQgetvalue(res, i, 7),
				.proxy = PQgetvalue(res, i, 8),
				.model_mapping = PQgetvalue(res, i, 9),
				.connect_timeout_ms = col_u32(res, i, 10),
				.first_byte_timeout_ms = col_u32(res, i, 11),
				.idle_timeout_ms = col_u32(res, i, 12),
				.total_timeout_ms = col_u32(res, i, 13),
				.created_at = col_i64(res, i, 14),
			};
			err = ing_snapshot_add_channel(s, &row);
			if (err == PF_EINVAL) {
				pf_warn("PF-ROUTE-MAPPING",
				    "channel=%lld msg=\"model_mapping is not a "
				    "JSON object of strings; ignored\"",
				    (long long)id);
				err = PF_OK;
			}
			last_id = id;
		}
		if (err == PF_OK) {
			err = ing_snapshot_add_ability(s, PQgetvalue(res, i, 0),
			    PQgetvalue(res, i, 1), id, col_i64(res, i, 2),
			    col_i64(res, i, 3));
			if (err == PF_EINVAL)
				err = PF_OK;
		}
	}
	PQclear(res);
	if (err == PF_OK)
		err = load_disabled(r->db, s);
	if (err == PF_OK)
		err = load_prices(r->db, s);
	if (err == PF_OK)
		err = ing_snapshot_seal(s, (int64_t)time(NULL));
	if (err != PF_OK) {
		ing_snapshot_unref(s);
		return err;
	}
	*ret = s;
	return PF_OK;
}

static void
swap_in(ing_router *r, ing_snapshot *s)
{
	ing_snapshot *old;

	pthread_mutex_lock(&r->mu);
	old = r->cur;
	r->cur = s;
	pthread_mutex_unlock(&r->mu);
	ing_snapshot_unref(old);
}

static void *
reload_main(void *arg)
{
	ing_router *r = arg;
	int failing = 0;
	pf_thread_name("pf-routes");

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct timespec ts;
		uint64_t ms = r->cfg->channel_refresh_ms < REFRESH_MIN_MS
		    ? REFRESH_MIN_MS
		    : r->cfg->channel_refresh_ms;

		pf_deadline_ts(CLOCK_REALTIME, ms, &ts);
		while (!r->stop && !r->kick) {
			if (pthread_cond_timedwait(&r->cv, &r->mu, &ts)
			    == ETIMEDOUT)
				break;
		}
		if (r->stop)
			break;
		r->kick = 0;
		pthread_mutex_unlock(&r->mu);

		ing_snapshot *s = NULL;
		pf_err err = load(r, &s);
		if (err == PF_OK) {
			if (failing)
				pf_info("PF-ROUTE-RELOAD", "msg=recovered");
			failing = 0;
			pf_debug("PF-ROUTE-RELOAD", "channels=%zu",
			    ing_snapshot_channels(s));
			swap_in(r, s);
		} else if (!failing) {
			/* keep serving the last good snapshot */
			pf_warn("PF-ROUTE-RELOAD-FAIL", "err=\"%s\"",
			    pf_strerror(err));
			failing = 1;
		}
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

pf_err
ing_router_start(const pf_config *cfg, ing_router **ret)
{
	ing_router *r = calloc(1, sizeof(*r));
	pf_err err;

	if (r == NULL)
		return PF_ENOMEM;
	r->cfg = cfg;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	ing_db_guard_init(&r->guard);
	err = load(r, &r->cur);
	if (err != PF_OK)
		goto fail;
	if (pthread_create(&r->thread, NULL, reload_main, r) != 0) {
		err = PF_EIO;
		goto fail;
	}
	r->started = 1;
	*ret = r;
	return PF_OK;
fail:
	ing_router_free(r);
	return err;
}

ing_snapshot *
ing_router_acquire(ing_router *r)
{
	ing_snapshot *s;

	pthread_mutex_lock(&r->mu);
	s = ing_snapshot_ref(r->cur);
	pthread_mutex_unlock(&r->mu);
	return s;
}

void
ing_router_reload_now(ing_router *r)
{
	pthread_mutex_lock(&r->mu);
	r->kick = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void
ing_router_free(ing_router *r)
{
	if (r == NULL)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
		ing_db_join_cancelling(r->thread, &r->guard, "pf-routes");
	}
	ing_snapshot_unref(r->cur);
	ing_db_close(r->db);
	ing_db_guard_fini(&r->guard);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
