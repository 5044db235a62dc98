/*
 * auth.h -- sk- token authentication with an in-memory cache.
 *
 * A key is looked up by the SHA-256 hex of the full key string.  Results
 * (also "no such key") are cached for cfg->auth_cache_ttl_ms (negative ones
 * shorter); a cache hit makes no database call.  A miss is looked up by
 * the authenticator's own thread on its own connection (misses for one key
 * share a query; up to PF_AUTH_BATCH_MAX keys go in one query), never on
 * the caller's thread: the caller parks its connection (ing_auth_wait)
 * until the answer, PF_AUTH_WAIT_MS, or ing_auth_close_waits resumes it.
 */
#ifndef PF_INGRESS_AUTH_H
#define PF_INGRESS_AUTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "ingress/park.h"

/* An authenticated token: immutable, reference-counted. */
typedef struct ing_token {
	int64_t token_id;
	int64_t user_id;
	int64_t expired_at; /* unix s, -1 = never */
	char group[72];     /* token group, else the user's */
	char *models;       /* allow-list, "" = all */
	char *allow_ips;    /* CIDR allow-list, "" = any */
	int _refs;
} ing_token;

typedef struct ing_auth ing_auth;

/*
 * A request waiting for its key's lookup without holding a thread: the
 * HTTP side readies one (ing_auth_wait_init) when a lookup without a wait
 * answered PF_EPENDING, calls ing_auth_lookup with it, parks its
 * connection when that returns PF_EPENDING (ing_auth_wait_park) and
 * calls ing_auth_lookup again, with the same key and w, once resumed.  Whoever ends the wait (the lookup's answer, its
 * deadline, ing_auth_close_waits) wakes the park (park.h), which
 * resumes the connection only if it is parked.  The _-prefixed fields
 * are guarded by the authenticator.
 */
typedef struct ing_auth_wait {
	ing_park park; /* the connection's suspension */
	/* private to auth.c */
	int _queued;          /* waits or has an outcome (caller's view) */
	int _listed;          /* on a lookup's wait list */
	pf_err _err;          /* the outcome, once ended */
	ing_token *_tok;      /* the outcome's token (a reference) */
	int64_t _deadline_ms; /* monotonic */
	void *_lk;            /* the lookup waited on, while listed */
	struct ing_auth_wait *_prev, *_next;
} ing_auth_wait;

/* ing_auth_wait_init readies w for conn (no allocation). */
void ing_auth_wait_init(
    ing_auth_wait *w, void *conn, void (*resume)(void *conn));

/*
 * ing_auth_wait_park parks conn through suspend(conn) (ing_park_suspend),
 * unless the wait already ended.  Returns 1 when parked (resume will be
 * called), 0 when the caller must call ing_auth_lookup again now.
 */
int ing_auth_wait_park(ing_auth_wait *w, void (*suspend)(void *conn));

/* ing_auth_wait_fini takes w off any wait list of a (a may be NULL),
 * drops an outcome not taken and destroys its lock.  Call it before w's
 * memory goes, also when the wait was never used. */
void ing_auth_wait_fini(ing_auth *a, ing_auth_wait *w);

/*
 * ing_auth_new creates an authenticator and starts its lookup thread,
 * which connects to cfg->database_url lazily (and reconnects after
 * failures).  cfg must outlive it.  Errors: PF_ENOMEM, PF_EIO (no
 * thread).
 */
PF_NODISCARD pf_err ing_auth_new(const pf_config *cfg, ing_auth **ret);

/*
 * ing_auth_lookup authenticates key[0..len) (the full "sk-..." string).
 * A cache hit answers at once.  A miss queues a lookup and returns
 * PF_EPENDING with w on its wait list: park (ing_auth_wait_park) and call
 * again with the same key and w when resumed.  w may be NULL (a caller
 * that allocates its wait only when it must wait): then a miss that
 * would wait queues nothing and returns PF_EPENDING, and the caller
 * calls again with a wait; an answer that needs no wait (a hit, or an
 * error below) comes as with w.  Never blocks.  On success
 * *ret_tok is a new reference (ing_token_unref).  Errors: PF_EDENIED
 * (unknown, disabled or expired key, disabled user, malformed key),
 * PF_EDB (database unreachable or too slow: no answer within
 * PF_AUTH_WAIT_MS, or PF_AUTH_PENDING_MAX lookups already pending;
 * nothing cached), PF_ECLOSED (ing_auth_close_waits was called),
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_auth_lookup(ing_auth *a, const char *key, size_t len,
    ing_auth_wait *w, ing_token **ret_tok);

/* ing_auth_close_waits ends every wait with PF_ECLOSED and refuses new
 * lookups: call it before the HTTP daemon stops, so no connection stays
 * parked. */
void ing_auth_close_waits(ing_auth *a);

/* ing_token_unref drops a reference; NULL is a no-op. */
void ing_token_unref(ing_token *t);

/* ing_auth_free ends the waits (as ing_auth_close_waits), stops the
 * lookup thread and frees a and its cache; NULL is a no-op. */
void ing_auth_free(ing_auth *a);

#endif /* PF_INGRESS_AUTH_H */
