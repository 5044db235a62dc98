/*
 * auth.c -- token authentication, its cache, and the lookup thread.
 *
 * Locking: a->mu guards the cache (the only lock a hit takes); a->pmu
 * guards the pending lookups, their waits and the thread's state.  Order:
 * a->pmu, then a wait's own mu; a->mu is never held with a->pmu.  The
 * thread owns the connection and runs one query per batch of keys,
 * polling its socket so deadlines and shutdown are served meanwhile.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/thread.h"
#include "ingress/auth.h"
#include "ingress/db.h"

#define BUCKETS 16384u        /* power of two */
#define NEGATIVE_TTL_MS 1000u /* unknown keys are re-checked soon */
#define DB_RETRY_MS 1000      /* after a failed connect, fail fast */
#define KEY_HASH_LEN 64

typedef struct entry {
	struct entry *next;
	char hash[KEY_HASH_LEN + 1];
	int64_t expires_ms; /* monotonic */
	ing_token *tok;     /* NULL = no such (usable) key */
} entry;

/* one key being looked up: queued, or in the thread's current query */
typedef struct lookup {
	struct lookup *next;
	char hash[KEY_HASH_LEN + 1];
	int in_flight;
	ing_auth_wait *waits;
} lookup;

struct ing_auth {
	const pf_config *cfg;
	pthread_mutex_t mu; /* guards buckets, count */
	entry *buckets[BUCKETS];
	size_t count;
	size_t negatives;    /* entries with tok == NULL */
	pthread_mutex_t pmu; /* guards the fields below up to db */
	lookup *pending;
	size_t n_pending;
	int closed;              /* ing_auth_close_waits: refuse lookups */
	int stop;                /* the thread ends */
	int64_t db_down_until;   /* monotonic ms; misses fail before */
	int64_t thread_deadline; /* the thread wakes by then (0: never) */
	int wake_fd;             /* eventfd: work or an earlier deadline */
	pthread_t thread;
	int thread_started;
	PGconn *db; /* the thread's, like batch */
	char batch[PF_AUTH_BATCH_MAX][KEY_HASH_LEN + 1];
};

/* $1: the batch's hashes as an array literal (hex only: no quoting) */
static const char lookup_sql[]
    = "SELECT t.id, t.user_id, t.expired_at, t.models, t.allow_ips, "
      "CASE WHEN t.\"group\" <> '' THEN t.\"group\" ELSE u.\"group\" END, "
      "t.key_hash "
      "FROM tokens t JOIN users u ON u.id = t.user_id "
      "WHERE t.key_hash = ANY($1::bpchar[]) AND t.status = 1 AND u.status = 1 "
      "AND (t.expired_at = -1 OR t.expired_at > "
      "EXTRACT(EPOCH FROM now())::BIGINT)";

static unsigned
bucket_of(const char *hash)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++) {
		h ^= (unsigned char)hash[i];
		h *= 16777619u;
	}
	return h & (BUCKETS - 1);
}

