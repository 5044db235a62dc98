/*
 * durable.h -- knowing when asynchronously committed batches are durable.
 *
 * The lanes commit with synchronous_commit = off: a commit returns before
 * its WAL reaches the disk, so a PostgreSQL crash may lose the last
 * batches.  No event is lost with them: each was appended to the
 * accountant's event log and synced before it was applied, and the log
 * after the checkpoint is replayed (idempotently) at start and after a
 * suspected crash.  This module tells the actor how far the checkpoint
 * may move.
 *
 * acct_durable_begin sends, on a connection of its own, an UPDATE of the
 * accountant_durable row committed synchronously; acct_durable_end waits
 * for it.  The WAL is one sequence, so that commit being flushed means
 * every commit that completed before it was sent is flushed too -- unless
 * the server crashed in between, losing some of them.  A crash ends every
 * connection, this one included, so the flush succeeding on a connection
 * opened before those commits proves there was none.  The connection is
 * therefore only ever opened by acct_durable_connect, which the caller
 * calls before a replay that makes everything logged so far durable by
 * itself; a failure drops the connection, and the caller must recover
 * (connect, replay) before the checkpoint moves again.
 *
 * Owned by one thread; not thread-safe, acct_durable_cancel excepted.
 */
#ifndef PF_ACCOUNTANT_DURABLE_H
#define PF_ACCOUNTANT_DURABLE_H

#include <stddef.h>

#include "common/err.h"
#include "common/reclog.h"

typedef struct acct_durable acct_durable;

/* acct_durable_new: not connected yet; url is copied.  Errors:
 * PF_ENOMEM. */
PF_NODISCARD pf_err acct_durable_new(const char *url, acct_durable **ret);

/* acct_durable_free closes the connection (a flush in flight is
 * abandoned); NULL is a no-op. */
void acct_durable_free(acct_durable *d);

/*
 * acct_durable_connect (re)opens the connection, dropping the old one and
 * any flush in flight.  Errors: PF_EDB (message in errbuf), PF_ENOMEM.
 */
PF_NODISCARD pf_err acct_durable_connect(
    acct_durable *d, char *errbuf, size_t errlen);

/*
 * acct_durable_begin starts the synchronous commit of the marker tagged
 * pos (the event log's end after the last applied batch).  Errors: PF_EDB
 * (not connected, or the send failed: the connection is dropped),
 * PF_EAGAIN (a flush is already in flight).
 */
PF_NODISCARD pf_err acct_durable_begin(
    acct_durable *d, pf_reclog_pos pos, char *errbuf, size_t errlen);

/*
 * acct_durable_cancel asks the server to cancel the statement the
 * connection runs (a commit waiting for a synchronous standby, a lock),
 * from any thread; the flush then fails (acct_durable_end: PF_EDB).  For
 * a stop that must not wait for the database without bound.
 */
void acct_durable_cancel(acct_durable *d);

/* acct_durable_busy: a flush is in flight. */
int acct_durable_busy(const acct_durable *d);

/* acct_durable_ready: the flush in flight has its answer (or failed), so
 * acct_durable_end will not wait.  Reads what the server sent without
 * blocking. */
int acct_durable_ready(acct_durable *d);

/*
 * acct_durable_end waits for the flush in flight.  PF_OK: *ret_pos (the
 * pos it was begun with) is durable.  Errors: PF_ENOTFOUND (none in
 * flight), PF_EDB (it failed; the connection is dropped: recover).
 */
PF_NODISCARD pf_err acct_durable_end(
    acct_durable *d, pf_reclog_pos *ret_pos, char *errbuf, size_t errlen);

#endif /* PF_ACCOUNTANT_DURABLE_H */
