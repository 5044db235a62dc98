/*
 * grants.c -- cached balances and per-token grant pools (see grants.h).
 *
 * Two open-addressing tables keyed by id, never shrunk entry by entry:
 * when a table reaches PF_ACCT_CACHE_MAX it is rebuilt keeping only the
 * entries that hold credit (the others reload on demand).
 */
#include "accountant/grants.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/limits.h"

struct user {
	int64_t id; /* 0 = empty slot */
	int64_t quota;
	int64_t outstanding;
	int64_t loaded_ms;
};

struct token {
	int64_t id; /* 0 = empty slot */
	int64_t user_id;
	int64_t remain;
	int unlimited;
	int64_t pool;
	int64_t expires_ms;
	int64_t loaded_ms;
};

struct table {
	void *slots;
	size_t size; /* power of two */
	size_t used;
	size_t elem;
};

struct acct_grants {
	struct table users, tokens;
};

static int
table_init(struct table *t, size_t elem)
{
	t->size = 1024;
	t->used = 0;
	t->elem = elem;
	t->slots = calloc(t->size, elem);
	return t->slots != NULL ? 0 : -1;
}

static int64_t *
slot_key(const struct table *t, size_t i)
{
	return (int64_t *)((char *)t->slots + i * t->elem);
}

static void *
table_find(const struct table *t, int64_t id)
{
	size_t mask = t->size - 1;

	for (size_t i = ((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 20 & mask;;
	     i = (i + 1) & mask) {
		int64_t *k = slot_key(t, i);

		if (*k == id)
			return k;
		if (*k == 0)
			return NULL;
	}
}

/* Rehashes into a table of size, keeping entries keep() accepts. */
static int
table_rebuild(struct table *t, size_t size, int (*keep)(const void *))
{
	struct table n = { NULL, size, 0, t->elem };

	n.slots = calloc(size, t->elem);
	if (n.slots == NULL)
		return -1;
	for (size_t i = 0; i < t->size; i++) {
		int64_t *k = slot_key(t, i);
		size_t mask = size - 1, j;

		if (*k == 0 || (keep != NULL && !keep(k)))
			continue;
		j = ((uint64_t)*k * 0x9e3779b97f4a7c15ull) >> 20 & mask;
		while (*slot_key(&n, j) != 0)
			j = (j + 1) & mask;
		memcpy(slot_key(&n, j), k, t->elem);
		n.used++;
	}
	free(t->slots);
	*t = n;
	return 0;
}

static int
user_keep(const void *p)
{
	return ((const struct user *)p)->outstanding > 0;
}

static int
token_keep(const void *p)
{
	return ((const struct token *)p)->pool > 0;
}

/* Finds or adds id; NULL when memory is short. */
static void *
table_get(struct table *t, int64_t id, int (*keep)(const void *))
{
	void *found = table_find(t, id);
	size_t mask, i;
	int64_t *k;

	if (found != NULL)
		return found;
	if (t->used >= PF_ACCT_CACHE_MAX) {
		if (table_rebuild(t, t->size, keep) != 0)
			return NULL;
	}
	if ((t->used + 1) * 2 > t->size) {
		if (table_rebuild(t, t->size * 2, NULL) != 0)
			return NULL;
	}
	mask = t->size - 1;
	i = ((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 20 & mask;
	while (*slot_key(t, i) != 0)
		i = (i + 1) & mask;
	k = slot_key(t, i);
	memset(k, 0, t->elem);
	*k = id;
	t->used++;
	return k;
}

pf_err
acct_grants_new(acct_grants **ret)
{
	acct_grants *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return PF_ENOMEM;
	if (table_init(&g->users, sizeof(struct user)) != 0
	    || table_init(&g->tokens, sizeof(struct token)) != 0) {
		acct_grants_free(g);
		return PF_ENOMEM;
	}
	*ret = g;
	return PF_OK;
}

void
acct_grants_free(acct_grants *g)
{
	if (g == NULL)
		return;
	free(g->users.slots);
	free(g->tokens.slots);
	free(g);
}

/* Runs a one-row lookup; PF_ENOTFOUND when no row. */
static pf_err
load_row(PGconn *conn, const char *sql, int64_t id, PGresult **ret)
{
	char idbuf[32];
	const char *param = idbuf;
	PGresult *res;

	if (conn == NULL)
		return PF_EDB;
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	res = PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return PF_EDB;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return PF_ENOTFOUND;
	}
	*ret = res;
	return PF_OK;
}

static pf_err
load_user(
    acct_grants *g, PGconn *conn, int64_t id, int64_t now_ms, struct user **ret)
{
	struct user *u = table_find(&g->users, id);
	PGresult *res;
	pf_err err;

	if (u != NULL && now_ms - u->loaded_ms < PF_ACCT_RELOAD_MS) {
		*ret = u;
		return PF_OK;
	}
	err = load_row(conn, "SELECT quota FROM users WHERE id = $1", id, &res);
	if (err == PF_EDB && u != NULL) {
		*ret
		    = u; /* database down: the cached (written-through) value */
		return PF_OK;
	}
	if (err != PF_OK)
		return err;
	if (u == NULL)
		u = table_get(&g->users, id, user_keep);
	if (u == NULL) {
		PQclear(res);
		return PF_ENOMEM;
	}
	u->quota = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	u->loaded_ms = now_ms;
	PQclear(res);
	*ret = u;
	return PF_OK;
}

static pf_err
load_token(acct_grants *g, PGconn *conn, int64_t id, int64_t now_ms,
    struct token **ret)
{
	struct token *t = table_find(&g->tokens, id);
	PGresult *res;
	pf_err err;

	if (t != NULL && now_ms - t->loaded_ms < PF_ACCT_RELOAD_MS) {
		*ret = t;
		return PF_OK;
	}
	err = load_row(conn,
	    "SELECT user_id, remain_quota, unlimited_quota FROM tokens "
	    "WHERE id = $1",
	    id, &res);
	if (err == PF_EDB && t != NULL) {
		*ret = t;
		return PF_OK;
	}
	if (err != PF_OK)
		return err;
	if (t == NULL)
		t = table_get(&g->tokens, id, token_keep);
	if (t == NULL) {
		PQclear(res);
		return PF_ENOMEM;
	}
	t->user_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	t->remain = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	t->unlimited = PQgetvalue(res, 0, 2)[0] == 't';
	t->loaded_ms = now_ms;
	PQclear(res);
	*ret = t;
	return PF_OK;
}

static void
drain_pool(acct_grants *g, struct token *t, int64_t amount)
{
	struct user *u = table_find(&g->users, t->user_id);

	if (amount > t->pool)
		amount = t->pool;
	if (amount <= 0)
		return;
	t->pool -= amount;
	if (u != NULL) {
		u->outstanding -= amount;
		if (u->outstanding < 0)
			u->outstanding = 0;
	}
}

pf_err
acct_grants_request(acct_grants *g, PGconn *conn, int64_t user_id,
    int64_t token_id, int64_t amount, int64_t now_ms, int64_t *ret_granted,
    int64_t *ret_expires_ms)
{
	struct user *u;
	struct token *t;
	int64_t avail, give;
	pf_err err;

	if (user_id <= 0 || token_id <= 0 || amount < 0)
		return PF_EINVAL;
	/* the token first: loading the user may rebuild the user table */
	err = load_token(g, conn, token_id, now_ms, &t);
	if (err != PF_OK)
		return err;
	if (t->user_id != user_id)
		return PF_EDENIED;
	err = load_user(g, conn, user_id, now_ms, &u);
	if (err != PF_OK)
		return err;
	if (t->pool > 0 && t->expires_ms <= now_ms)
		drain_pool(g, t, t->pool);
	avail = u->quota - u->outstanding;
	if (!t->unlimited && t->remain - t->pool < avail)
		avail = t->remain - t->pool;
	give = amount < avail ? amount : avail;
	if (give < 0)
		give = 0;
	t->pool += give;
	u->outstanding += give;
	t->expires_ms = now_ms + PF_ACCT_GRANT_TTL_MS;
	*ret_granted = give;
	*ret_expires_ms = t->expires_ms;
	return PF_OK;
}

void
acct_grants_release(
    acct_grants *g, int64_t user_id, int64_t token_id, int64_t amount)
{
	struct token *t = table_find(&g->tokens, token_id);

	if (t != NULL && t->user_id == user_id && amount > 0)
		drain_pool(g, t, amount);
}

void
acct_grants_settle(
    acct_grants *g, int64_t user_id, int64_t token_id, int64_t cost)
{
	acct_grants_release(g, user_id, token_id, cost);
}

void
acct_grants_set_user(
    acct_grants *g, int64_t user_id, int64_t quota, int64_t now_ms)
{
	struct user *u = table_find(&g->users, user_id);

	if (u != NULL) {
		u->quota = quota;
		u->loaded_ms = now_ms;
	}
}

void
acct_grants_set_token(acct_grants *g, int64_t token_id, int64_t remain,
    int unlimited, int64_t now_ms)
{
	struct token *t = table_find(&g->tokens, token_id);

	if (t != NULL) {
		t->remain = remain;
		t->unlimited = unlimited;
		t->loaded_ms = now_ms;
	}
}

void
acct_grants_sweep(acct_grants *g, int64_t now_ms)
{
	for (size_t i = 0; i < g->tokens.size; i++) {
		struct token *t = (struct token *)slot_key(&g->tokens, i);

		if (t->id != 0 && t->pool > 0 && t->expires_ms <= now_ms)
			drain_pool(g, t, t->pool);
	}
}

int64_t
acct_grants_outstanding(const acct_grants *g, int64_t user_id)
{
	const struct user *u = table_find(&g->users, user_id);

	return u != NULL ? u->outstanding : 0;
}