void
ing_token_unref(ing_token *t)
{
	if (t == NULL)
		return;
	if (__atomic_sub_fetch(&t->_refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(t->models);
		free(t->allow_ips);
		free(t);
	}
}

static ing_token *
token_ref(ing_token *t)
{
	__atomic_add_fetch(&t->_refs, 1, __ATOMIC_RELAXED);
	return t;
}

static void
entry_free(entry *e)
{
	ing_token_unref(e->tok);
	free(e);
}

/* drop_entry takes e (already unlinked) from the counts and frees it. */
static void
drop_entry(ing_auth *a, entry *e)
{
	a->count--;
	if (e->tok == NULL)
		a->negatives--;
	entry_free(e);
}

static void
clear_all(ing_auth *a)
{
	for (unsigned i = 0; i < BUCKETS; i++) {
		entry *e = a->buckets[i];
		while (e != NULL) {
			entry *next = e->next;
			entry_free(e);
			e = next;
		}
		a->buckets[i] = NULL;
	}
	a->count = 0;
	a->negatives = 0;
}

/* cache_get: 1 = hit (tok may be NULL = negative), 0 = miss.  Drops
 * expired entries of the bucket on the way. */
static int
cache_get(ing_auth *a, const char *hash, int64_t now, ing_token **ret_tok)
{
	unsigned b = bucket_of(hash);
	int hit = 0;

	pthread_mutex_lock(&a->mu);
	for (entry **pp = &a->buckets[b]; *pp != NULL;) {
		entry *e = *pp;
		if (e->expires_ms <= now) {
			*pp = e->next;
			drop_entry(a, e);
			continue;
		}
		if (memcmp(e->hash, hash, KEY_HASH_LEN) == 0) {
			*ret_tok = e->tok != NULL ? token_ref(e->tok) : NULL;
			hit = 1;
			break;
		}
		pp = &e->next;
	}
	pthread_mutex_unlock(&a->mu);
	return hit;
}

static void
cache_put(ing_auth *a, const char *hash, int64_t expires, ing_token *tok)
{
	unsigned b = bucket_of(hash);
	entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return;
	memcpy(e->hash, hash, KEY_HASH_LEN + 1);
	e->expires_ms = expires;
	e->tok = tok != NULL ? token_ref(tok) : NULL;
	pthread_mutex_lock(&a->mu);
	/* replace an older entry for the same key */
	for (entry **pp = &a->buckets[b]; *pp != NULL; pp = &(*pp)->next) {
		if (memcmp((*pp)->hash, hash, KEY_HASH_LEN) == 0) {
			entry *old = *pp;
			*pp = old->next;
			drop_entry(a, old);
			break;
		}
	}
	/* random keys must not push good ones out: negatives get a tenth */
	if (tok == NULL && a->negatives >= PF_AUTH_CACHE_MAX / 10) {
		pthread_mutex_unlock(&a->mu);
		entry_free(e);
		return;
	}
	/* crude but bounded: a full cache starts over */
	if (a->count >= PF_AUTH_CACHE_MAX)
		clear_all(a);
	e->next = a->buckets[b];
	a->buckets[b] = e;
	a->count++;
	if (tok == NULL)
		a->negatives++;
	pthread_mutex_unlock(&a->mu);
}

/* --- waits (a->pmu held) ------------------------------------------------ */

static void
wait_unlink_locked(ing_auth_wait *w)
{
	lookup *lk = w->_lk;

	if (w->_prev != NULL)
		w->_prev->_next = w->_next;
	else
		lk->waits = w->_next;
	if (w->_next != NULL)
		w->_next->_prev = w->_prev;
	w->_prev = w->_next = NULL;
	w->_listed = 0;
	w->_lk = NULL;
}

/* wait_end_locked takes w off its lookup's list, leaves the outcome (err,
 * a reference to tok) and resumes its connection when parked. */
static void
wait_end_locked(ing_auth_wait *w, pf_err err, ing_token *tok)
{
	wait_unlink_locked(w);
	w->_err = err;
	w->_tok = tok != NULL ? token_ref(tok) : NULL;
	ing_park_wake(&w->park);
}

static void
lookup_end_locked(lookup *lk, pf_err err, ing_token *tok)
{
	while (lk->waits != NULL)
		wait_end_locked(lk->waits, err, tok);
}

static void
lookup_drop_locked(ing_auth *a, lookup *lk)
{
	for (lookup **pp = &a->pending; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == lk) {
			*pp = lk->next;
			break;
		}
	}
	lookup_end_locked(lk, PF_ECLOSED, NULL);
	a->n_pending--;
	free(lk);
}

static lookup *
lookup_find_locked(ing_auth *a, const char *hash)
{
	for (lookup *lk = a->pending; lk != NULL; lk = lk->next)
		if (memcmp(lk->hash, hash, KEY_HASH_LEN) == 0)
			return lk;
	return NULL;
}

/* sweep_locked ends the waits whose deadline passed (PF_EDB: too slow)
 * and drops queued lookups nobody waits for any more. */
static void
sweep_locked(ing_auth *a, int64_t now)
{
	for (lookup **pp = &a->pending; *pp != NULL;) {
		lookup *lk = *pp;
		for (ing_auth_wait *w = lk->waits, *next; w != NULL; w = next) {
			next = w->_next;
			if (w->_deadline_ms <= now)
				wait_end_locked(w, PF_EDB, NULL);
		}
		if (lk->waits == NULL && !lk->in_flight) {
			*pp = lk->next;
			a->n_pending--;
			free(lk);
			continue;
		}
		pp = &lk->next;
	}
}

/* next_timeout_locked: ms until the earliest wait's deadline (-1: none),
 * noted as the thread's next wake. */
static int
next_timeout_locked(ing_auth *a, int64_t now)
{
	int64_t first = 0;

	for (lookup *lk = a->pending; lk != NULL; lk = lk->next)
		for (ing_auth_wait *w = lk->waits; w != NULL; w = w->_next)
			if (first == 0 || w->_deadline_ms < first)
				first = w->_deadline_ms;
	a->thread_deadline = first;
	if (first == 0)
		return -1;
	return first <= now ? 0 : (int)(first - now);
}

