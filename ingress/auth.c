/*
 * auth.c -- token authentication and its cache.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/clock.h"
#include "common/ids.h"
#include "common/limits.h"
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

struct ing_auth {
	const pf_config *cfg;
	pthread_mutex_t mu; /* guards buckets, count */
	entry *buckets[BUCKETS];
	size_t count;
	size_t negatives;      /* entries with tok == NULL */
	pthread_mutex_t db_mu; /* guards db, db_down_until */
	PGconn *db;
	int64_t db_down_until; /* monotonic ms; no connect attempts before */
};

static const char lookup_sql[]
    = "SELECT t.id, t.user_id, t.expired_at, t.models, t.allow_ips, "
      "CASE WHEN t.\"group\" <> '' THEN t.\"group\" ELSE u.\"group\" END "
      "FROM tokens t JOIN users u ON u.id = t.user_id "
      "WHERE t.key_hash = $1 AND t.status = 1 AND u.status = 1 "
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

pf_err
ing_auth_new(const pf_config *cfg, ing_auth **ret)
{
	ing_auth *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return PF_ENOMEM;
	a->cfg = cfg;
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->db_mu, NULL);
	*ret = a;
	return PF_OK;
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

void
ing_auth_free(ing_auth *a)
{
	if (a == NULL)
		return;
	clear_all(a);
	ing_db_close(a->db);
	pthread_mutex_destroy(&a->db_mu);
	pthread_mutex_destroy(&a->mu);
	free(a);
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

/* query: PF_OK with *ret_tok (NULL = not found) or PF_EDB/PF_ENOMEM. */
static pf_err
query(ing_auth *a, const char *hash, ing_token **ret_tok)
{
	const char *params[1] = { hash };
	PGresult *res = NULL;
	ing_token *t = NULL;
	pf_err err;

	pthread_mutex_lock(&a->db_mu);
	err = PF_EDB;
	/* a database that just refused us would hold every HTTP thread for
	 * a connect timeout: answer "unavailable" at once for a while */
	for (int attempt = 0;
	     attempt < 2 && (a->db != NULL || pf_mono_ms() >= a->db_down_until);
	     attempt++) {
		err = ing_db_ensure(a->cfg->database_url, &a->db);
		if (err != PF_OK) {
			a->db_down_until = pf_mono_ms() + DB_RETRY_MS;
			break;
		}
		res = PQexecParams(
		    a->db, lookup_sql, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			break;
		PQclear(res);
		res = NULL;
		err = PF_EDB;
		if (PQstatus(a->db) == CONNECTION_OK)
			break; /* a real query error: retrying will not help */
		ing_db_close(a->db);
		a->db = NULL;
	}
	pthread_mutex_unlock(&a->db_mu);
	if (res == NULL)
		return err;
	err = PF_OK;
	if (PQntuples(res) > 0) {
		t = calloc(1, sizeof(*t));
		if (t == NULL) {
			err = PF_ENOMEM;
			goto done;
		}
		t->_refs = 1;
		t->token_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		t->user_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		t->expired_at = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		t->models = strdup(PQgetvalue(res, 0, 3));
		t->allow_ips = strdup(PQgetvalue(res, 0, 4));
		const char *g = PQgetvalue(res, 0, 5);
		size_t glen = strlen(g);
		if (glen >= sizeof(t->group))
			glen = sizeof(t->group) - 1;
		memcpy(t->group, g, glen);
		t->group[glen] = '\0';
		if (t->models == NULL || t->allow_ips == NULL) {
			ing_token_unref(t);
			t = NULL;
			err = PF_ENOMEM;
			goto done;
		}
	}
	*ret_tok = t;
done:
	PQclear(res);
	return err;
}

pf_err
ing_auth_lookup(ing_auth *a, const char *key, size_t len, ing_token **ret_tok)
{
	char hash[KEY_HASH_LEN + 1];
	ing_token *t = NULL;
	int64_t now = pf_mono_ms();
	pf_err err;

	if (len < 4 || len > PF_API_KEY_MAX || memcmp(key, "sk-", 3) != 0)
		return PF_EDENIED;
	err = pf_sha256_hex(key, len, hash);
	if (err != PF_OK)
		return err;
	if (!cache_get(a, hash, now, &t)) {
		err = query(a, hash, &t);
		if (err != PF_OK)
			return err;
		if (a->cfg->auth_cache_ttl_ms > 0) {
			uint32_t ttl = a->cfg->auth_cache_ttl_ms;
			if (t == NULL && ttl > NEGATIVE_TTL_MS)
				ttl = NEGATIVE_TTL_MS;
			cache_put(a, hash, now + ttl, t);
		}
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
