/*
 * migrate.h -- applying the embedded schema migrations.
 */
#ifndef PF_ACCOUNTANT_MIGRATE_H
#define PF_ACCOUNTANT_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "schema/migrations.h"

struct pg_conn;

/* The pg_advisory_lock key that serializes migrations ("pf-migr"). */
#define ACCT_MIGRATE_LOCK_KEY "31637542686779250"

/*
 * acct_migrate_run applies, on conn, every migration of migs[0..n) not yet
 * recorded in schema_migrations (created when absent), in version order,
 * each in its own transaction together with its schema_migrations row.
 * The whole run holds a session advisory lock, so concurrent runs
 * serialize and the later one finds the work done.  Writes one line
 * "applied NNN_name" per applied migration to out; *ret_applied gets
 * their number.  Errors: PF_EDB (and the others of acct_db_exec) with a
 * message naming the failing migration in errbuf; migrations applied
 * before the failure stay applied.
 */
PF_NODISCARD pf_err acct_migrate_run(struct pg_conn *conn,
    const acct_migration *migs, size_t n, FILE *out, size_t *ret_applied,
    char *errbuf, size_t errlen);

#endif /* PF_ACCOUNTANT_MIGRATE_H */
