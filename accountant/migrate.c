/*
 * migrate.c -- apply embedded migrations under an advisory lock.
 */
#include <stdio.h>
#include <string.h>

#include "accountant/db.h"
#include "accountant/migrate.h"

#define MSG_MAX 512

static const char sql_lock[] = "SELECT pg_advisory_lock($1::bigint)";
static const char sql_unlock[] = "SELECT pg_advisory_unlock($1::bigint)";
static const char sql_create[]
    = "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version INT PRIMARY KEY,"
      " name TEXT NOT NULL,"
      " applied_at BIGINT NOT NULL"
      " DEFAULT EXTRACT(EPOCH FROM now())::BIGINT)";
static const char sql_applied[]
    = "SELECT version FROM schema_migrations ORDER BY version";
static const char sql_record[]
    = "INSERT INTO schema_migrations (version, name, applied_at)"
      " VALUES ($1::int, $2, EXTRACT(EPOCH FROM now())::BIGINT)";

static int
is_applied(const struct pg_result *res, int version)
{
	char want[16];

	snprintf(want, sizeof(want), "%d", version);
	for (int i = 0; i < acct_db_rows(res); i++) {
		if (strcmp(acct_db_value(res, i, 0), want) == 0)
			return 1;
	}
	return 0;
}

/* Applies one migration and its record in one transaction. */
static pf_err
apply_one(
    struct pg_conn *conn, const acct_migration *m, char *errbuf, size_t errlen)
{
	char version[16];
	const char *params[2];
	pf_err err;

	snprintf(version, sizeof(version), "%d", m->version);
	params[0] = version;
	params[1] = m->name;
	err = acct_db_begin(conn, errbuf, errlen);
	if (err != PF_OK)
		return err;
	err = acct_db_exec(conn, m->sql, 0, NULL, NULL, errbuf, errlen);
	if (err == PF_OK)
		err = acct_db_exec(
		    conn, sql_record, 2, params, NULL, errbuf, errlen);
	if (err == PF_OK)
		err = acct_db_commit(conn, errbuf, errlen);
	if (err != PF_OK)
		acct_db_rollback(conn);
	return err;
}

pf_err
acct_migrate_run(struct pg_conn *conn, const acct_migration *migs, size_t n,
    FILE *out, size_t *ret_applied, char *errbuf, size_t errlen)
{
	const char *lock_params[1] = { ACCT_MIGRATE_LOCK_KEY };
	struct pg_result *done = NULL;
	char msg[MSG_MAX];
	size_t applied = 0;
	pf_err err;

	err = acct_db_exec(
	    conn, sql_lock, 1, lock_params, NULL, msg, sizeof(msg));
	if (err != PF_OK) {
		snprintf(errbuf, errlen, "taking the migration lock: %s", msg);
		return err;
	}
	err = acct_db_exec(conn, sql_create, 0, NULL, NULL, msg, sizeof(msg));
	if (err == PF_OK)
		err = acct_db_exec(
		    conn, sql_applied, 0, NULL, &done, msg, sizeof(msg));
	if (err != PF_OK) {
		snprintf(errbuf, errlen, "reading schema_migrations: %s", msg);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const acct_migration *m = &migs[i];

		if (is_applied(done, m->version))
			continue;
		err = apply_one(conn, m, msg, sizeof(msg));
		if (err != PF_OK) {
			snprintf(errbuf, errlen, "migration %03d_%s failed: %s",
			    m->version, m->name, msg);
			goto out;
		}
		applied++;
		fprintf(out, "applied %03d_%s\n", m->version, m->name);
		fflush(out);
	}
	*ret_applied = applied;
out:
	acct_db_result_free(done);
	/* Best effort: closing the session releases the lock anyway. */
	if (acct_db_exec(
	        conn, sql_unlock, 1, lock_params, NULL, msg, sizeof(msg))
	    != PF_OK)
		msg[0] = '\0';
	return err;
}
