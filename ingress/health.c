/*
 * health.c -- channel failure counters, automatic disable, probes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "common/clock.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/thread.h"
#include "ingress/db.h"
#include "ingress/health.h"

#define BUCKETS 1024u          /* power of two */
#define CHANNELS_MAX 100000u   /* channels tracked in memory */
#define QUEUE_MAX 1024u        /* disables waiting for the thread */
#define WAKE_MS 200            /* thread turn when idle */
#define PROBES_MAX 64          /* channels probed per round */
#define PROBE_TIMEOUT_MS 10000 /* one probe's deadline */
#define PROBE_POLL_MS 50
/* a channel disabled for 401/403 (its key) is probed this many times
 * less often: keys rarely heal within seconds */
#define AUTH_PROBE_FACTOR 10

typedef struct chan {
	int64_t id;
	uint32_t fails;     /* failures in a row */
	int disabling;      /* queued or written: not queued again */
	int64_t next_probe; /* unix ms; 0 = not yet decided */
	struct chan *next;
} chan;

typedef struct pending {
	int64_t id;
	uint32_t fails;
	char reason[160];
} pending;

struct ing_health {
	const pf_config *cfg;
	pthread_mutex_t mu; /* guards everything up to the thread fields */
	pthread_cond_t cv;
	chan *table[BUCKETS];
	size_t n_chans;
	pending queue[QUEUE_MAX];
	size_t n_queue;
	int stop;
	int quiet;
	/* thread */
	int started;
	pthread_t thread;
	ing_relay *relay;
	ing_router *router;
	PGconn *db;
	ing_db_guard guard; /* a stop cancels an update stuck on a lock */
};

pf_err
ing_health_new(const pf_config *cfg, ing_health **ret)
{
	ing_health *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return PF_ENOMEM;
	h->cfg = cfg;
	pthread_mutex_init(&h->mu, NULL);
	ing_db_guard_init(&h->guard);
	pthread_cond_init(&h->cv, NULL);
	*ret = h;
	return PF_OK;
}

/* --- counting (any thread, h locked) ---------------------------------- */

