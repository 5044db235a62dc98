/*
 * cmd.c -- the `migrate` and `accountant` subcommands (`admin` lives in
 * admin.c).
 */
#include <stdio.h>
#include <string.h>

#include "accountant/cli.h"
#include "accountant/cmd.h"
#include "accountant/db.h"
#include "accountant/migrate.h"

#define ERRBUF_MAX 1024

static void
migrate_usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly migrate [--config FILE]\n"
	    "\n"
	    "Applies the schema migrations built into this binary that the\n"
	    "database (PF_DATABASE_URL) lacks, in order, each in its own\n"
	    "transaction, under a PostgreSQL advisory lock; records them in\n"
	    "schema_migrations.  Prints \"applied NNN_name\" per migration or\n"
	    "\"up to date\".  Safe to run concurrently and repeatedly.\n"
	    "\n"
	    "options:\n"
	    "  --config FILE  read settings from FILE (environment wins)\n"
	    "  --help         print this help\n"
	    "\n");
	pf_config_usage(f);
}

int
acct_cmd_migrate(int argc, char **argv)
{
	acct_opt opts[] = { { "config", 1, NULL } };
	char errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	size_t applied = 0;
	pf_config cfg;
	int help = 0;
	pf_err err;

	err = acct_opts_parse(
	    argc - 1, argv + 1, opts, 1, &help, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr,
		    "planktonfly migrate: %s\n(see 'planktonfly migrate "
		    "--help')\n",
		    errbuf);
		return ACCT_EXIT_USAGE;
	}
	if (help) {
		migrate_usage(stdout);
		return ACCT_EXIT_OK;
	}
	err = acct_load_config(opts[0].value, &cfg, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly migrate: %s\n", errbuf);
		return ACCT_EXIT_USAGE;
	}
	err = acct_db_connect(cfg.database_url, &conn, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly migrate: %s\n", errbuf);
		return ACCT_EXIT_FAIL;
	}
	err = acct_migrate_run(conn, acct_migrations, acct_migrations_count,
	    stdout, &applied, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly migrate: %s\n", errbuf);
		return ACCT_EXIT_FAIL;
	}
	if (applied == 0)
		printf("up to date\n");
	return ACCT_EXIT_OK;
}

int
acct_cmd_accountant(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0
		    || strcmp(argv[i], "-h") == 0) {
			printf("usage: planktonfly accountant [--config FILE]\n"
			       "\nNot built yet: the accountant role arrives "
			       "with issue 4.\n\n");
			pf_config_usage(stdout);
			return ACCT_EXIT_OK;
		}
	}
	fprintf(stderr,
	    "planktonfly accountant: the accountant role arrives with issue "
	    "4\n");
	return ACCT_EXIT_FAIL;
}
