/*
 * admin.c -- `planktonfly admin`: dispatch, shared helpers, users and
 * prices.  Everything is written to PostgreSQL directly with parameterized
 * statements; secrets (passwords, keys) are never printed.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "accountant/admin.h"
#include "accountant/check.h"
#include "accountant/cmd.h"
#include "accountant/db.h"
#include "accountant/password.h"
#include "common/limits.h"
#include "common/money.h"

int
acct_admin_usage_error(const acct_admin_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "planktonfly admin %s: ", ctx->sub);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'planktonfly admin %s --help')\n", ctx->sub);
	return ACCT_EXIT_USAGE;
}

int
acct_admin_fail(const acct_admin_ctx *ctx, const char *msg)
{
	fprintf(stderr, "planktonfly admin %s: %s\n", ctx->sub, msg);
	return ACCT_EXIT_FAIL;
}

int
acct_admin_prepare(acct_admin_ctx *ctx, const char *usage, int argc,
    char **argv, const acct_admin_opt *opts, size_t n)
{
	/* all[0] is --config, all[1 + i] is opts[i]. */
	acct_opt all[1 + ACCT_ADMIN_OPTS_MAX];
	char name[64];
	int rc;

	if (n > ACCT_ADMIN_OPTS_MAX)
		return acct_admin_fail(ctx, "too many options (a bug)");
	all[0] = (acct_opt) { "config", 1, NULL };
	for (size_t i = 0; i < n; i++)
		all[1 + i] = (acct_opt) { opts[i].name, opts[i].has_arg, NULL };
	snprintf(name, sizeof(name), "admin %s", ctx->sub);
	rc = acct_cli_prepare(name, usage, argc, argv, all, 1 + n, &ctx->cfg);
	if (rc >= 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		*opts[i].dst = all[1 + i].value;
	for (size_t i = 0; i < n; i++) {
		if (opts[i].required && all[1 + i].value == NULL)
			return acct_admin_usage_error(
			    ctx, "--%s is required", opts[i].name);
	}
	return ACCT_ADMIN_GO_ON;
}

pf_err
acct_admin_exec(const acct_admin_ctx *ctx, const char *sql, int nparams,
    const char *const *params, struct pg_result **ret_res, char *errbuf,
    size_t errlen)
{
	struct pg_conn *conn = NULL;
	pf_err err;

	err = acct_db_connect(ctx->cfg.database_url, &conn, errbuf, errlen);
	if (err != PF_OK)
		return err;
	err = acct_db_exec(conn, sql, nparams, params, ret_res, errbuf, errlen);
	acct_db_close(conn);
	return err;
}

const char *
acct_admin_fmt_i64(char *buf, size_t len, int64_t v)
{
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

static void
print_cell(const char *s, int last)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
	putchar(last ? '\n' : '\t');
}

void
acct_admin_print_rows(const struct pg_result *res, int ncols)
{
	for (int r = 0; r < acct_db_rows(res); r++) {
		for (int c = 0; c < ncols; c++)
			print_cell(acct_db_value(res, r, c), c == ncols - 1);
	}
}

int
acct_admin_list(acct_admin_ctx *ctx, const char *usage, int argc, char **argv,
    const char *sql, const char *header, int ncols)
{
	char errbuf[ACCT_ADMIN_ERRBUF];
	struct pg_result *res = NULL;
	pf_err err;
	int rc;

	rc = acct_admin_prepare(ctx, usage, argc, argv, NULL, 0);
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	err = acct_admin_exec(ctx, sql, 0, NULL, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK)
		return acct_admin_fail(ctx, errbuf);
	fputs(header, stdout);
	acct_admin_print_rows(res, ncols);
	acct_db_result_free(res);
	return ACCT_EXIT_OK;
}

/* user-create */

static const char user_create_usage[]
    = "usage: planktonfly admin user-create --username NAME [--password PW]\n"
      "           [--quota N] [--group G] [--role user|admin|root]\n"
      "\n"
      "Creates a user and prints its id alone on stdout.\n"
      "\n"
      "  --username NAME  1-64 bytes, no spaces or commas (unique)\n"
      "  --password PW    login password, stored as a PBKDF2-SHA256 hash;\n"
      "                   without it the user cannot log in with a password\n"
      "  --quota N        starting balance in quota units (default 0)\n"
      "  --group G        billing/routing group (default \"default\")\n"
      "  --role ROLE      user (default), admin or root\n";

