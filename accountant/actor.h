/*
 * actor.h -- the accountant role: one thread owns every balance change.
 *
 * Sockets (URLs from the configuration):
 *   rep0 LISTENS on cfg->accountant_url (PF_MSG_MAX receive cap,
 *     PF_ACCT_CONTEXTS requests in flight).  Requests and replies:
 *       usage / payment  -> ack.  ids[0] = the ledger event id (32 hex of
 *                           the usage id; the payment's event_id) once the
 *                           event is durably applied or was already
 *                           present.  A refused event (bad values, unknown
 *                           user, order mismatch) is answered with 2 ids:
 *                           [event id, "rejected: <reason>"]; do not
 *                           resend it.  An ack with 0 ids means "not
 *                           applied now" (database or log unavailable):
 *                           resend later.
 *       usage.batch      -> ack with one entry per usage, in order: the
 *                           event id (applied or present), "rejected:
 *                           <reason>", or "" (resend that one later).
 *       grant.request    -> grant.reply (status PF_OK and granted 0..amount,
 *                           expires_ms; or a pf_err status, granted 0).
 *                           amount 0 renews the token's pool.
 *       grant.release    -> ack with 0 ids.
 *     Senders use req0 with NNG_OPT_REQ_RESENDTIME = NNG_DURATION_INFINITE
 *     (req0's 60 s resend would otherwise repeat requests; harmless for
 *     events, which are idempotent, but grant requests would be granted
 *     twice) and their own timeout.
 *   pub0 LISTENS on cfg->accountant_pub_url and publishes, after each
 *     committed batch, one `balance` message per changed balance (the
 *     user's quota; each charged token's remain_quota).  Best effort.
 *
 * Per batch (group commit): events are appended to the event log in
 * cfg->accountant_log_dir (reclog prefix "events"), synced with one
 * fdatasync, applied over ACCT_LANES_DEFAULT connections (accountant/lanes.h:
 * partitioned by user, one transaction per lane), then each event acked
 * once its lane committed.  The next batch is logged while the lanes apply
 * the previous one.  On start the log after the last checkpoint is
 * replayed through the same path.
 */
#ifndef PF_ACCOUNTANT_ACTOR_H
#define PF_ACCOUNTANT_ACTOR_H

#include <stddef.h>

#include "common/config.h"
#include "common/err.h"

typedef struct acct_accountant acct_accountant;

/* The reclog prefix of the accountant's event log segments. */
#define ACCT_LOG_PREFIX "events"

/*
 * acct_accountant_start connects to PostgreSQL (cfg->database_url),
 * replays the tail of the event log, opens the log for writing, listens
 * on both sockets and starts the actor thread.  cfg is borrowed and must
 * outlive the accountant.  *ret (stop with acct_accountant_stop) is
 * written only on success.  Errors (message in errbuf): PF_EDB, PF_EIO,
 * PF_EPROTO (the log is corrupt in the middle: errbuf names the file and
 * offset), PF_EEXIST (another accountant owns the log directory), PF_ENET,
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err acct_accountant_start(
    const pf_config *cfg, acct_accountant **ret, char *errbuf, size_t errlen);

/*
 * acct_accountant_stop stops taking requests, applies and acks what was
 * already received, closes the sockets, the log and the connection, and
 * frees a.  Blocks, but not on a lock someone else holds in the database:
 * after PF_ACCT_STOP_GRACE_MS it cancels the statements still running and
 * answers what is left "resend later" (replayed from the log at the next
 * start).  Never call it from an NNG callback.  NULL is a no-op.
 */
void acct_accountant_stop(acct_accountant *a);

#endif /* PF_ACCOUNTANT_ACTOR_H */
