/*
 * ledger.h -- applying usage and payment events to PostgreSQL, exactly
 * once, many per transaction.
 *
 * One call applies a batch in ONE transaction: all usage events in one
 * prepared statement (binary array parameters unnested; every balance,
 * the hourly quota_data row and the consume log row are derived from the
 * rows the ledger insert RETURNS, so only new events move money), then
 * each payment event in its own statement together with its order's
 * pending -> success flip, and last the channel totals (channels rows
 * locked in id order, shared with other lanes: see lanes.h) with the
 * COMMIT.  BEGIN and the statement go in one libpq pipeline, the channel
 * totals and the COMMIT in another (two round trips without payments).
 * A deadlock or serialization failure redoes the transaction (up to 5
 * times).  The ledger insert runs without ON CONFLICT while batches are
 * new (a repeat fails it on the unique event_id; the transaction is rolled
 * back and redone with ON CONFLICT (event_id) DO NOTHING, which stays on
 * for the next batches).
 * The actor, `planktonfly replay` and the benchmark all use this one path.
 *
 * Event ids in the ledger (usage_events.event_id): 32 lowercase hex digits
 * of the 16-byte id for usage, the payment's event_id ("topup:<trade_no>",
 * "redeem:<code>") for payments.
 */
#ifndef PF_ACCOUNTANT_LEDGER_H
#define PF_ACCOUNTANT_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"
#include "common/msg.h"

struct pg_conn;

typedef struct acct_ledger acct_ledger;

/* What happened to one event. */
typedef enum acct_outcome {
	ACCT_PENDING = 0,  /* not applied yet */
	ACCT_APPLIED = 1,  /* new: inserted and charged/credited now */
	ACCT_PRESENT = 2,  /* already in the ledger: nothing changed */
	ACCT_REJECTED = 3, /* refused for good (reason says why) */
} acct_outcome;

#define ACCT_REASON_MAX 160

/* One event of a batch.  msg (kind usage or payment) is borrowed. */
typedef struct acct_event {
	const pf_msg *msg;
	int64_t ts_ms; /* when it was logged; payments' timestamp */
	char id[PF_EVENT_ID_MAX + 1]; /* ledger event id (acct_event_init) */
	acct_outcome outcome;
	char reason[ACCT_REASON_MAX]; /* for ACCT_REJECTED */
} acct_event;

/* A user's committed balance after a batch (from the database). */
typedef struct acct_user_balance {
	int64_t user_id;
	int64_t quota;
	int64_t used_quota;
} acct_user_balance;

/* A token's committed remaining quota after a batch. */
typedef struct acct_token_balance {
	int64_t token_id;
	int64_t remain_quota;
	int unlimited;
	int64_t user_id;
} acct_token_balance;

/* Flags of acct_ledger_apply. */
#define ACCT_APPLY_DRY_RUN 1 /* roll the transaction back */

/*
 * acct_event_init fills ev for msg (borrowed; must outlive ev): the ledger
 * id, ts_ms, outcome PENDING.  A message that cannot be an event (wrong
 * kind, values out of range, invalid UTF-8, unknown payment id scheme)
 * gets outcome ACCT_REJECTED with a reason right away.
 */
void acct_event_init(acct_event *ev, const pf_msg *msg, int64_t ts_ms);

/*
 * acct_ledger_new binds a ledger to conn (borrowed; used only by the
 * ledger's caller thread) and prepares its statements.  *ret_ledger (free
 * with acct_ledger_free) is written only on success.  Errors: PF_EDB with
 * the server message in errbuf, PF_ENOMEM.
 */
PF_NODISCARD pf_err acct_ledger_new(struct pg_conn *conn,
    acct_ledger **ret_ledger, char *errbuf, size_t errlen);

/* acct_ledger_free frees the ledger (not the connection); NULL is a
 * no-op. */
void acct_ledger_free(acct_ledger *l);

/*
 * acct_ledger_apply applies the PENDING events of ev[0..n) (n at most
 * PF_ACCT_BATCH_MAX) in one transaction and sets each one's outcome.  An
 * id repeated inside the batch counts once (the repeats are PRESENT).
 * When the batch transaction fails on bad data, the events are retried
 * one transaction each so that one poisonous event is REJECTED (with the
 * server's message) and the others still apply.  After success,
 * acct_ledger_users / acct_ledger_tokens list the balances the batch
 * changed.  Errors: PF_EDB when the database cannot be used (connection
 * lost...): outcomes stay PENDING, nothing was committed; message in
 * errbuf.  PF_EINVAL for n too large.
 */
PF_NODISCARD pf_err acct_ledger_apply(acct_ledger *l, acct_event *ev, size_t n,
    int flags, char *errbuf, size_t errlen);

/* acct_ledger_users returns the user balances changed by the last
 * successful apply (owned by l, valid until the next apply). */
const acct_user_balance *acct_ledger_users(const acct_ledger *l, size_t *ret_n);

/* acct_ledger_tokens: the same for token balances. */
const acct_token_balance *acct_ledger_tokens(
    const acct_ledger *l, size_t *ret_n);

/* acct_end_reason_name maps a pf_end_reason to the ledger/log word
 * ("done", "client_gone", ...); NULL when unknown. */
const char *acct_end_reason_name(int32_t reason);

/* acct_id_hash is FNV-1a (64 bits) of the NUL-terminated string s, for
 * the open-addressing tables that find repeated event ids in a batch. */
uint64_t acct_id_hash(const char *s);

/* acct_id_slots_reset makes *slots (capacity *n_slots, kept between
 * batches) an empty table for n ids: a power of two of at least 2n
 * entries (16 at least), every one -1.  Errors: PF_ENOMEM (the table is
 * left as it was). */
PF_NODISCARD pf_err acct_id_slots_reset(
    int32_t **slots, size_t *n_slots, size_t n);

#endif /* PF_ACCOUNTANT_LEDGER_H */
