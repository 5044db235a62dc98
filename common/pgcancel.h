/*
 * pgcancel.h -- cancelling a running PostgreSQL statement from another
 * thread (a stop that must not wait for a lock without bound).
 *
 * The thread that owns a connection makes its cancel handle (PQgetCancel,
 * no I/O) right after connecting, before any statement (a PREPARE waits
 * for locks too), and keeps it in a slot under a mutex of the caller's;
 * the stopping thread sends the cancel through the slot under the same
 * mutex, never touching the connection.  Header-only: for the roles that
 * link libpq.
 */
#ifndef PF_COMMON_PGCANCEL_H
#define PF_COMMON_PGCANCEL_H

#include <libpq-fe.h>
#include <pthread.h>

/* pf_pgcancel_set puts conn's cancel handle (conn NULL: none) into *slot
 * under mu and frees the handle it replaces. */
static inline void
pf_pgcancel_set(pthread_mutex_t *mu, PGcancel **slot, PGconn *conn)
{
	PGcancel *c = conn != NULL ? PQgetCancel(conn) : NULL;
	PGcancel *old;

	pthread_mutex_lock(mu);
	old = *slot;
	*slot = c;
	pthread_mutex_unlock(mu);
	PQfreeCancel(old);
}

/* pf_pgcancel_send asks the server to cancel what c's connection runs;
 * call it under the slot's mutex.  A failed request changes nothing: the
 * caller retries. */
static inline void
pf_pgcancel_send(PGcancel *c)
{
	char errbuf[256];

	if (c != NULL)
		(void)PQcancel(c, errbuf, sizeof(errbuf));
}

#endif /* PF_COMMON_PGCANCEL_H */
