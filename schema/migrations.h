/*
 * migrations.h -- the SQL migrations embedded into the binary.
 *
 * The table is generated at build time by schema/embed.py from
 * schema/NNN_name.sql, sorted by version, versions 1..count without gaps.
 */
#ifndef PF_SCHEMA_MIGRATIONS_H
#define PF_SCHEMA_MIGRATIONS_H

#include <stddef.h>

typedef struct acct_migration {
	int version;      /* NNN of the file name */
	const char *name; /* the part after "NNN_", without ".sql" */
	const char *sql;  /* the whole file, NUL-terminated */
} acct_migration;

/* acct_migrations holds acct_migrations_count entries in version order;
 * static storage, never freed. */
extern const acct_migration acct_migrations[];
extern const size_t acct_migrations_count;

#endif /* PF_SCHEMA_MIGRATIONS_H */
