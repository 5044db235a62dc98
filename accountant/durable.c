/*
 * durable.c -- the synchronously committed marker (see durable.h).
 */
#include "accountant/durable.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "accountant/db.h"
#include "common/clock.h"
#include "common/pgcancel.h"

/* An upsert, not an UPDATE: a statement that changed no row would write
 * no WAL, and its commit would flush nothing. */
static const char flush_sql[]
    = "INSERT INTO accountant_durable (id, log_seq, log_off, at_ms) "
      "VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET "
      "log_seq = EXCLUDED.log_seq, log_off = EXCLUDED.log_off, "
      "at_ms = EXCLUDED.at_ms";

/* Every value but off flushes the local WAL at commit; off (the server's
 * or the role's default) is overridden for this connection only. */
static const char sync_sql[]
    = "SELECT set_config('synchronous_commit', 'on', false) "
      "WHERE current_setting('synchronous_commit') = 'off'";

struct acct_durable {
	char *url;
	PGconn *conn;
	int busy;
	pf_reclog_pos pos;  /* of the flush in flight */
	pthread_mutex_t mu; /* guards cancel */
	PGcancel *cancel;   /* conn's: acct_durable_cancel */
};

pf_err
acct_durable_new(const char *url, acct_durable **ret)
{
	acct_durable *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return PF_ENOMEM;
	d->url = strdup(url);
	if (d->url == NULL) {
		free(d);
		return PF_ENOMEM;
	}
	pthread_mutex_init(&d->mu, NULL);
	*ret = d;
	return PF_OK;
}

static void
drop(acct_durable *d)
{
	pf_pgcancel_set(&d->mu, &d->cancel, NULL);
	acct_db_close(d->conn);
	d->conn = NULL;
	d->busy = 0;
}

void
acct_durable_free(acct_durable *d)
{
	if (d == NULL)
		return;
	drop(d);
	pthread_mutex_destroy(&d->mu);
	free(d->url);
	free(d);
}

pf_err
acct_durable_connect(acct_durable *d, char *errbuf, size_t errlen)
{
	pf_err err;

	drop(d);
	err = acct_db_connect(d->url, &d->conn, errbuf, errlen);
	if (err == PF_OK) {
		pf_pgcancel_set(&d->mu, &d->cancel, d->conn);
		err = acct_db_exec(
		    d->conn, sync_sql, 0, NULL, NULL, errbuf, errlen);
	}
	if (err != PF_OK)
		drop(d);
	return err;
}

void
acct_durable_cancel(acct_durable *d)
{
	pthread_mutex_lock(&d->mu);
	pf_pgcancel_send(d->cancel);
	pthread_mutex_unlock(&d->mu);
}

int
acct_durable_busy(const acct_durable *d)
{
	return d->busy;
}

int
acct_durable_ready(acct_durable *d)
{
	if (!d->busy)
		return 0;
	/* a failed read (connection lost) makes PQisBusy false */
	(void)PQconsumeInput(d->conn);
	return !PQisBusy(d->conn);
}

pf_err
acct_durable_begin(
    acct_durable *d, pf_reclog_pos pos, char *errbuf, size_t errlen)
{
	char seq[24], off[24], at[24];
	const char *params[3] = { seq, off, at };

	if (d->busy)
		return PF_EAGAIN;
	if (d->conn == NULL) {
		snprintf(errbuf, errlen, "durability marker: not connected");
		return PF_EDB;
	}
	snprintf(seq, sizeof(seq), "%" PRIu64, pos.seq);
	snprintf(off, sizeof(off), "%" PRIu64, pos.off);
	snprintf(at, sizeof(at), "%" PRId64, pf_clock_ms());
	if (!PQsendQueryParams(
	        d->conn, flush_sql, 3, NULL, params, NULL, NULL, 0)) {
		snprintf(errbuf, errlen, "durability marker: %s",
		    PQerrorMessage(d->conn));
		drop(d);
		return PF_EDB;
	}
	d->pos = pos;
	d->busy = 1;
	return PF_OK;
}

pf_err
acct_durable_end(
    acct_durable *d, pf_reclog_pos *ret_pos, char *errbuf, size_t errlen)
{
	pf_err err = PF_OK;
	PGresult *res;

	if (!d->busy)
		return PF_ENOTFOUND;
	d->busy = 0;
	/* one result, then NULL; a lost connection gives a result with
	 * PGRES_FATAL_ERROR (or none at all) */
	res = PQgetResult(d->conn);
	if (res == NULL) {
		snprintf(errbuf, errlen, "durability marker: no result");
		err = PF_EDB;
	} else {
		err = acct_db_check(d->conn, res, errbuf, errlen);
		if (err == PF_OK)
			PQclear(res);
	}
	while ((res = PQgetResult(d->conn)) != NULL)
		PQclear(res);
	if (err != PF_OK || PQstatus(d->conn) != CONNECTION_OK) {
		if (err == PF_OK) {
			snprintf(errbuf, errlen, "durability marker: %s",
			    PQerrorMessage(d->conn));
		}
		drop(d);
		return PF_EDB;
	}
	*ret_pos = d->pos;
	return PF_OK;
}
