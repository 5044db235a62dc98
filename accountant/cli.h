/*
 * cli.h -- option parsing and configuration loading shared by the
 * `migrate`, `admin` and `accountant` subcommands.
 *
 * Options are long only: "--name VALUE", "--name=VALUE" or, for flags,
 * "--name".  "--help" and "-h" are always recognised.  Exit codes follow
 * the CLI contract: 0 success, 1 runtime error, 2 usage error.
 */
#ifndef PF_ACCOUNTANT_CLI_H
#define PF_ACCOUNTANT_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

#define ACCT_EXIT_OK 0
#define ACCT_EXIT_FAIL 1
#define ACCT_EXIT_USAGE 2

/* One accepted option.  value points into argv (flags get ""); it stays
 * NULL when the option is absent. */
typedef struct acct_opt {
	const char *name; /* without the leading "--" */
	int has_arg;      /* 1: takes a value, 0: a flag */
	const char *value;
} acct_opt;

/*
 * acct_opts_parse parses argv[0..argc) against opts[0..n), filling each
 * opt's value.  Sets *ret_help to 1 when --help or -h was given (parsing
 * stops there).  Errors: PF_EINVAL for an unknown, repeated or valueless
 * option or a positional argument, with a message in errbuf.
 */
PF_NODISCARD pf_err acct_opts_parse(int argc, char **argv, acct_opt *opts,
    size_t n, int *ret_help, char *errbuf, size_t errlen);

/* acct_opt_value returns the value of the option called name in opts, or
 * NULL when it was not given (or is not in opts). */
const char *acct_opt_value(const acct_opt *opts, size_t n, const char *name);

/*
 * acct_cli_prepare starts a subcommand called name (e.g. "migrate",
 * "admin user-create"): parses argv against opts[0..n), which must hold
 * "config", and loads the configuration into *ret_cfg.  On --help prints
 * usage, the --config/--help lines (ACCT_CLI_HELP_OPTS) and the
 * configuration keys on stdout.  Errors are reported on stderr as
 * "planktonfly NAME: ..." (option errors add a pointer to --help).
 * Returns -1 to go on, or the exit code: ACCT_EXIT_OK (help printed),
 * ACCT_EXIT_USAGE (option or configuration error).
 */
int acct_cli_prepare(const char *name, const char *usage, int argc, char **argv,
    acct_opt *opts, size_t n, pf_config *ret_cfg);

/* The --config/--help lines acct_cli_prepare prints after usage. */
#define ACCT_CLI_HELP_OPTS                                                     \
	"  --config FILE  read settings from FILE (environment wins)\n"        \
	"  --help         print this help\n"                                   \
	"\n"

/*
 * acct_load_config loads the configuration (defaults, optional file at
 * path, then the environment) and checks that PF_DATABASE_URL is set.
 * Errors: PF_ECONFIG / PF_EIO with a message in errbuf; *ret_cfg written
 * only on success.
 */
PF_NODISCARD pf_err acct_load_config(
    const char *path, pf_config *ret_cfg, char *errbuf, size_t errlen);

/*
 * acct_parse_int parses all of s as a base-10 integer within [min, max]
 * (no spaces, no empty string).  Errors: PF_EINVAL (not a number),
 * PF_EOVERFLOW (out of range); *ret written only on success.
 */
PF_NODISCARD pf_err acct_parse_int(
    const char *s, int64_t min, int64_t max, int64_t *ret);

#endif /* PF_ACCOUNTANT_CLI_H */
