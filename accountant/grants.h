/*
 * grants.h -- credit control inside the accountant actor (RFC 4006 style:
 * reserve, use, report, release).
 *
 * The actor keeps, in memory, each user's committed balance (users.quota,
 * loaded from PostgreSQL on first use, re-read after PF_ACCT_RELOAD_MS,
 * and written through from every committed batch) and, per token, a grant
 * pool: the credit handed out to ingresses for that token and not yet
 * used or released.
 *
 *   available(user)  = quota - sum of the pools of the user's tokens
 *   grant(amount)    = min(amount, available(user),
 *                          remain_quota - pool  (unless unlimited))
 *
 * A pool lapses PF_ACCT_GRANT_TTL_MS after the last grant.request for the
 * token (amount 0 renews without asking for more).  A committed usage
 * event of the token draws its cost from the pool (at most down to 0); a
 * release returns unused credit.  One token's pool is shared by every
 * ingress: each ingress mirrors only its own grants.
 *
 * Owned by the actor thread; not thread-safe.
 */
#ifndef PF_ACCOUNTANT_GRANTS_H
#define PF_ACCOUNTANT_GRANTS_H

#include <stdint.h>

#include "common/err.h"

struct pg_conn;

typedef struct acct_grants acct_grants;

/* acct_grants_new: empty state.  Errors: PF_ENOMEM. */
PF_NODISCARD pf_err acct_grants_new(acct_grants **ret);

/* acct_grants_free; NULL is a no-op. */
void acct_grants_free(acct_grants *g);

/*
 * acct_grants_request grants up to amount (>= 0) for (user, token), loading
 * user and token from conn when not cached or stale, and renews the
 * token's pool; conn NULL (or a failing load) falls back to the cached
 * values when there are any.  *ret_granted / *ret_expires_ms written on
 * PF_OK (granted
 * 0 = no credit available).  Errors: PF_EINVAL (ids or amount out of
 * range), PF_ENOTFOUND (no such user or token), PF_EDENIED (the token is
 * not the user's), PF_EDB (the load failed), PF_ENOMEM.
 */
PF_NODISCARD pf_err acct_grants_request(acct_grants *g, struct pg_conn *conn,
    int64_t user_id, int64_t token_id, int64_t amount, int64_t now_ms,
    int64_t *ret_granted, int64_t *ret_expires_ms);

/* acct_grants_release returns up to amount of the token's pool. */
void acct_grants_release(
    acct_grants *g, int64_t user_id, int64_t token_id, int64_t amount);

/* acct_grants_settle draws cost of a newly committed usage event from the
 * token's pool. */
void acct_grants_settle(
    acct_grants *g, int64_t user_id, int64_t token_id, int64_t cost);

/* acct_grants_set_user / _set_token write through committed balances
 * (ignored when not cached). */
void acct_grants_set_user(
    acct_grants *g, int64_t user_id, int64_t quota, int64_t now_ms);
void acct_grants_set_token(acct_grants *g, int64_t token_id, int64_t remain,
    int unlimited, int64_t now_ms);

/* acct_grants_sweep drops pools that lapsed before now_ms. */
void acct_grants_sweep(acct_grants *g, int64_t now_ms);

/* acct_grants_outstanding returns the user's granted, unsettled credit
 * (0 when unknown). */
int64_t acct_grants_outstanding(const acct_grants *g, int64_t user_id);

#endif /* PF_ACCOUNTANT_GRANTS_H */