static chan *
find(ing_health *h, int64_t id, int create)
{
	unsigned b = (unsigned)((uint64_t)id * 0x9E3779B97F4A7C15ull >> 54)
	    & (BUCKETS - 1);
	chan *c;

	for (c = h->table[b]; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	if (!create || h->n_chans == CHANNELS_MAX)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->id = id;
	c->next = h->table[b];
	h->table[b] = c;
	h->n_chans++;
	return c;
}

static int
queue_disable(ing_health *h, chan *c, const char *why, int64_t now_s)
{
	time_t t = (time_t)now_s;
	struct tm tm;
	char when[32] = "";
	pending *p;

	if (c->disabling || h->n_queue == QUEUE_MAX)
		return 0;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	c->disabling = 1;
	p = &h->queue[h->n_queue++];
	p->id = c->id;
	p->fails = c->fails;
	snprintf(p->reason, sizeof(p->reason), "%s at %s", why, when);
	return 1;
}

static const char *
outcome_text(int32_t outcome)
{
	switch (outcome) {
	case PF_ATTEMPT_CONNECT:
		return "connect error";
	case PF_ATTEMPT_TIMEOUT:
		return "timeout";
	case PF_ATTEMPT_BROKEN:
		return "transfer broke";
	default:
		return "HTTP error";
	}
}

/* note_one counts one attempt; 1 when it queued a disable. */
static int
note_one(ing_health *h, const pf_attempt *a, int64_t now_s)
{
	uint32_t max = h->cfg->channel_fail_max;
	char why[128];
	chan *c;

	if (a->outcome == PF_ATTEMPT_LOCAL)
		return 0; /* our side: says nothing about the channel */
	c = find(h, a->channel_id, 1);
	if (c == NULL)
		return 0;
	if (a->status == 401 || a->status == 403) {
		c->fails++;
		snprintf(why, sizeof(why), "%d from upstream", (int)a->status);
		return queue_disable(h, c, why, now_s);
	}
	if (a->outcome == PF_ATTEMPT_OK) {
		c->fails = 0;
		c->disabling = 0;
		return 0;
	}
	if (a->outcome == PF_ATTEMPT_STATUS && a->status == 429)
		return 0; /* busy, not broken */
	c->fails++;
	if (max == 0 || c->fails < max)
		return 0;
	if (a->status > 0)
		snprintf(why, sizeof(why),
		    "%" PRIu32 " failures in a row (last: HTTP %d)", c->fails,
		    (int)a->status);
	else
		snprintf(why, sizeof(why),
		    "%" PRIu32 " failures in a row (last: %s)", c->fails,
		    outcome_text(a->outcome));
	return queue_disable(h, c, why, now_s);
}

void
ing_health_note(ing_health *h, const pf_attempt *a, uint32_t n, int64_t now_s)
{
	int queued = 0;

	if (h == NULL || n == 0)
		return;
	pthread_mutex_lock(&h->mu);
	for (uint32_t i = 0; i < n; i++)
		queued |= note_one(h, &a[i], now_s);
	if (queued)
		pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void
ing_health_end_cb(void *arg, const pf_relay_end *e)
{
	ing_health_note(
	    arg, e->attempt_list, e->n_attempts, pf_clock_ms() / 1000);
}

size_t
ing_health_pending(
    ing_health *h, int64_t *ids, size_t max, char *reason, size_t reasonlen)
{
	size_t n;

	pthread_mutex_lock(&h->mu);
	n = h->n_queue;
	for (size_t i = 0; i < n && i < max; i++)
		ids[i] = h->queue[i].id;
	if (reason != NULL && reasonlen > 0)
		snprintf(
		    reason, reasonlen, "%s", n > 0 ? h->queue[0].reason : "");
	pthread_mutex_unlock(&h->mu);
	return n;
}

void
ing_health_quiesce(ing_health *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->quiet = 1;
	pthread_mutex_unlock(&h->mu);
}

/* --- the thread: database writes -------------------------------------- */

static int
exec_update(ing_health *h, const char *sql, const char *const *vals, int n)
{
	PGresult *res;
	int rows = -1;

	if (ing_db_ensure(h->cfg->database_url, &h->db) != PF_OK) {
		ing_db_guard_set(&h->guard, NULL);
		return -1;
	}
	ing_db_guard_set(&h->guard, h->db);
	res = PQexecParams(h->db, sql, n, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		rows = (int)strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	if (rows < 0 && PQstatus(h->db) != CONNECTION_OK) {
		ing_db_close(h->db);
		h->db = NULL;
	}
	return rows;
}

static const char disable_sql[]
    = "UPDATE channels SET status = 3, disabled_reason = $2, "
      "disabled_at = $3, fail_count = $4, updated_at = $3 "
      "WHERE id = $1 AND status = 1";

static const char enable_sql[]
    = "UPDATE channels SET status = 1, disabled_reason = '', "
      "disabled_at = 0, fail_count = 0, test_at = $2, "
      "response_time_ms = $3, updated_at = $2 "
      "WHERE id = $1 AND status = 3";

/* a failed probe leaves the channel disabled and records when it was
 * tried and how long it took (fail_count counts failed probes too) */
static const char probe_failed_sql[]
    = "UPDATE channels SET test_at = $2, response_time_ms = $3, "
      "fail_count = fail_count + 1 "
      "WHERE id = $1 AND status = 3";

/* write_disables writes p[0..n); what fails to write goes back to the
 * queue.  Returns how many channels were disabled. */
static int
write_disables(ing_health *h, const pending *p, size_t n)
{
	char id[24], at[24], fails[16];
	const char *vals[4] = { id, NULL, at, fails };
	int done = 0;

	snprintf(at, sizeof(at), "%" PRId64, pf_clock_ms() / 1000);
	for (size_t i = 0; i < n; i++) {
		int rows;

		snprintf(id, sizeof(id), "%" PRId64, p[i].id);
		snprintf(fails, sizeof(fails), "%" PRIu32, p[i].fails);
		vals[1] = p[i].reason;
		rows = exec_update(h, disable_sql, vals, 4);
		if (rows < 0) {
			pthread_mutex_lock(&h->mu);
			if (h->n_queue < QUEUE_MAX)
				h->queue[h->n_queue++] = p[i];
			pthread_mutex_unlock(&h->mu);
			continue;
		}
		if (rows > 0) {
			pf_warn("PF-CHANNEL-DISABLED",
			    "channel=%" PRId64 " reason=\"%s\"", p[i].id,
			    p[i].reason);
			done++;
		}
	}
	return done;
}

/* --- the thread: probes ----------------------------------------------- */

static void
probe_resume_cb(void *conn)
{
	(void)conn;
}

static uint32_t
col_u32(const PGresult *res, int row, int col)
{
	long long v = strtoll(PQgetvalue(res, row, col), NULL, 10);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static pf_bytes
col_bytes(const PGresult *res, int row, int col)
{
	pf_bytes b = { (const uint8_t *)PQgetvalue(res, row, col),
		(size_t)PQgetlength(res, row, col) };
	return b;
}

/* send_probe sends GET /models for row i through a worker; the flight,
 * or NULL when it could not be sent. */
static ing_flight *
send_probe(ing_health *h, const PGresult *res, int i, int64_t deadline)
{
	const pf_config *cfg = h->cfg;
	pf_candidate c = {
		.channel_id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
		.type = (int32_t)col_u32(res, i, 1),
		.base_url = col_bytes(res, i, 2),
		.key = col_bytes(res, i, 3),
		.proxy = col_bytes(res, i, 4),
		.upstream_model = { (const uint8_t *)"", 0 },
		.connect_timeout_ms = col_u32(res, i, 5),
		.first_byte_timeout_ms = col_u32(res, i, 6),
		.idle_timeout_ms = col_u32(res, i, 7),
		.total_timeout_ms = col_u32(res, i, 8),
	};
	pf_msg m = { .kind = PF_MSG_RELAY_REQUEST };
	pf_relay_request *rq = &m.u.relay_request;
	ing_flight *f;

	if (pf_id_new(rq->id) != PF_OK)
		return NULL;
	rq->reply_addr = (pf_bytes) { (const uint8_t *)cfg->reply_url,
		strlen(cfg->reply_url) };
	rq->deadline_ms = deadline;
	rq->method = (pf_bytes) { (const uint8_t *)"GET", 3 };
	rq->path = (pf_bytes) { (const uint8_t *)"/models", 7 };
	rq->client_api = c.type; /* no conversion */
	rq->body = (pf_bytes) { (const uint8_t *)"", 0 };
	rq->n_candidates = 1;
	rq->candidates = &c;
	rq->probe = 1;
	f = ing_flight_new(rq->id, 0, deadline, NULL, probe_resume_cb);
	if (f == NULL)
		return NULL;
	if (ing_relay_send(h->relay, f, &m) != PF_OK) {
		ing_flight_unref(f);
		return NULL;
	}
	return f;
}

static int
flight_done(ing_flight *f)
{
	int done;

	pthread_mutex_lock(&f->mu);
	done = f->ended || f->failed;
	pthread_mutex_unlock(&f->mu);
	return done;
}

static int
stopping(ing_health *h)
{
	int s;

	pthread_mutex_lock(&h->mu);
	s = h->stop;
	pthread_mutex_unlock(&h->mu);
	return s;
}

static int64_t
probe_every(ing_health *h, const char *reason)
{
	int64_t every = h->cfg->channel_probe_ms;

	if (strncmp(reason, "401 ", 4) == 0 || strncmp(reason, "403 ", 4) == 0)
		every *= AUTH_PROBE_FACTOR;
	return every;
}

/* probe_due says whether row i is due for a probe now, and sets when the
 * one after is due (a probe that succeeds re-enables the channel). */
static int
probe_due(ing_health *h, const PGresult *res, int i)
{
	int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	int64_t every = probe_every(h, PQgetvalue(res, i, 9));
	int64_t now = pf_clock_ms();
	int due = 0;
	chan *c;

	pthread_mutex_lock(&h->mu);
	c = find(h, id, 1);
	if (c != NULL) {
		if (c->next_probe == 0) /* first sight: from the disable */
			c->next_probe
			    = strtoll(PQgetvalue(res, i, 10), NULL, 10) * 1000
			    + every;
		due = now >= c->next_probe;
		if (due)
			c->next_probe = now + every;
	}
	pthread_mutex_unlock(&h->mu);
	return due;
}

/* forget_readmitted clears the disabling mark of channels that are no
 * longer status 3 (an admin enabled them) and not waiting in the queue,
 * so their failures count again. */
static void
forget_readmitted(ing_health *h, const PGresult *res)
{
	pthread_mutex_lock(&h->mu);
	for (unsigned b = 0; b < BUCKETS; b++) {
		for (chan *c = h->table[b]; c != NULL; c = c->next) {
			int listed = 0;

			if (!c->disabling)
				continue;
			for (int i = 0; i < PQntuples(res) && !listed; i++)
				listed
				    = strtoll(PQgetvalue(res, i, 0), NULL, 10)
				    == c->id;
			for (size_t q = 0; q < h->n_queue && !listed; q++)
				listed = h->queue[q].id == c->id;
			if (!listed) {
				c->disabling = 0;
				c->fails = 0;
				c->next_probe = 0;
			}
		}
	}
	pthread_mutex_unlock(&h->mu);
}

/* probe_round probes every auto-disabled channel once and re-enables
 * the ones that answer 2xx; returns how many it re-enabled. */
static int
probe_round(ing_health *h)
{
	static const char sql[]
	    = "SELECT id, type, base_url, key, proxy, connect_timeout_ms, "
	      "first_byte_timeout_ms, idle_timeout_ms, total_timeout_ms, "
	      "disabled_reason, disabled_at "
	      "FROM channels WHERE status = 3 ORDER BY disabled_at LIMIT 64";
	ing_flight *fl[PROBES_MAX];
	int64_t ids[PROBES_MAX];
	int64_t took_ms[PROBES_MAX]; /* -1 while the probe runs */
	int64_t start = pf_clock_ms();
	int64_t deadline = start + PROBE_TIMEOUT_MS;
	PGresult *res;
	int n, enabled = 0;

	if (ing_db_ensure(h->cfg->database_url, &h->db) != PF_OK) {
		ing_db_guard_set(&h->guard, NULL);
		return 0;
	}
	ing_db_guard_set(&h->guard, h->db);
	res = PQexec(h->db, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		if (PQstatus(h->db) != CONNECTION_OK) {
			ing_db_close(h->db);
			h->db = NULL;
		}
		return 0;
	}
	forget_readmitted(h, res);
	n = PQntuples(res);
	if (n > PROBES_MAX)
		n = PROBES_MAX;
	for (int i = 0; i < n; i++) {
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		took_ms[i] = -1;
		fl[i] = probe_due(h, res, i) ? send_probe(h, res, i, deadline)
		                             : NULL;
	}
	PQclear(res); /* the requests went out: their bytes were copied */
	for (;;) {
		int open = 0;

		for (int i = 0; i < n; i++) {
			if (fl[i] == NULL || took_ms[i] >= 0)
				continue;
			if (flight_done(fl[i]))
				took_ms[i] = pf_clock_ms() - start;
			else
				open++;
		}
		if (open == 0 || stopping(h)
		    || pf_clock_ms() > deadline + PF_RELAY_GRACE_MS)
			break;
		nng_msleep(PROBE_POLL_MS);
	}
	for (int i = 0; i < n; i++) {
		ing_flight *f = fl[i];
		int good;
		char id[24], at[24], took[24];
		const char *vals[3] = { id, at, took };

		if (f == NULL)
			continue;
		pthread_mutex_lock(&f->mu);
		good = f->ended && !f->failed && f->reason == PF_END_DONE
		    && f->head && f->status >= 200 && f->status < 300;
		pthread_mutex_unlock(&f->mu);
		ing_relay_forget(h->relay, f);
		ing_flight_unref(f);
		snprintf(id, sizeof(id), "%" PRId64, ids[i]);
		snprintf(at, sizeof(at), "%" PRId64, pf_clock_ms() / 1000);
		snprintf(took, sizeof(took), "%" PRId64,
		    took_ms[i] >= 0 ? took_ms[i] : pf_clock_ms() - start);
		if (!good) {
			(void)exec_update(h, probe_failed_sql, vals, 3);
			continue;
		}
		if (exec_update(h, enable_sql, vals, 3) > 0) {
			chan *c;

			pthread_mutex_lock(&h->mu);
			c = find(h, ids[i], 0);
			if (c != NULL) {
				c->fails = 0;
				c->disabling = 0;
				c->next_probe = 0;
			}
			pthread_mutex_unlock(&h->mu);
			pf_info("PF-CHANNEL-ENABLED",
			    "channel=%" PRId64 " msg=\"probe answered\"",
			    ids[i]);
			enabled++;
		}
	}
	return enabled;
}

static void *
health_main(void *arg)
{
	ing_health *h = arg;
	uint32_t every = h->cfg->channel_probe_ms;
	int64_t next_probe = pf_clock_ms() + every;
	pending *batch = malloc(QUEUE_MAX * sizeof(*batch));
	pf_thread_name("pf-health");

	if (batch == NULL)
		return NULL;
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		struct timespec ts;
		size_t n;
		int quiet, changed = 0;

		pf_deadline_ts(CLOCK_REALTIME, WAKE_MS, &ts);
		while (!h->stop && h->n_queue == 0) {
			if (pthread_cond_timedwait(&h->cv, &h->mu, &ts)
			    == ETIMEDOUT)
				break;
		}
		if (h->stop)
			break;
		n = h->n_queue;
		memcpy(batch, h->queue, n * sizeof(*batch));
		h->n_queue = 0;
		quiet = h->quiet;
		pthread_mutex_unlock(&h->mu);

		if (n > 0)
			changed += write_disables(h, batch, n);
		if (every > 0 && !quiet && pf_clock_ms() >= next_probe) {
			changed += probe_round(h);
			next_probe = pf_clock_ms() + every;
		}
		if (changed > 0)
			ing_router_reload_now(h->router);
		pthread_mutex_lock(&h->mu);
		if (n > 0 && h->n_queue > 0 && !h->stop) {
			/* the database refused: do not spin on it */
			pf_deadline_ts(CLOCK_REALTIME, 1000, &ts);
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		}
	}
	pthread_mutex_unlock(&h->mu);
	free(batch);
	return NULL;
}

pf_err
ing_health_start(ing_health *h, ing_relay *relay, ing_router *router)
{
	h->relay = relay;
	h->router = router;
	if (pthread_create(&h->thread, NULL, health_main, h) != 0)
		return PF_EIO;
	h->started = 1;
	return PF_OK;
}

void
ing_health_free(ing_health *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->started)
		ing_db_join_cancelling(h->thread, &h->guard, "pf-health");
	for (unsigned b = 0; b < BUCKETS; b++) {
		chan *c = h->table[b], *next;

		for (; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	}
	ing_db_close(h->db);
	ing_db_guard_fini(&h->guard);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
