/*
 * db.h -- the ingress's PostgreSQL connections (read-only use).
 */
#ifndef PF_INGRESS_DB_H
#define PF_INGRESS_DB_H

#include <pthread.h>

#include "common/err.h"

struct pg_conn;
struct pg_cancel;

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

/*
 * ing_db_guard bounds the stop of a thread that runs blocking statements
 * (a reload behind a table lock would otherwise hold it forever): the
 * thread names its connection after each ing_db_ensure
 * (ing_db_guard_set), and the stopping thread joins it with
 * ing_db_join_cancelling.
 */
typedef struct ing_db_guard {
	pthread_mutex_t mu;
	struct pg_cancel *cancel; /* for the connection in use, or NULL */
} ing_db_guard;

void ing_db_guard_init(ing_db_guard *g);
void ing_db_guard_fini(ing_db_guard *g);

/* ing_db_guard_set makes conn (NULL: none) the connection a stop
 * cancels; call it after every ing_db_ensure. */
void ing_db_guard_set(ing_db_guard *g, struct pg_conn *conn);

/*
 * ing_db_join_cancelling joins thread t, which the caller has told to
 * stop.  From PF_DB_STOP_GRACE_MS on, it cancels the statement running on
 * g's connection every 100 ms until the thread ends (logged once,
 * PF-DB-STOP-CANCEL thread=what).
 */
void ing_db_join_cancelling(pthread_t t, ing_db_guard *g, const char *what);

#endif /* PF_INGRESS_DB_H */