static void
all_waits_end_locked(ing_auth *a)
{
	for (lookup *lk = a->pending; lk != NULL; lk = lk->next)
		lookup_end_locked(lk, PF_ECLOSED, NULL);
}

void
ing_auth_wait_init(ing_auth_wait *w, void *conn, void (*resume)(void *conn))
{
	memset(w, 0, sizeof(*w));
	ing_park_init(&w->park, conn, resume);
}

int
ing_auth_wait_park(ing_auth_wait *w, void (*suspend)(void *conn))
{
	return ing_park_suspend(&w->park, suspend);
}

void
ing_auth_wait_fini(ing_auth *a, ing_auth_wait *w)
{
	/* a wait never queued (every cache hit) costs no lock here */
	if (a != NULL && w->_queued) {
		pthread_mutex_lock(&a->pmu);
		if (w->_listed)
			wait_unlink_locked(w);
		pthread_mutex_unlock(&a->pmu);
	}
	ing_token_unref(w->_tok);
	w->_tok = NULL;
	ing_park_fini(&w->park);
}

/* --- the lookup thread ---------------------------------------------------- */

static void
wake(ing_auth *a)
{
	uint64_t one = 1;

	/* a full counter already wakes the thread */
	(void)!write(a->wake_fd, &one, sizeof(one));
}

/* wait_io sweeps deadlines and sleeps until the wake fd, sock (when >= 0)
 * is readable, or the next deadline.  Returns -1 when the thread must
 * stop. */
