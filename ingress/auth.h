/*
 * auth.h -- sk- token authentication with an in-memory cache.
 *
 * A key is looked up by the SHA-256 hex of the full key string.  Results
 * (also "no such key") are cached for cfg->auth_cache_ttl_ms (negative ones
 * shorter); a cache hit makes no database call.
 */
#ifndef PF_INGRESS_AUTH_H
#define PF_INGRESS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

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
 * ing_auth_new creates an authenticator that connects to
 * cfg->database_url lazily (and reconnects after failures).  cfg must
 * outlive it.  Errors: PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_auth_new(const pf_config *cfg, ing_auth **ret);

/*
 * ing_auth_lookup authenticates key[0..len) (the full "sk-..." string).
 * On success *ret_tok is a new reference (ing_token_unref).  Errors:
 * PF_EDENIED (unknown, disabled or expired key, disabled user, malformed
 * key), PF_EDB (database unreachable; nothing cached), PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_auth_lookup(
    ing_auth *a, const char *key, size_t len, ing_token **ret_tok);

/* ing_token_unref drops a reference; NULL is a no-op. */
void ing_token_unref(ing_token *t);

/* ing_auth_free frees a and its cache; NULL is a no-op. */
void ing_auth_free(ing_auth *a);

#endif /* PF_INGRESS_AUTH_H */
