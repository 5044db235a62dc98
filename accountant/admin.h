/*
 * admin.h -- internals shared by the `planktonfly admin` subcommands
 * (admin.c: dispatch, users, prices; admin_token.c; admin_channel.c).
 *
 * Each subcommand is acct_admin_NAME(ctx, argc, argv) with argv after the
 * subcommand name, returning the exit code: 0 success, 1 runtime error,
 * 2 usage error.  Creating commands print only the new value on stdout.
 */
#ifndef PF_ACCOUNTANT_ADMIN_H
#define PF_ACCOUNTANT_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "accountant/cli.h"
#include "common/config.h"

struct pg_conn;
struct pg_result;

#define ACCT_ADMIN_ERRBUF 1024
#define ACCT_ADMIN_GO_ON (-1) /* no reason to stop: go on */

/* Column widths from schema/001_init.sql. */
#define ACCT_USERNAME_MAX 64
#define ACCT_GROUP_MAX 64
#define ACCT_TOKEN_NAME_MAX 64
#define ACCT_CHANNEL_NAME_MAX 128

typedef struct acct_admin_ctx {
	const char *sub; /* subcommand name, for messages */
	pf_config cfg;   /* loaded by acct_admin_prepare */
} acct_admin_ctx;

/* acct_admin_usage_error prints "planktonfly admin SUB: <message>" and a
 * pointer to --help on stderr; returns ACCT_EXIT_USAGE. */
int acct_admin_usage_error(const acct_admin_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* acct_admin_fail prints "planktonfly admin SUB: msg" on stderr; returns
 * ACCT_EXIT_FAIL. */
int acct_admin_fail(const acct_admin_ctx *ctx, const char *msg);

/* One option of an admin command, bound to the caller's variable *dst.
 * Every command takes --config FILE and --help besides its table. */
typedef struct acct_admin_opt {
	const char *name; /* without the leading "--" */
	int has_arg;      /* 1: takes a value, 0: a flag */
	int required; /* 1: absent is the usage error "--NAME is required" */
	const char **dst; /* set to the value ("" for a flag) or NULL */
} acct_admin_opt;

/* The most options an admin command's table may hold. */
#define ACCT_ADMIN_OPTS_MAX 16

/*
 * acct_admin_prepare parses argv against opts[0..n) plus --config, prints
 * usage plus the --config/--help lines and the configuration keys on
 * --help, loads the configuration into ctx, stores each option's value
 * in its *dst and reports the first required option (in table order)
 * that is absent.  Returns ACCT_ADMIN_GO_ON, or the exit code when the
 * command should stop (help printed, usage or configuration error
 * reported); the *dst are set only on ACCT_ADMIN_GO_ON.
 */
int acct_admin_prepare(acct_admin_ctx *ctx, const char *usage, int argc,
    char **argv, const acct_admin_opt *opts, size_t n);

/* acct_admin_exec connects to ctx's database, runs sql with nparams
 * params (see acct_db_exec: *ret_res, when ret_res is not NULL, gets the
 * result) and closes the connection.  Errors: those of acct_db_connect
 * and acct_db_exec, with a message in errbuf; nothing is reported. */
PF_NODISCARD pf_err acct_admin_exec(const acct_admin_ctx *ctx, const char *sql,
    int nparams, const char *const *params, struct pg_result **ret_res,
    char *errbuf, size_t errlen);

/* acct_admin_fmt_i64 writes v in decimal into buf (len >= 21) and
 * returns buf. */
const char *acct_admin_fmt_i64(char *buf, size_t len, int64_t v);

/* acct_admin_print_rows prints ncols columns of every row of res to
 * stdout, tab-separated, control characters shown as spaces. */
void acct_admin_print_rows(const struct pg_result *res, int ncols);

/* acct_admin_list runs a list command without options of its own: parses
 * --config/--help (usage is the help text), runs sql and prints header
 * (the column names, tab-separated, ending in a newline) and then ncols
 * columns of every row.  Returns the command's exit code. */
int acct_admin_list(acct_admin_ctx *ctx, const char *usage, int argc,
    char **argv, const char *sql, const char *header, int ncols);

int acct_admin_user_create(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_user_list(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_token_create(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_token_list(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_channel_add(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_channel_list(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_channel_enable(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_channel_disable(acct_admin_ctx *ctx, int argc, char **argv);
int acct_admin_price_set(acct_admin_ctx *ctx, int argc, char **argv);

#endif /* PF_ACCOUNTANT_ADMIN_H */