int
acct_admin_user_create(acct_admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO users (username, display_name, password_hash,"
	      " quota, \"group\", role) VALUES ($1, $1, $2, $3::bigint, $4, $5)"
	      " RETURNING id";
	const char *username, *password, *quota_s, *group, *role;
	const acct_admin_opt opts[] = { { "username", 1, 1, &username },
		{ "password", 1, 0, &password }, { "quota", 1, 0, &quota_s },
		{ "group", 1, 0, &group }, { "role", 1, 0, &role } };
	char hash[ACCT_PASSWORD_HASH_LEN] = "";
	char quota_buf[24], errbuf[ACCT_ADMIN_ERRBUF];
	struct pg_result *res = NULL;
	const char *params[5];
	int64_t quota = 0;
	pf_err err;
	int rc;

	rc = acct_admin_prepare(ctx, user_create_usage, argc, argv, opts,
	    sizeof(opts) / sizeof(opts[0]));
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	if (!acct_check_word(username, ACCT_USERNAME_MAX))
		return acct_admin_usage_error(
		    ctx, "invalid --username '%s'", username);
	if (password != NULL
	    && (password[0] == '\0' || strlen(password) > PF_PASSWORD_MAX))
		return acct_admin_usage_error(
		    ctx, "--password must be 1-%u bytes", PF_PASSWORD_MAX);
	if (quota_s != NULL
	    && acct_parse_int(quota_s, 0, INT64_MAX, &quota) != PF_OK)
		return acct_admin_usage_error(ctx,
		    "--quota must be a non-negative integer, not '%s'",
		    quota_s);
	if (group == NULL)
		group = "default";
	if (!acct_check_word(group, ACCT_GROUP_MAX))
		return acct_admin_usage_error(
		    ctx, "invalid --group '%s'", group);
	if (role == NULL)
		role = "user";
	if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0
	    && strcmp(role, "root") != 0)
		return acct_admin_usage_error(
		    ctx, "--role must be user, admin or root, not '%s'", role);
	if (password != NULL) {
		err = acct_password_hash(
		    password, strlen(password), hash, sizeof(hash));
		if (err != PF_OK)
			return acct_admin_fail(
			    ctx, "hashing the password failed");
	}
	params[0] = username;
	params[1] = hash;
	params[2] = acct_admin_fmt_i64(quota_buf, sizeof(quota_buf), quota);
	params[3] = group;
	params[4] = role;
	err = acct_admin_exec(
	    ctx, sql, 5, params, &res, errbuf, sizeof(errbuf));
	if (err == PF_EEXIST) {
		fprintf(stderr,
		    "planktonfly admin %s: user '%s' already exists\n",
		    ctx->sub, username);
		return ACCT_EXIT_FAIL;
	}
	if (err != PF_OK)
		return acct_admin_fail(ctx, errbuf);
	printf("%s\n", acct_db_value(res, 0, 0));
	acct_db_result_free(res);
	return ACCT_EXIT_OK;
}

/* user-list */

static const char user_list_usage[]
    = "usage: planktonfly admin user-list\n"
      "\n"
      "Lists users, tab-separated with a header line:\n"
      "id username role status group quota used_quota request_count\n"
      "(status 1 enabled, 2 disabled).\n"
      "\n";

int
acct_admin_user_list(acct_admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "SELECT id, username, role, status, \"group\", quota,"
	      " used_quota, request_count FROM users ORDER BY id";

	return acct_admin_list(ctx, user_list_usage, argc, argv, sql,
	    "id\tusername\trole\tstatus\tgroup\tquota\tused_quota\t"
	    "request_count\n",
	    8);
}

/* price-set */

static const char price_set_usage[]
    = "usage: planktonfly admin price-set --model M\n"
      "           (--input USD --output USD [--cached USD] | --call USD)\n"
      "\n"
      "Sets (inserts or replaces) a model's price.  Prices are decimal USD\n"
      "strings with at most 6 decimals, e.g. 0.27: per 1M tokens for\n"
      "--input, --output and --cached, per request for --call.\n"
      "\n"
      "  --model M     model name as clients ask for it\n"
      "  --input USD   per 1M prompt tokens\n"
      "  --output USD  per 1M completion tokens\n"
      "  --cached USD  per 1M cached prompt tokens (default: the --input "
      "price)\n"
      "  --call USD    per request, instead of token prices\n";

static int
parse_usd(const char *s, int64_t *ret)
{
	return s != NULL && pf_money_parse_micros(s, strlen(s), ret) == PF_OK;
}

