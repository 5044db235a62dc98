/*
 * db.c -- libpq connect, parameterized execution and error mapping.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "accountant/db.h"

static void
quiet_notice_cb(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Copies prefix + msg into errbuf as one line without extra spaces. */
static void
copy_message(char *errbuf, size_t errlen, const char *prefix, const char *msg)
{
	size_t n;

	if (errlen == 0)
		return;
	snprintf(errbuf, errlen, "%s%s", prefix, msg ? msg : "");
	/* One line: libpq ends messages with '\n' and indents hints with
	 * "\n\t". */
	n = 0;
	for (size_t i = 0; errbuf[i] != '\0'; i++) {
		char c = errbuf[i];

		if (c == '\n' || c == '\t' || c == '\r')
			c = ' ';
		if (c == ' ' && (n == 0 || errbuf[n - 1] == ' '))
			continue;
		errbuf[n++] = c;
	}
	while (n > 0 && errbuf[n - 1] == ' ')
		n--;
	errbuf[n] = '\0';
}

pf_err
acct_db_connect(const char *url, PGconn **ret_conn, char *errbuf, size_t errlen)
{
	/* Defaults first: with expand_dbname the URL's own settings, expanded
	 * from the later "dbname" entry, override them. */
	const char *const keys[]
	    = { "connect_timeout", "application_name", "dbname", NULL };
	const char *const vals[] = { "10", "planktonfly", url, NULL };
	PGconn *conn;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		copy_message(errbuf, errlen, "", "out of memory");
		return PF_ENOMEM;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		copy_message(errbuf, errlen,
		    "cannot connect to PostgreSQL: ", PQerrorMessage(conn));
		PQfinish(conn);
		return PF_EDB;
	}
	PQsetNoticeProcessor(conn, quiet_notice_cb, NULL);
	*ret_conn = conn;
	return PF_OK;
}

void
acct_db_close(PGconn *conn)
{
	if (conn != NULL)
		PQfinish(conn);
}

static pf_err
map_sqlstate(const char *state)
{
	if (state == NULL)
		return PF_EDB;
	if (strcmp(state, "23505") == 0)
		return PF_EEXIST;
	if (strcmp(state, "23503") == 0)
		return PF_ENOTFOUND;
	if (strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0)
		return PF_EINVAL;
	if (strncmp(state, "22", 2) == 0) /* data exception class */
		return PF_EINVAL;
	return PF_EDB;
}

pf_err
acct_db_check(PGconn *conn, PGresult *res, char *errbuf, size_t errlen)
{
	ExecStatusType st;
	const char *msg;
	pf_err err;

	if (res == NULL) {
		copy_message(errbuf, errlen, "", PQerrorMessage(conn));
		return PF_EDB;
	}
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return PF_OK;
	err = map_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
	/* The primary message only: DETAIL may echo row values. */
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (msg == NULL)
		msg = PQresultErrorMessage(res);
	copy_message(errbuf, errlen, "", msg);
	PQclear(res);
	return err;
}

pf_err
acct_db_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *params, PGresult **ret_res, char *errbuf, size_t errlen)
{
	PGresult *res;
	pf_err err;

	if (nparams == 0)
		res = PQexec(conn, sql);
	else
		res = PQexecParams(
		    conn, sql, nparams, NULL, params, NULL, NULL, 0);
	err = acct_db_check(conn, res, errbuf, errlen);
	if (err != PF_OK)
		return err;
	if (ret_res != NULL)
		*ret_res = res;
	else
		PQclear(res);
	return PF_OK;
}

void
acct_db_result_free(PGresult *res)
{
	if (res != NULL)
		PQclear(res);
}

int
acct_db_rows(const PGresult *res)
{
	return PQntuples(res);
}

const char *
acct_db_value(const PGresult *res, int row, int col)
{
	return PQgetvalue(res, row, col);
}

pf_err
acct_db_begin(PGconn *conn, char *errbuf, size_t errlen)
{
	return acct_db_exec(conn, "BEGIN", 0, NULL, NULL, errbuf, errlen);
}

pf_err
acct_db_commit(PGconn *conn, char *errbuf, size_t errlen)
{
	return acct_db_exec(conn, "COMMIT", 0, NULL, NULL, errbuf, errlen);
}

void
acct_db_rollback(PGconn *conn)
{
	PGresult *res;

	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}
