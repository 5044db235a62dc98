/*
 * db.h -- the accountant folder's thin layer over libpq: connect, run one
 * parameterized statement, map errors to pf_err once.
 *
 * Every statement goes through PQexecParams with text parameters; no SQL
 * is ever built from user input.  Messages written to errbuf come from the
 * server or libpq and never contain the connection password.
 */
#ifndef PF_ACCOUNTANT_DB_H
#define PF_ACCOUNTANT_DB_H

#include <stddef.h>

#include "common/err.h"

struct pg_conn;
struct pg_result;

/*
 * acct_db_connect opens a connection to url (a postgres:// URL or a libpq
 * conninfo string), silencing server notices.  *ret_conn (free with
 * acct_db_close) is written only on success.  Errors: PF_EDB with libpq's
 * message in errbuf; PF_ENOMEM.
 */
PF_NODISCARD pf_err acct_db_connect(
    const char *url, struct pg_conn **ret_conn, char *errbuf, size_t errlen);

/* acct_db_close closes conn; NULL is a no-op. */
void acct_db_close(struct pg_conn *conn);

/*
 * acct_db_exec runs sql with nparams text parameters (NULL entries are SQL
 * NULL).  On success *ret_res, when ret_res is not NULL, receives the
 * result (the caller frees it with acct_db_result_free); with ret_res NULL
 * the result is discarded.  sql may hold several statements only when
 * nparams is 0.  Errors (message in errbuf): PF_EEXIST (unique violation),
 * PF_ENOTFOUND (foreign key violation), PF_EINVAL (check constraint or
 * bad data, e.g. a value too long for its column), PF_EDB (anything else,
 * including a lost connection); *ret_res is untouched.
 */
PF_NODISCARD pf_err acct_db_exec(struct pg_conn *conn, const char *sql,
    int nparams, const char *const *params, struct pg_result **ret_res,
    char *errbuf, size_t errlen);

/*
 * acct_db_check maps a result of conn (NULL: libpq's message) to pf_err as
 * acct_db_exec does.  PF_OK leaves res to the caller; on an error res is
 * freed and the message is in errbuf.
 */
PF_NODISCARD pf_err acct_db_check(
    struct pg_conn *conn, struct pg_result *res, char *errbuf, size_t errlen);

/* acct_db_result_free frees a result from acct_db_exec; NULL is a no-op. */
void acct_db_result_free(struct pg_result *res);

/* acct_db_rows returns the number of rows in res. */
int acct_db_rows(const struct pg_result *res);

/* acct_db_value returns row, col of res as text ("" for NULL), owned by
 * res.  row and col must be in range. */
const char *acct_db_value(const struct pg_result *res, int row, int col);

/*
 * acct_db_begin, acct_db_commit: BEGIN / COMMIT.  Errors as acct_db_exec.
 * acct_db_rollback: ROLLBACK, best effort (used on error paths; a failure
 * leaves the connection to be closed by the caller).
 */
PF_NODISCARD pf_err acct_db_begin(
    struct pg_conn *conn, char *errbuf, size_t errlen);
PF_NODISCARD pf_err acct_db_commit(
    struct pg_conn *conn, char *errbuf, size_t errlen);
void acct_db_rollback(struct pg_conn *conn);

#endif /* PF_ACCOUNTANT_DB_H */
