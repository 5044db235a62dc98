/*
 * cmd.c -- the `migrate`, `accountant` and `replay` subcommands (`admin`
 * lives in admin.c).
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accountant/actor.h"
#include "accountant/cli.h"
#include "accountant/cmd.h"
#include "accountant/db.h"
#include "accountant/ledger.h"
#include "accountant/migrate.h"
#include "accountant/replay.h"
#include "common/cli.h"
#include "common/log.h"

#define ERRBUF_MAX 1024

static const char migrate_usage[]
    = "usage: planktonfly migrate [--config FILE]\n"
      "\n"
      "Applies the schema migrations built into this binary that the\n"
      "database (PF_DATABASE_URL) lacks, in order, each in its own\n"
      "transaction, under a PostgreSQL advisory lock; records them in\n"
      "schema_migrations.  Prints \"applied NNN_name\" per migration or\n"
      "\"up to date\".  Safe to run concurrently and repeatedly.\n"
      "\n"
      "options:\n";

/* begin starts a subcommand that takes only --config and --help (argv[0]
 * is its name); see acct_cli_prepare. */
static int
begin(
    const char *name, const char *usage, int argc, char **argv, pf_config *cfg)
{
	acct_opt opts[] = { { "config", 1, NULL } };

	return acct_cli_prepare(name, usage, argc - 1, argv + 1, opts, 1, cfg);
}

int
acct_cmd_migrate(int argc, char **argv)
{
	char errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	size_t applied = 0;
	pf_config cfg;
	pf_err err;
	int rc;

	rc = begin("migrate", migrate_usage, argc, argv, &cfg);
	if (rc >= 0)
		return rc;
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

static const char accountant_usage[]
    = "usage: planktonfly accountant [--config FILE]\n"
      "\n"
      "Runs the billing accountant: the only writer of balances.  Takes\n"
      "usage, payment and grant requests on PF_ACCOUNTANT_URL (rep0),\n"
      "publishes balance changes on PF_ACCOUNTANT_PUB_URL (pub0), logs\n"
      "every event to PF_ACCOUNTANT_LOG_DIR before applying it, and on\n"
      "start replays the log after its last checkpoint.  SIGTERM or\n"
      "SIGINT: apply and acknowledge what was received, exit 0.\n"
      "\n"
      "options:\n";

int
acct_cmd_accountant(int argc, char **argv)
{
	char errbuf[ERRBUF_MAX];
	acct_accountant *a = NULL;
	sigset_t set;
	pf_config cfg;
	int sig = 0, rc;
	pf_err err;

	rc = begin("accountant", accountant_usage, argc, argv, &cfg);
	if (rc >= 0)
		return rc;
	pf_log_set_level(cfg.log_level);
	/* Blocked before any thread starts, so only sigwait sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pf_cli_tune_process();
	err = acct_accountant_start(&cfg, &a, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		pf_error("PF-ACCT-START", "err=%s msg=\"%s\"", pf_strerror(err),
		    errbuf);
		return ACCT_EXIT_FAIL;
	}
	sig = pf_cli_wait_signal(&set);
	pf_info("PF-ACCT-STOP", "signal=%d", sig);
	acct_accountant_stop(a);
	return ACCT_EXIT_OK;
}

static void
replay_usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly replay [--config FILE] [--dry-run]\n"
	    "                          [--since TIME] [--until TIME] FILE...\n"
	    "\n"
	    "Feeds record log segments (the accountant's event log, ingress\n"
	    "spool files) through the accountant's apply path, in order.\n"
	    "Events already in the ledger change nothing, so replaying twice\n"
	    "is safe.  Prints records read, applied, already present,\n"
	    "rejected (one line each, with the reason) and per-user totals.\n"
	    "Do not run it on the segment a running accountant is writing.\n"
	    "A torn tail is reported and left alone; corruption in the middle\n"
	    "of a file stops the run (exit 1) naming the file and offset.\n"
	    "\n"
	    "options:\n"
	    "  --config FILE  read settings from FILE (environment wins)\n"
	    "  --dry-run      apply in transactions that are rolled back\n"
	    "  --since TIME   only records logged at or after TIME\n"
	    "  --until TIME   only records logged before TIME\n"
	    "                 TIME: unix seconds, or UTC "
	    "YYYY-MM-DD[THH:MM[:SS]]\n"
	    "  --help         print this help\n"
	    "\n");
	pf_config_usage(f);
}

/* Parses TIME into unix ms. */
static pf_err
parse_time(const char *s, int64_t *ret_ms)
{
	static const char *const fmts[]
	    = { "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
	int64_t secs;

	if (acct_parse_int(s, 0, INT64_MAX / 1000, &secs) == PF_OK) {
		*ret_ms = secs * 1000;
		return PF_OK;
	}
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		struct tm tm;
		const char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(s, fmts[i], &tm);
		if (end != NULL && *end == '\0') {
			*ret_ms = (int64_t)timegm(&tm) * 1000;
			return PF_OK;
		}
	}
	return PF_EINVAL;
}

struct replay_args {
	const char *config;
	int dry_run;
	int64_t since_ms, until_ms;
	char **files;
	int n_files;
};

static int
parse_replay_args(int argc, char **argv, struct replay_args *ra)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		const char *eq = strchr(arg, '=');
		size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);

		if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
			if (strcmp(arg, "--") == 0)
				i++;
			for (; i < argc; i++)
				ra->files[ra->n_files++] = argv[i];
			break;
		}
		if (strcmp(arg, "--help") == 0)
			return 1;
		if (strcmp(arg, "--dry-run") == 0) {
			ra->dry_run = 1;
			continue;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (val == NULL) {
			fprintf(stderr,
			    "planktonfly replay: %s needs a value\n", arg);
			return -1;
		}
		if (nlen == 8 && strncmp(arg, "--config", 8) == 0) {
			ra->config = val;
		} else if (nlen == 7
		    && (strncmp(arg, "--since", 7) == 0
		        || strncmp(arg, "--until", 7) == 0)) {
			int64_t *dst
			    = arg[2] == 's' ? &ra->since_ms : &ra->until_ms;

			if (parse_time(val, dst) != PF_OK) {
				fprintf(stderr,
				    "planktonfly replay: bad TIME '%.64s'\n",
				    val);
				return -1;
			}
		} else {
			fprintf(stderr,
			    "planktonfly replay: unknown option '%.*s'\n",
			    (int)nlen, arg);
			return -1;
		}
	}
	return 0;
}

