/*
 * db.c -- PostgreSQL connections of the ingress.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <time.h>

#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/pgcancel.h"
#include "ingress/db.h"

pf_err
ing_db_connect(const char *url, PGconn **ret)
{
	const char *keys[]
	    = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { url, "5", "planktonfly-ingress", NULL };
	PGconn *c;

	if (url == NULL || url[0] == '\0')
		return PF_EDB;
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL)
		return PF_EDB;
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return PF_EDB;
	}
	*ret = c;
	return PF_OK;
}

pf_err
ing_db_ensure(const char *url, PGconn **conn)
{
	if (*conn != NULL && PQstatus(*conn) == CONNECTION_OK)
		return PF_OK;
	ing_db_close(*conn);
	*conn = NULL;
	return ing_db_connect(url, conn);
}

void
ing_db_close(PGconn *conn)
{
	if (conn != NULL)
		PQfinish(conn);
}

void
ing_db_guard_init(ing_db_guard *g)
{
	pthread_mutex_init(&g->mu, NULL);
	g->cancel = NULL;
}

void
ing_db_guard_fini(ing_db_guard *g)
{
	PQfreeCancel(g->cancel);
	g->cancel = NULL;
	pthread_mutex_destroy(&g->mu);
}

void
ing_db_guard_set(ing_db_guard *g, PGconn *conn)
{
	/* a fresh handle each time: cheap (no I/O), and never one of a
	 * closed connection whose address a new one reuses */
	pf_pgcancel_set(&g->mu, &g->cancel, conn);
}

void
ing_db_join_cancelling(pthread_t t, ing_db_guard *g, const char *what)
{
	int64_t grace_end = pf_mono_ms() + PF_DB_STOP_GRACE_MS;
	int logged = 0;

	for (;;) {
		struct timespec ts;
		int64_t now = pf_mono_ms();

		pf_deadline_ts(CLOCK_REALTIME,
		    now < grace_end ? (uint64_t)(grace_end - now) : 100u, &ts);
		if (pthread_timedjoin_np(t, NULL, &ts) != ETIMEDOUT)
			return;
		if (!logged) {
			pf_warn("PF-DB-STOP-CANCEL",
			    "thread=%s "
			    "msg=\"a statement outlasted the stop grace; "
			    "cancelling it\"",
			    what);
			logged = 1;
		}
		pthread_mutex_lock(&g->mu);
		pf_pgcancel_send(g->cancel);
		pthread_mutex_unlock(&g->mu);
	}
}
