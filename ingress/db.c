/*
 * db.c -- PostgreSQL connections of the ingress.
 */
#include <libpq-fe.h>

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