static int
wait_io(ing_auth *a, int sock)
{
	struct pollfd p[2] = { { .fd = a->wake_fd, .events = POLLIN },
		{ .fd = sock, .events = POLLIN } };
	int timeout;
	uint64_t n;

	pthread_mutex_lock(&a->pmu);
	if (a->stop) {
		pthread_mutex_unlock(&a->pmu);
		return -1;
	}
	int64_t now = pf_mono_ms();
	sweep_locked(a, now);
	timeout = next_timeout_locked(a, now);
	pthread_mutex_unlock(&a->pmu);
	if (poll(p, sock >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR)
		return -1;
	if (p[0].revents & POLLIN)
		(void)!read(a->wake_fd, &n, sizeof(n));
	return 0;
}

/* exec_batch sends the query and waits for its result without blocking
 * the deadlines: NULL on a connection error or when stopping. */
static PGresult *
exec_batch(ing_auth *a, const char *arr)
{
	const char *params[1] = { arr };
	PGresult *res = NULL;

	if (!PQsendQueryParams(
	        a->db, lookup_sql, 1, NULL, params, NULL, NULL, 0))
		return NULL;
	for (;;) {
		if (!PQconsumeInput(a->db))
			break;
		while (!PQisBusy(a->db)) {
			PGresult *r = PQgetResult(a->db);
			if (r == NULL)
				return res;
			if (res == NULL)
				res = r;
			else
				PQclear(r);
		}
		if (wait_io(a, PQsocket(a->db)) < 0)
			break;
	}
	PQclear(res);
	return NULL;
}

/* token_of: the token of hash in res (*ret_tok NULL: not found). */
static pf_err
token_of(const PGresult *res, const char *hash, ing_token **ret_tok)
{
	int row = -1;
	ing_token *t;

	for (int i = 0; i < PQntuples(res) && row < 0; i++)
		if (strncmp(PQgetvalue(res, i, 6), hash, KEY_HASH_LEN) == 0)
			row = i;
	if (row < 0) {
		*ret_tok = NULL;
		return PF_OK;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return PF_ENOMEM;
	t->_refs = 1;
	t->token_id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	t->user_id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
	t->expired_at = strtoll(PQgetvalue(res, row, 2), NULL, 10);
	t->models = strdup(PQgetvalue(res, row, 3));
	t->allow_ips = strdup(PQgetvalue(res, row, 4));
	const char *g = PQgetvalue(res, row, 5);
	size_t glen = strlen(g);
	if (glen >= sizeof(t->group))
		glen = sizeof(t->group) - 1;
	memcpy(t->group, g, glen);
	t->group[glen] = '\0';
	if (t->models == NULL || t->allow_ips == NULL) {
		ing_token_unref(t);
		return PF_ENOMEM;
	}
	*ret_tok = t;
	return PF_OK;
}

/* deliver caches each key's answer and ends the waits for it. */
static void
deliver(ing_auth *a, char (*hashes)[KEY_HASH_LEN + 1], size_t n, pf_err err,
    const PGresult *res)
{
	int64_t now = pf_mono_ms();
	uint32_t ttl = a->cfg->auth_cache_ttl_ms;

	for (size_t i = 0; i < n; i++) {
		ing_token *t = NULL;
		pf_err e = err == PF_OK ? token_of(res, hashes[i], &t) : err;
		if (e == PF_OK && ttl > 0)
			cache_put(a, hashes[i],
			    now
			        + (t == NULL && ttl > NEGATIVE_TTL_MS
			                ? NEGATIVE_TTL_MS
			                : ttl),
			    t);
		pthread_mutex_lock(&a->pmu);
		lookup *lk = lookup_find_locked(a, hashes[i]);
		if (lk != NULL) {
			lookup_end_locked(lk, e, t);
			lookup_drop_locked(a, lk);
		}
		pthread_mutex_unlock(&a->pmu);
		ing_token_unref(t);
	}
}

static int
stopping(ing_auth *a)
{
	pthread_mutex_lock(&a->pmu);
	int stop = a->stop;
	pthread_mutex_unlock(&a->pmu);
	return stop;
}

/* run_batch looks the n keys up in one query (reconnecting once). */
static void
run_batch(ing_auth *a, char (*hashes)[KEY_HASH_LEN + 1], size_t n)
{
	char arr[PF_AUTH_BATCH_MAX * (KEY_HASH_LEN + 1) + 2];
	size_t off = 0;
	PGresult *res = NULL;
	pf_err err = PF_EDB;

	arr[off++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			arr[off++] = ',';
		memcpy(arr + off, hashes[i], KEY_HASH_LEN);
		off += KEY_HASH_LEN;
	}
	arr[off++] = '}';
	arr[off] = '\0';
	for (int attempt = 0; attempt < 2; attempt++) {
		/* connecting blocks this thread only (connect_timeout) */
		err = ing_db_ensure(a->cfg->database_url, &a->db);
		if (err != PF_OK) {
			/* misses fail at once for a while: a refusing
			 * database is asked once a second, not per key */
			pthread_mutex_lock(&a->pmu);
			a->db_down_until = pf_mono_ms() + DB_RETRY_MS;
			pthread_mutex_unlock(&a->pmu);
			break;
		}
		res = exec_batch(a, arr);
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			err = PF_OK;
			break;
		}
		PQclear(res);
		res = NULL;
		err = PF_EDB;
		if (stopping(a))
			break;
		if (PQstatus(a->db) == CONNECTION_OK)
			break; /* a real query error: retrying will not help */
		ing_db_close(a->db);
		a->db = NULL;
	}
	deliver(a, hashes, n, err, res);
	PQclear(res);
}

static void *
thread_main(void *arg)
{
	ing_auth *a = arg;
	char(*hashes)[KEY_HASH_LEN + 1] = a->batch;
	pf_thread_name("pf-auth");

	for (;;) {
		size_t n = 0;
		int64_t now = pf_mono_ms();

		pthread_mutex_lock(&a->pmu);
		if (a->stop) {
			pthread_mutex_unlock(&a->pmu);
			break;
		}
		sweep_locked(a, now);
		if (now >= a->db_down_until) {
			for (lookup *lk = a->pending;
			     lk != NULL && n < PF_AUTH_BATCH_MAX;
			     lk = lk->next) {
				if (lk->in_flight)
					continue;
				lk->in_flight = 1;
				memcpy(hashes[n++], lk->hash, KEY_HASH_LEN + 1);
			}
		} else {
			/* queued before the database went down */
			for (lookup *lk = a->pending; lk != NULL; lk = lk->next)
				lookup_end_locked(lk, PF_EDB, NULL);
			sweep_locked(a, now);
		}
		pthread_mutex_unlock(&a->pmu);
		if (n > 0)
			run_batch(a, hashes, n);
		else if (wait_io(a, -1) < 0)
			break;
	}
	return NULL;
}

/* --- lifecycle and lookup ------------------------------------------------- */

pf_err
ing_auth_new(const pf_config *cfg, ing_auth **ret)
{
	ing_auth *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return PF_ENOMEM;
	a->cfg = cfg;
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->pmu, NULL);
	a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->wake_fd < 0) {
		ing_auth_free(a);
		return PF_EIO;
	}
	if (pthread_create(&a->thread, NULL, thread_main, a) != 0) {
		ing_auth_free(a);
		return PF_EIO;
	}
	a->thread_started = 1;
	*ret = a;
	return PF_OK;
}