/* Reads one FILE; reports a torn tail.  Returns PF_OK or a stopping
 * error (message printed). */
static pf_err
replay_one(acct_replay *r, const char *path)
{
	char errbuf[ERRBUF_MAX];
	const char *base = strrchr(path, '/');
	pf_reclog_scan scan;
	size_t plen;
	uint64_t seq = 0;
	pf_err err;

	base = base ? base + 1 : path;
	if (!pf_reclog_parse_name(base, &plen, &seq))
		seq = 0;
	err = acct_replay_file(r, path, seq, 0, &scan, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly replay: %s\n", errbuf);
		return err;
	}
	if (scan.valid_end < scan.file_size)
		printf("warning: %s: torn tail at offset %" PRIu64 " (%" PRIu64
		       " bytes ignored)\n",
		    path, scan.valid_end, scan.file_size - scan.valid_end);
	return PF_OK;
}

int
acct_cmd_replay(int argc, char **argv)
{
	struct replay_args ra;
	char errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	acct_ledger *ledger = NULL;
	acct_replay *r = NULL;
	acct_replay_opts ro;
	acct_replay_counts c;
	pf_config cfg;
	int rc, stop = 0;
	pf_err err;

	memset(&ra, 0, sizeof(ra));
	ra.files = calloc((size_t)argc + 1, sizeof(char *));
	if (ra.files == NULL)
		return ACCT_EXIT_FAIL;
	rc = parse_replay_args(argc, argv, &ra);
	if (rc == 1) {
		replay_usage(stdout);
		free(ra.files);
		return ACCT_EXIT_OK;
	}
	if (rc < 0 || ra.n_files == 0) {
		if (rc == 0)
			fprintf(stderr, "planktonfly replay: no FILE given\n");
		fprintf(stderr, "(see 'planktonfly replay --help')\n");
		free(ra.files);
		return ACCT_EXIT_USAGE;
	}
	err = acct_load_config(ra.config, &cfg, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly replay: %s\n", errbuf);
		free(ra.files);
		return ACCT_EXIT_USAGE;
	}
	err = acct_db_connect(cfg.database_url, &conn, errbuf, sizeof(errbuf));
	if (err == PF_OK)
		err = acct_ledger_new(conn, &ledger, errbuf, sizeof(errbuf));
	ro.dry_run = ra.dry_run;
	ro.since_ms = ra.since_ms;
	ro.until_ms = ra.until_ms;
	ro.rejects = stdout;
	if (err == PF_OK)
		err = acct_replay_new(ledger, &ro, &r);
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly replay: %s\n", errbuf);
		acct_ledger_free(ledger);
		acct_db_close(conn);
		free(ra.files);
		return ACCT_EXIT_FAIL;
	}
	for (int i = 0; i < ra.n_files && !stop; i++) {
		err = replay_one(r, ra.files[i]);
		if (err != PF_OK)
			stop = 1;
	}
	/* what was read before a stop is still applied and reported */
	if (acct_replay_flush(r, errbuf, sizeof(errbuf)) != PF_OK) {
		fprintf(stderr, "planktonfly replay: %s\n", errbuf);
		stop = 1;
	}
	acct_replay_get_counts(r, &c);
	if (ra.dry_run)
		printf("dry run: every transaction was rolled back\n");
	printf("records read: %" PRIu64 "\n", c.read);
	printf("outside the time window: %" PRIu64 "\n", c.skipped);
	printf("applied: %" PRIu64 "\n", c.applied);
	printf("already present: %" PRIu64 "\n", c.present);
	printf("rejected: %" PRIu64 "\n", c.rejected);
	acct_replay_print_users(r, stdout);
	acct_replay_free(r);
	acct_ledger_free(ledger);
	acct_db_close(conn);
	free(ra.files);
	return stop ? ACCT_EXIT_FAIL : ACCT_EXIT_OK;
}
