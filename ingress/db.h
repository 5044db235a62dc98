/*
 * db.h -- the ingress's PostgreSQL connections (read-only use).
 */
#ifndef PF_INGRESS_DB_H
#define PF_INGRESS_DB_H

#include "common/err.h"

struct pg_conn;

/*
 * ing_db_connect opens a connection to url (conninfo or postgres:// URL)
 * with a connect timeout.  On success *ret owns it (close with
 * ing_db_close).  Errors: PF_EDB (message never includes the URL).
 */
PF_NODISCARD pf_err ing_db_connect(const char *url, struct pg_conn **ret);

/*
 * ing_db_ensure makes *conn usable: connects when *conn is NULL and
 * reconnects when it is broken.  Errors: PF_EDB (*conn is then NULL).
 */
PF_NODISCARD pf_err ing_db_ensure(const char *url, struct pg_conn **conn);

/* ing_db_close closes conn; NULL is a no-op. */
void ing_db_close(struct pg_conn *conn);

#endif /* PF_INGRESS_DB_H */