int
acct_admin_price_set(acct_admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO model_prices (model, input_micros, output_micros,"
	      " cached_micros, call_micros, updated_at) VALUES ($1,"
	      " $2::bigint, $3::bigint, $4::bigint, $5::bigint,"
	      " EXTRACT(EPOCH FROM now())::BIGINT) ON CONFLICT (model) DO"
	      " UPDATE SET input_micros = EXCLUDED.input_micros,"
	      " output_micros = EXCLUDED.output_micros,"
	      " cached_micros = EXCLUDED.cached_micros,"
	      " call_micros = EXCLUDED.call_micros,"
	      " updated_at = EXCLUDED.updated_at";
	const char *model, *in_s, *out_s, *cached_s, *call_s;
	const acct_admin_opt opts[] = { { "model", 1, 1, &model },
		{ "input", 1, 0, &in_s }, { "output", 1, 0, &out_s },
		{ "cached", 1, 0, &cached_s }, { "call", 1, 0, &call_s } };
	int64_t in = 0, out = 0, cached = 0, call = 0;
	char b[4][24], errbuf[ACCT_ADMIN_ERRBUF];
	const char *params[5];
	pf_err err;
	int rc;

	rc = acct_admin_prepare(ctx, price_set_usage, argc, argv, opts,
	    sizeof(opts) / sizeof(opts[0]));
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	if (!acct_check_word(model, PF_MODEL_NAME_MAX))
		return acct_admin_usage_error(
		    ctx, "invalid --model '%s'", model);
	if (call_s != NULL) {
		if (in_s != NULL || out_s != NULL || cached_s != NULL)
			return acct_admin_usage_error(ctx, "%s",
			    "--call excludes --input, --output and --cached");
		if (!parse_usd(call_s, &call))
			return acct_admin_usage_error(ctx,
			    "--call must be a decimal USD amount, not '%s'",
			    call_s);
	} else {
		if (in_s == NULL || out_s == NULL)
			return acct_admin_usage_error(
			    ctx, "%s", "give --input and --output, or --call");
		if (!parse_usd(in_s, &in))
			return acct_admin_usage_error(ctx,
			    "--input must be a decimal USD amount, not '%s'",
			    in_s);
		if (!parse_usd(out_s, &out))
			return acct_admin_usage_error(ctx,
			    "--output must be a decimal USD amount, not '%s'",
			    out_s);
		cached = in;
		if (cached_s != NULL && !parse_usd(cached_s, &cached))
			return acct_admin_usage_error(ctx,
			    "--cached must be a decimal USD amount, not '%s'",
			    cached_s);
	}
	params[0] = model;
	params[1] = acct_admin_fmt_i64(b[0], sizeof(b[0]), in);
	params[2] = acct_admin_fmt_i64(b[1], sizeof(b[1]), out);
	params[3] = acct_admin_fmt_i64(b[2], sizeof(b[2]), cached);
	params[4] = acct_admin_fmt_i64(b[3], sizeof(b[3]), call);
	err = acct_admin_exec(
	    ctx, sql, 5, params, NULL, errbuf, sizeof(errbuf));
	if (err != PF_OK)
		return acct_admin_fail(ctx, errbuf);
	return ACCT_EXIT_OK;
}

/* Dispatch */

typedef int (*admin_fn)(acct_admin_ctx *ctx, int argc, char **argv);

static const struct {
	const char *name;
	admin_fn fn;
	const char *help;
} subs[] = {
	{ "user-create", acct_admin_user_create,
	    "create a user; prints its id" },
	{ "user-list", acct_admin_user_list, "list users" },
	{ "token-create", acct_admin_token_create,
	    "create an API token; prints its key once" },
	{ "token-list", acct_admin_token_list,
	    "list a user's tokens (no keys)" },
	{ "channel-add", acct_admin_channel_add,
	    "add a channel; prints its id" },
	{ "channel-list", acct_admin_channel_list, "list channels (no keys)" },
	{ "channel-enable", acct_admin_channel_enable, "enable a channel" },
	{ "channel-disable", acct_admin_channel_disable, "disable a channel" },
	{ "price-set", acct_admin_price_set, "set a model's price" },
};

static void
admin_usage(FILE *f)
{
	fprintf(f, "usage: planktonfly admin COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		fprintf(f, "  %-16s %s\n", subs[i].name, subs[i].help);
	fprintf(f,
	    "\nEvery command takes --config FILE and --help; the database is\n"
	    "PF_DATABASE_URL.  Run 'planktonfly admin COMMAND --help'.\n");
}

int
acct_cmd_admin(int argc, char **argv)
{
	acct_admin_ctx ctx;

	if (argc < 2) {
		admin_usage(stderr);
		return ACCT_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
	    || strcmp(argv[1], "help") == 0) {
		admin_usage(stdout);
		return ACCT_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		memset(&ctx, 0, sizeof(ctx));
		ctx.sub = subs[i].name;
		return subs[i].fn(&ctx, argc - 2, argv + 2);
	}
	fprintf(stderr, "planktonfly admin: unknown command '%s'\n", argv[1]);
	admin_usage(stderr);
	return ACCT_EXIT_USAGE;
}