void
ing_auth_close_waits(ing_auth *a)
{
	pthread_mutex_lock(&a->pmu);
	a->closed = 1;
	all_waits_end_locked(a);
	pthread_mutex_unlock(&a->pmu);
}

void
ing_auth_free(ing_auth *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->pmu);
	a->closed = 1;
	a->stop = 1;
	all_waits_end_locked(a);
	pthread_mutex_unlock(&a->pmu);
	if (a->thread_started) {
		wake(a);
		pthread_join(a->thread, NULL);
	}
	while (a->pending != NULL)
		lookup_drop_locked(a, a->pending);
	clear_all(a);
	ing_db_close(a->db);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	pthread_mutex_destroy(&a->pmu);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* enqueue puts w on the lookup of hash (queued when new): PF_EPENDING,
 * or the error to answer at once.  With w NULL it queues nothing: the
 * error to answer at once, else PF_EPENDING (a wait is needed). */
static pf_err
enqueue(ing_auth *a, const char *hash, ing_auth_wait *w)
{
	int64_t now = pf_mono_ms();
	int poke = 0;
	lookup *lk;

	pthread_mutex_lock(&a->pmu);
	if (a->closed) {
		pthread_mutex_unlock(&a->pmu);
		return PF_ECLOSED;
	}
	lk = lookup_find_locked(a, hash);
	if (lk == NULL) {
		if (now < a->db_down_until
		    || a->n_pending >= PF_AUTH_PENDING_MAX) {
			pthread_mutex_unlock(&a->pmu);
			return PF_EDB;
		}
		if (w == NULL) {
			pthread_mutex_unlock(&a->pmu);
			return PF_EPENDING;
		}
		lk = calloc(1, sizeof(*lk));
		if (lk == NULL) {
			pthread_mutex_unlock(&a->pmu);
			return PF_ENOMEM;
		}
		memcpy(lk->hash, hash, KEY_HASH_LEN + 1);
		lk->next = a->pending;
		a->pending = lk;
		a->n_pending++;
		poke = 1;
	} else if (w == NULL) {
		pthread_mutex_unlock(&a->pmu);
		return PF_EPENDING;
	}
	ing_park_rearm(&w->park);
	w->_queued = 1;
	w->_listed = 1;
	w->_err = PF_OK;
	w->_tok = NULL;
	w->_deadline_ms = now + PF_AUTH_WAIT_MS;
	w->_lk = lk;
	w->_prev = NULL;
	w->_next = lk->waits;
	if (lk->waits != NULL)
		lk->waits->_prev = w;
	lk->waits = w;
	/* the thread sleeps until its next deadline: not past this one */
	if (a->thread_deadline == 0 || w->_deadline_ms < a->thread_deadline) {
		a->thread_deadline = w->_deadline_ms;
		poke = 1;
	}
	pthread_mutex_unlock(&a->pmu);
	if (poke)
		wake(a);
	return PF_EPENDING;
}

/* outcome takes w's ended lookup: PF_EPENDING while it still waits. */
static pf_err
outcome(ing_auth *a, ing_auth_wait *w, ing_token **ret_tok)
{
	pf_err err;

	pthread_mutex_lock(&a->pmu);
	if (w->_listed) {
		pthread_mutex_unlock(&a->pmu);
		return PF_EPENDING;
	}
	w->_queued = 0;
	err = w->_err;
	*ret_tok = w->_tok;
	w->_tok = NULL;
	pthread_mutex_unlock(&a->pmu);
	return err;
}

pf_err
ing_auth_lookup(ing_auth *a, const char *key, size_t len, ing_auth_wait *w,
    ing_token **ret_tok)
{
	char hash[KEY_HASH_LEN + 1];
	ing_token *t = NULL;
	pf_err err;

	if (len < 4 || len > PF_API_KEY_MAX || memcmp(key, "sk-", 3) != 0)
		return PF_EDENIED;
	if (w != NULL && w->_queued) { /* resumed: the lookup's outcome */
		err = outcome(a, w, &t);
		if (err != PF_OK)
			return err;
	} else {
		err = pf_sha256_hex(key, len, hash);
		if (err != PF_OK)
			return err;
		if (!cache_get(a, hash, pf_mono_ms(), &t))
			return enqueue(a, hash, w);
	}
	if (t == NULL)
		return PF_EDENIED;
	if (t->expired_at != -1 && t->expired_at <= (int64_t)time(NULL)) {
		ing_token_unref(t);
		return PF_EDENIED;
	}
	*ret_tok = t;
	return PF_OK;
}
