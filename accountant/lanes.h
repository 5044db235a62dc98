/*
 * lanes.h -- a batch of events applied over several PostgreSQL
 * connections at once (partitioned apply).
 *
 * Each lane owns one connection and one acct_ledger.  A batch is split by
 * user: every event (usage or payment) of a user goes to the same lane
 * (the user id hashed), so each user's events apply in order, in one
 * transaction per lane, and the balances a lane reports are exact.  The
 * lanes' transactions run concurrently (lane 0 on the caller's thread,
 * the others on one thread each) and commit independently.  Rows that
 * several lanes touch (channels.used_quota) are locked last, in id order
 * (see ledger.c): no deadlock between lanes, and a lane waits for another
 * only during that one's commit.  A deadlock or serialization failure
 * anyway redoes the lane's transaction (acct_ledger_apply), which changed
 * nothing; the ledger's unique event_id makes a redo safe in any case.
 *
 * The caller (the accountant actor, pf-acct-bench) still appends and
 * syncs the event log before calling, and acknowledges an event only when
 * its outcome is no longer PENDING after the call.
 */
#ifndef PF_ACCOUNTANT_LANES_H
#define PF_ACCOUNTANT_LANES_H

#include <stddef.h>

#include "accountant/ledger.h"
#include "common/err.h"

typedef struct acct_lanes acct_lanes;

/* Lanes the accountant applies its batches over (two cores here: the
 * measured gain ends at about two concurrent appliers). */
#define ACCT_LANES_DEFAULT 2u
#define ACCT_LANES_MAX 16u

/*
 * acct_lanes_new connects n_lanes (1..ACCT_LANES_MAX) connections to url
 * (copied) and starts a thread for each lane.  With async_commit the
 * lanes commit with synchronous_commit = off: the caller then learns
 * durability from acct_durable (durable.h) and must replay its event log
 * after a suspected server crash.  *ret (free
 * with acct_lanes_free) is written only on success.  Errors: PF_EDB (the
 * message in errbuf), PF_EINVAL (n_lanes), PF_ENOMEM.
 */
PF_NODISCARD pf_err acct_lanes_new(const char *url, size_t n_lanes,
    int async_commit, acct_lanes **ret, char *errbuf, size_t errlen);

/* acct_lanes_free waits for a batch in flight, stops the threads and
 * closes the connections; NULL is a no-op. */
void acct_lanes_free(acct_lanes *ls);

/*
 * acct_lanes_apply applies the PENDING events of ev[0..n) (n at most
 * PF_ACCT_BATCH_MAX) as acct_ledger_apply does, each lane its share in
 * one transaction.  An id repeated inside the batch counts once (the
 * later copies take the first one's outcome: PRESENT, or REJECTED with
 * its reason).  A lane whose connection was lost reconnects at the next
 * call (at most one attempt per 2 s).  Errors: the first failing lane's
 * (PF_EDB, PF_ENOMEM; message in errbuf): that lane's events stay
 * PENDING, the other lanes' events have their outcomes (committed).
 * PF_EINVAL for n too large.
 */
PF_NODISCARD pf_err acct_lanes_apply(acct_lanes *ls, acct_event *ev, size_t n,
    int flags, char *errbuf, size_t errlen);

/*
 * acct_lanes_submit starts applying ev[0..n) as acct_lanes_apply does and
 * returns at once; ev (and the messages it points to) must stay untouched
 * until acct_lanes_wait returns.  One batch at a time.  Errors: PF_EINVAL
 * (n too large, or a batch already in flight), PF_ENOMEM; then nothing was
 * started.
 */
PF_NODISCARD pf_err acct_lanes_submit(
    acct_lanes *ls, acct_event *ev, size_t n, int flags);

/*
 * acct_lanes_wait waits for the batch in flight and writes its outcomes
 * into the submitted ev; errors as acct_lanes_apply.  PF_OK at once when
 * nothing is in flight.
 */
PF_NODISCARD pf_err acct_lanes_wait(
    acct_lanes *ls, char *errbuf, size_t errlen);

/* acct_lanes_retry_now lets lanes whose connection failed reconnect at
 * the next batch (the database answered again).  Not while a batch is in
 * flight. */
void acct_lanes_retry_now(acct_lanes *ls);

/*
 * acct_lanes_cancel asks the server to cancel the statement each lane of
 * the batch in flight is running (PQcancel), from any thread: a statement
 * waiting for a lock ends at once.  A cancelled lane fails with PF_EDB
 * (its events stay PENDING); a lane between two statements goes on, so
 * call again until the batch is over.  For a stop that must not wait for
 * the database without bound.
 */
void acct_lanes_cancel(acct_lanes *ls);

/* acct_lanes_busy: whether a batch is in flight (submitted, not waited
 * for). */
int acct_lanes_busy(const acct_lanes *ls);

/* acct_lanes_users returns the user balances changed by the last apply,
 * lanes that failed excepted (owned by ls, valid until the next apply). */
const acct_user_balance *acct_lanes_users(const acct_lanes *ls, size_t *ret_n);

/* acct_lanes_tokens: the same for token balances. */
const acct_token_balance *acct_lanes_tokens(
    const acct_lanes *ls, size_t *ret_n);

#endif /* PF_ACCOUNTANT_LANES_H */
