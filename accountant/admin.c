/*
 * admin.c -- `planktonfly admin`: users, tokens, channels and prices,
 * written to PostgreSQL directly.
 *
 * Output contract: creating commands print only the new value (id or key)
 * on stdout; list commands print a header line and tab-separated rows.
 * Exit 0 success, 1 runtime error, 2 usage error.  Every statement uses
 * parameters; secrets (channel keys, token keys except once on creation,
 * passwords) are never printed.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "accountant/cli.h"
#include "accountant/cmd.h"
#include "accountant/db.h"
#include "accountant/password.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/money.h"

#define ERRBUF_MAX 1024
#define GO_ON (-1) /* "prepare" found nothing to stop for */

/* Column widths from schema/001_init.sql. */
#define USERNAME_MAX 64
#define GROUP_MAX 64
#define TOKEN_NAME_MAX 64
#define CHANNEL_NAME_MAX 128

#define CHANNEL_OPENAI "1"
#define CHANNEL_ANTHROPIC "2"

typedef struct admin_ctx {
	const char *sub; /* subcommand name, for messages */
	pf_config cfg;
} admin_ctx;

static int usage_error(const admin_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
usage_error(const admin_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "planktonfly admin %s: ", ctx->sub);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'planktonfly admin %s --help')\n", ctx->sub);
	return ACCT_EXIT_USAGE;
}

static int
fail(const admin_ctx *ctx, const char *msg)
{
	fprintf(stderr, "planktonfly admin %s: %s\n", ctx->sub, msg);
	return ACCT_EXIT_FAIL;
}

/*
 * Parses options, answers --help, loads the configuration.  Returns GO_ON
 * or the exit code to return.
 */
static int
prepare(admin_ctx *ctx, const char *usage, int argc, char **argv,
    acct_opt *opts, size_t n)
{
	char errbuf[ERRBUF_MAX];
	int help = 0;
	pf_err err;

	err = acct_opts_parse(
	    argc, argv, opts, n, &help, errbuf, sizeof(errbuf));
	if (err != PF_OK)
		return usage_error(ctx, "%s", errbuf);
	if (help) {
		fputs(usage, stdout);
		printf("  --config FILE  read settings from FILE (environment "
		       "wins)\n  --help         print this help\n\n");
		pf_config_usage(stdout);
		return ACCT_EXIT_OK;
	}
	err = acct_load_config(acct_opt_value(opts, n, "config"), &ctx->cfg,
	    errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly admin %s: %s\n", ctx->sub, errbuf);
		return ACCT_EXIT_USAGE;
	}
	return GO_ON;
}

static int
connect_db(const admin_ctx *ctx, struct pg_conn **ret_conn)
{
	char errbuf[ERRBUF_MAX];
	pf_err err;

	err = acct_db_connect(
	    ctx->cfg.database_url, ret_conn, errbuf, sizeof(errbuf));
	if (err != PF_OK)
		return fail(ctx, errbuf);
	return GO_ON;
}

/* 1 when s has a control character (or DEL). */
static int
has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	}
	return 0;
}

/* 1 when s is 1..max bytes of printable characters without spaces and
 * commas: usernames, groups and model names end up in comma lists. */
static int
valid_word(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len == 0 || len > max || has_control(s))
		return 0;
	return strpbrk(s, " ,") == NULL;
}

static int
valid_text(const char *s, size_t max)
{
	return strlen(s) <= max && !has_control(s);
}

/* 1 when item is an IPv4/IPv6 address, optionally with a /prefix. */
static int
valid_cidr(const char *item)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	const char *slash = strchr(item, '/');
	size_t alen = slash != NULL ? (size_t)(slash - item) : strlen(item);
	int64_t bits;
	int family;

	if (alen == 0 || alen >= sizeof(addr))
		return 0;
	memcpy(addr, item, alen);
	addr[alen] = '\0';
	family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(family, addr, bin) != 1)
		return 0;
	if (slash == NULL)
		return 1;
	return acct_parse_int(slash + 1, 0, family == AF_INET ? 32 : 128, &bits)
	    == PF_OK;
}

/*
 * Normalizes a comma list "a, b,c" into out ("a,b,c"): items trimmed of
 * spaces, each a valid_word of at most max bytes.  With check_cidr each item
 * must be an IPv4/IPv6 address or CIDR.  Returns 0 when malformed (empty
 * list included).  out holds at least strlen(in)+1 bytes.
 */
static int
normalize_list(const char *in, size_t max, int check_cidr, char *out)
{
	size_t o = 0;
	const char *p = in;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char item[PF_MODEL_NAME_MAX + 1];

		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0 || len > max || len >= sizeof(item))
			return 0;
		memcpy(item, p, len);
		item[len] = '\0';
		if (!valid_word(item, max))
			return 0;
		if (check_cidr && !valid_cidr(item))
			return 0;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, item, len);
		o += len;
		if (end == NULL)
			break;
		p = end + 1;
	}
	out[o] = '\0';
	return 1;
}

/* http:// or https:// (or, with proxy, socks schemes too), a host, no
 * spaces or control characters. */
static int
valid_url(const char *url, int proxy)
{
	static const char *const web[] = { "http://", "https://", NULL };
	static const char *const prox[] = { "http://", "https://", "socks4://",
		"socks4a://", "socks5://", "socks5h://", NULL };
	const char *const *schemes = proxy ? prox : web;
	size_t len = strlen(url);

	if (len > PF_URL_MAX || has_control(url) || strchr(url, ' ') != NULL)
		return 0;
	for (size_t i = 0; schemes[i] != NULL; i++) {
		size_t sl = strlen(schemes[i]);

		if (strncmp(url, schemes[i], sl) == 0)
			return url[sl] != '\0' && url[sl] != '/'
			    && url[sl] != '?' && url[sl] != '#';
	}
	return 0;
}

/* Formats v into buf (at least 24 bytes). */
static const char *
fmt_i64(char *buf, size_t len, int64_t v)
{
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

/* Prints a cell for a tab-separated listing: control characters become
 * spaces so a row stays one line. */
static void
print_cell(const char *s, int last)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
	putchar(last ? '\n' : '\t');
}

static void
print_rows(const struct pg_result *res, int ncols)
{
	for (int r = 0; r < acct_db_rows(res); r++) {
		for (int c = 0; c < ncols; c++)
			print_cell(acct_db_value(res, r, c), c == ncols - 1);
	}
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

static int
admin_user_create(admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO users (username, display_name, password_hash,"
	      " quota, \"group\", role) VALUES ($1, $1, $2, $3::bigint, $4, $5)"
	      " RETURNING id";
	acct_opt opts[] = { { "config", 1, NULL }, { "username", 1, NULL },
		{ "password", 1, NULL }, { "quota", 1, NULL },
		{ "group", 1, NULL }, { "role", 1, NULL } };
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	const char *username, *password, *quota_s, *group, *role;
	char hash[ACCT_PASSWORD_HASH_LEN] = "";
	char quota_buf[24], errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	const char *params[5];
	int64_t quota = 0;
	pf_err err;
	int rc;

	rc = prepare(ctx, user_create_usage, argc, argv, opts, n);
	if (rc != GO_ON)
		return rc;
	username = acct_opt_value(opts, n, "username");
	password = acct_opt_value(opts, n, "password");
	quota_s = acct_opt_value(opts, n, "quota");
	group = acct_opt_value(opts, n, "group");
	role = acct_opt_value(opts, n, "role");
	if (username == NULL)
		return usage_error(ctx, "%s is required", "--username");
	if (!valid_word(username, USERNAME_MAX))
		return usage_error(ctx, "invalid --username '%s'", username);
	if (password != NULL
	    && (password[0] == '\0' || strlen(password) > PF_PASSWORD_MAX))
		return usage_error(
		    ctx, "--password must be 1-%u bytes", PF_PASSWORD_MAX);
	if (quota_s != NULL
	    && acct_parse_int(quota_s, 0, INT64_MAX, &quota) != PF_OK)
		return usage_error(ctx,
		    "--quota must be a non-negative integer, not '%s'",
		    quota_s);
	if (group == NULL)
		group = "default";
	if (!valid_word(group, GROUP_MAX))
		return usage_error(ctx, "invalid --group '%s'", group);
	if (role == NULL)
		role = "user";
	if (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0
	    && strcmp(role, "root") != 0)
		return usage_error(
		    ctx, "--role must be user, admin or root, not '%s'", role);
	if (password != NULL) {
		err = acct_password_hash(
		    password, strlen(password), hash, sizeof(hash));
		if (err != PF_OK)
			return fail(ctx, "hashing the password failed");
	}
	rc = connect_db(ctx, &conn);
	if (rc != GO_ON)
		return rc;
	params[0] = username;
	params[1] = hash;
	params[2] = fmt_i64(quota_buf, sizeof(quota_buf), quota);
	params[3] = group;
	params[4] = role;
	err = acct_db_exec(conn, sql, 5, params, &res, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err == PF_EEXIST) {
		fprintf(stderr,
		    "planktonfly admin %s: user '%s' already exists\n",
		    ctx->sub, username);
		return ACCT_EXIT_FAIL;
	}
	if (err != PF_OK)
		return fail(ctx, errbuf);
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

static int
admin_user_list(admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "SELECT id, username, role, status, \"group\", quota,"
	      " used_quota, request_count FROM users ORDER BY id";
	acct_opt opts[] = { { "config", 1, NULL } };
	char errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	pf_err err;
	int rc;

	rc = prepare(ctx, user_list_usage, argc, argv, opts, 1);
	if (rc != GO_ON)
		return rc;
	rc = connect_db(ctx, &conn);
	if (rc != GO_ON)
		return rc;
	err = acct_db_exec(conn, sql, 0, NULL, &res, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err != PF_OK)
		return fail(ctx, errbuf);
	printf("id\tusername\trole\tstatus\tgroup\tquota\tused_quota\t"
	       "request_count\n");
	print_rows(res, 8);
	acct_db_result_free(res);
	return ACCT_EXIT_OK;
}

/* token-create */

static const char token_create_usage[]
    = "usage: planktonfly admin token-create --user NAME [--name N]\n"
      "           [--quota N | --unlimited] [--models m1,m2]\n"
      "           [--allow-ips cidr,..] [--expires UNIX] [--group G]\n"
      "\n"
      "Creates an API token and prints its key (sk-...) alone on stdout.\n"
      "The key is shown only now: the database keeps its SHA-256 hash and\n"
      "its first 8 characters.\n"
      "\n"
      "  --user NAME       owner's username\n"
      "  --name N          label, up to 64 bytes\n"
      "  --quota N         spending cap in quota units\n"
      "  --unlimited       no cap of its own (the default when --quota is\n"
      "                    absent); the owner's balance still limits it\n"
      "  --models LIST     comma list of models it may use (default all)\n"
      "  --allow-ips LIST  comma list of client IPs/CIDRs (default any)\n"
      "  --expires UNIX    expiry, unix seconds (default never; -1 = never)\n"
      "  --group G         group overriding the owner's\n";

static int
admin_token_create(admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO tokens (user_id, name, key_hash, key_prefix,"
	      " remain_quota, unlimited_quota, expired_at, models, allow_ips,"
	      " \"group\") SELECT id, $2, $3, $4, $5::bigint, $6::boolean,"
	      " $7::bigint, $8, $9, $10 FROM users WHERE username = $1"
	      " RETURNING id";
	acct_opt opts[]
	    = { { "config", 1, NULL }, { "user", 1, NULL }, { "name", 1, NULL },
		      { "quota", 1, NULL }, { "unlimited", 0, NULL },
		      { "models", 1, NULL }, { "allow-ips", 1, NULL },
		      { "expires", 1, NULL }, { "group", 1, NULL } };
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	const char *user, *name, *quota_s, *models, *ips, *expires_s, *group;
	char *models_n = NULL, *ips_n = NULL;
	char key[ACCT_TOKEN_KEY_LEN + 1], hash[65];
	char prefix[PF_API_KEY_PREFIX_LEN + 1];
	char quota_buf[24], expires_buf[24], errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	const char *params[10];
	int64_t quota = 0, expires = -1;
	int unlimited;
	pf_err err;
	int rc;

	rc = prepare(ctx, token_create_usage, argc, argv, opts, n);
	if (rc != GO_ON)
		return rc;
	user = acct_opt_value(opts, n, "user");
	name = acct_opt_value(opts, n, "name");
	quota_s = acct_opt_value(opts, n, "quota");
	unlimited = acct_opt_value(opts, n, "unlimited") != NULL;
	models = acct_opt_value(opts, n, "models");
	ips = acct_opt_value(opts, n, "allow-ips");
	expires_s = acct_opt_value(opts, n, "expires");
	group = acct_opt_value(opts, n, "group");
	if (user == NULL)
		return usage_error(ctx, "%s is required", "--user");
	if (!valid_word(user, USERNAME_MAX))
		return usage_error(ctx, "invalid --user '%s'", user);
	if (name == NULL)
		name = "";
	if (!valid_text(name, TOKEN_NAME_MAX))
		return usage_error(ctx, "invalid --name '%s'", name);
	if (quota_s != NULL && unlimited)
		return usage_error(ctx, "%s",
		    "--quota and --unlimited exclude "
		    "each other");
	if (quota_s != NULL
	    && acct_parse_int(quota_s, 0, INT64_MAX, &quota) != PF_OK)
		return usage_error(ctx,
		    "--quota must be a non-negative integer, not '%s'",
		    quota_s);
	if (quota_s == NULL)
		unlimited = 1;
	if (expires_s != NULL
	    && (acct_parse_int(expires_s, -1, INT64_MAX, &expires) != PF_OK
	        || expires == 0))
		return usage_error(ctx,
		    "--expires must be unix seconds or -1, not '%s'",
		    expires_s);
	if (group == NULL)
		group = "";
	if (group[0] != '\0' && !valid_word(group, GROUP_MAX))
		return usage_error(ctx, "invalid --group '%s'", group);
	if (models != NULL) {
		models_n = malloc(strlen(models) + 1);
		if (models_n == NULL)
			return fail(ctx, "out of memory");
		if (!normalize_list(models, PF_MODEL_NAME_MAX, 0, models_n)) {
			free(models_n);
			return usage_error(
			    ctx, "invalid --models list '%s'", models);
		}
	}
	if (ips != NULL) {
		ips_n = malloc(strlen(ips) + 1);
		if (ips_n == NULL) {
			free(models_n);
			return fail(ctx, "out of memory");
		}
		if (!normalize_list(ips, INET6_ADDRSTRLEN + 4, 1, ips_n)) {
			free(models_n);
			free(ips_n);
			return usage_error(
			    ctx, "invalid --allow-ips list '%s'", ips);
		}
	}

	rc = ACCT_EXIT_FAIL;
	err = acct_token_key_new(key, sizeof(key));
	if (err == PF_OK)
		err = pf_sha256_hex(key, strlen(key), hash);
	if (err != PF_OK) {
		fail(ctx, "generating the key failed");
		goto out;
	}
	memcpy(prefix, key, PF_API_KEY_PREFIX_LEN);
	prefix[PF_API_KEY_PREFIX_LEN] = '\0';
	if (connect_db(ctx, &conn) != GO_ON)
		goto out;
	params[0] = user;
	params[1] = name;
	params[2] = hash;
	params[3] = prefix;
	params[4] = fmt_i64(quota_buf, sizeof(quota_buf), quota);
	params[5] = unlimited ? "true" : "false";
	params[6] = fmt_i64(expires_buf, sizeof(expires_buf), expires);
	params[7] = models_n != NULL ? models_n : "";
	params[8] = ips_n != NULL ? ips_n : "";
	params[9] = group;
	err = acct_db_exec(conn, sql, 10, params, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fail(ctx, errbuf);
		goto out;
	}
	if (acct_db_rows(res) != 1) {
		fprintf(stderr, "planktonfly admin %s: no user named '%s'\n",
		    ctx->sub, user);
		goto out;
	}
	printf("%s\n", key);
	rc = ACCT_EXIT_OK;
out:
	OPENSSL_cleanse(key, sizeof(key));
	acct_db_result_free(res);
	acct_db_close(conn);
	free(models_n);
	free(ips_n);
	return rc;
}

/* token-list */

static const char token_list_usage[]
    = "usage: planktonfly admin token-list --user NAME\n"
      "\n"
      "Lists a user's tokens (never their keys), tab-separated with a\n"
      "header line: id name prefix status remain_quota unlimited\n"
      "used_quota expired_at models group (status 1 enabled, 2 disabled;\n"
      "expired_at -1 = never).\n"
      "\n"
      "  --user NAME  owner's username\n";

static int
admin_token_list(admin_ctx *ctx, int argc, char **argv)
{
	/* The LEFT JOIN tells "no such user" (no row) from "no tokens"
	 * (one row of NULLs). */
	static const char sql[]
	    = "SELECT t.id, t.name, t.key_prefix, t.status, t.remain_quota,"
	      " t.unlimited_quota, t.used_quota, t.expired_at, t.models,"
	      " t.\"group\" FROM users u LEFT JOIN tokens t ON t.user_id = u.id"
	      " WHERE u.username = $1 ORDER BY t.id";
	acct_opt opts[] = { { "config", 1, NULL }, { "user", 1, NULL } };
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	char errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	const char *user;
	const char *params[1];
	pf_err err;
	int rc;

	rc = prepare(ctx, token_list_usage, argc, argv, opts, n);
	if (rc != GO_ON)
		return rc;
	user = acct_opt_value(opts, n, "user");
	if (user == NULL)
		return usage_error(ctx, "%s is required", "--user");
	rc = connect_db(ctx, &conn);
	if (rc != GO_ON)
		return rc;
	params[0] = user;
	err = acct_db_exec(conn, sql, 1, params, &res, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err != PF_OK)
		return fail(ctx, errbuf);
	if (acct_db_rows(res) == 0) {
		acct_db_result_free(res);
		fprintf(stderr, "planktonfly admin %s: no user named '%s'\n",
		    ctx->sub, user);
		return ACCT_EXIT_FAIL;
	}
	printf("id\tname\tprefix\tstatus\tremain_quota\tunlimited\t"
	       "used_quota\texpired_at\tmodels\tgroup\n");
	if (acct_db_value(res, 0, 0)[0] != '\0')
		print_rows(res, 10);
	acct_db_result_free(res);
	return ACCT_EXIT_OK;
}

/* channel-add */

static const char channel_add_usage[]
    = "usage: planktonfly admin channel-add --name N --type openai|anthropic\n"
      "           --base-url URL [--key K] --models m1,m2 [--group g1,g2]\n"
      "           [--priority N] [--weight N] [--model-mapping JSON]\n"
      "           [--proxy URL] [--connect-timeout-ms N]\n"
      "           [--first-byte-timeout-ms N] [--idle-timeout-ms N]\n"
      "           [--total-timeout-ms N]\n"
      "\n"
      "Adds an upstream channel (enabled) and prints its id alone on\n"
      "stdout.  Routing entries (abilities) follow from models x groups.\n"
      "\n"
      "  --name N             label, up to 128 bytes\n"
      "  --type T             openai or anthropic\n"
      "  --base-url URL       http(s)://host[:port]/prefix, e.g.\n"
      "                       https://api.openai.com/v1 (trailing / dropped)\n"
      "  --key K              upstream API key (secret; never printed)\n"
      "  --models LIST        comma list of models served\n"
      "  --group LIST         comma list of groups (default \"default\")\n"
      "  --priority N         higher tiers are tried first (default 0)\n"
      "  --weight N           weight within a tier, >= 0 (default 1)\n"
      "  --model-mapping JSON object {\"asked model\": \"sent model\"}\n"
      "  --proxy URL          http(s):// or socks4/4a/5/5h:// proxy\n"
      "  --*-timeout-ms N     this channel's upstream timeouts, ms\n"
      "                       (default 0 = the configured PF_*_TIMEOUT_MS)\n";

/* Per-channel timeout options, in the order of their SQL parameters. */
static const char *const timeout_opts[] = { "connect-timeout-ms",
	"first-byte-timeout-ms", "idle-timeout-ms", "total-timeout-ms" };
#define N_TIMEOUTS (sizeof(timeout_opts) / sizeof(timeout_opts[0]))

/* Checks a model_mapping: a JSON object of model name -> model name.
 * On success *ret_json is a compact re-encoding (free()). */
static int
parse_mapping(const char *text, char **ret_json)
{
	json_error_t jerr;
	json_t *root;
	const char *k;
	json_t *v;
	char *out;
	int empty;

	if (strlen(text) > PF_MODEL_MAPPING_MAX)
		return 0;
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return 0;
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	json_object_foreach(root, k, v)
	{
		if (!valid_word(k, PF_MODEL_NAME_MAX) || !json_is_string(v)
		    || !valid_word(json_string_value(v), PF_MODEL_NAME_MAX)) {
			json_decref(root);
			return 0;
		}
	}
	empty = json_object_size(root) == 0;
	out = empty ? NULL : json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!empty && out == NULL)
		return 0;
	*ret_json = out;
	return 1;
}

static int
admin_channel_add(admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO channels (name, type, base_url, key, models,"
	      " \"group\", priority, weight, model_mapping, proxy,"
	      " connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms,"
	      " total_timeout_ms) VALUES ($1, $2::smallint, $3, $4, $5, $6,"
	      " $7::bigint, $8::int, $9, $10, $11::int, $12::int, $13::int,"
	      " $14::int) RETURNING id";
	acct_opt opts[] = { { "config", 1, NULL }, { "name", 1, NULL },
		{ "type", 1, NULL }, { "base-url", 1, NULL },
		{ "key", 1, NULL }, { "models", 1, NULL }, { "group", 1, NULL },
		{ "priority", 1, NULL }, { "weight", 1, NULL },
		{ "model-mapping", 1, NULL }, { "proxy", 1, NULL },
		{ "connect-timeout-ms", 1, NULL },
		{ "first-byte-timeout-ms", 1, NULL },
		{ "idle-timeout-ms", 1, NULL },
		{ "total-timeout-ms", 1, NULL } };
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	const char *name, *type, *url, *key, *models, *groups, *prio_s;
	const char *weight_s, *mapping, *proxy;
	char *url_n = NULL, *models_n = NULL, *groups_n = NULL;
	char *mapping_n = NULL;
	char prio_buf[24], weight_buf[24], errbuf[ERRBUF_MAX];
	char timeout_buf[N_TIMEOUTS][24];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	const char *params[10 + N_TIMEOUTS];
	int64_t priority = 0, weight = 1;
	size_t len;
	pf_err err;
	int rc;

	rc = prepare(ctx, channel_add_usage, argc, argv, opts, n);
	if (rc != GO_ON)
		return rc;
	name = acct_opt_value(opts, n, "name");
	type = acct_opt_value(opts, n, "type");
	url = acct_opt_value(opts, n, "base-url");
	key = acct_opt_value(opts, n, "key");
	models = acct_opt_value(opts, n, "models");
	groups = acct_opt_value(opts, n, "group");
	prio_s = acct_opt_value(opts, n, "priority");
	weight_s = acct_opt_value(opts, n, "weight");
	mapping = acct_opt_value(opts, n, "model-mapping");
	proxy = acct_opt_value(opts, n, "proxy");
	if (name == NULL)
		return usage_error(ctx, "%s is required", "--name");
	if (type == NULL)
		return usage_error(ctx, "%s is required", "--type");
	if (url == NULL)
		return usage_error(ctx, "%s is required", "--base-url");
	if (models == NULL)
		return usage_error(ctx, "%s is required", "--models");
	if (name[0] == '\0' || !valid_text(name, CHANNEL_NAME_MAX))
		return usage_error(ctx, "invalid --name '%s'", name);
	if (strcmp(type, "openai") == 0)
		type = CHANNEL_OPENAI;
	else if (strcmp(type, "anthropic") == 0)
		type = CHANNEL_ANTHROPIC;
	else
		return usage_error(
		    ctx, "--type must be openai or anthropic, not '%s'", type);
	if (!valid_url(url, 0))
		return usage_error(ctx,
		    "--base-url must be an http:// or https:// URL, not '%s'",
		    url);
	/* Never echo a key, even a malformed one. */
	if (key != NULL && (strlen(key) > PF_SECRET_MAX || has_control(key)))
		return usage_error(
		    ctx, "%s", "--key is too long or has control characters");
	if (prio_s != NULL
	    && acct_parse_int(prio_s, INT64_MIN, INT64_MAX, &priority) != PF_OK)
		return usage_error(
		    ctx, "--priority must be an integer, not '%s'", prio_s);
	if (weight_s != NULL
	    && acct_parse_int(weight_s, 0, INT32_MAX, &weight) != PF_OK)
		return usage_error(ctx,
		    "--weight must be an integer 0..2147483647, not '%s'",
		    weight_s);
	/* Not echoed: a proxy URL may carry credentials. */
	if (proxy != NULL && proxy[0] != '\0' && !valid_url(proxy, 1))
		return usage_error(ctx, "%s",
		    "--proxy must be an http(s)://, socks4(a):// or "
		    "socks5(h):// URL");
	for (size_t i = 0; i < N_TIMEOUTS; i++) {
		const char *v = acct_opt_value(opts, n, timeout_opts[i]);
		int64_t ms = 0;

		if (v != NULL && acct_parse_int(v, 0, INT32_MAX, &ms) != PF_OK)
			return usage_error(ctx,
			    "--%s must be milliseconds 0..2147483647, not '%s'",
			    timeout_opts[i], v);
		fmt_i64(timeout_buf[i], sizeof(timeout_buf[i]), ms);
		params[10 + i] = timeout_buf[i];
	}

	rc = ACCT_EXIT_USAGE;
	url_n = strdup(url);
	models_n = malloc(strlen(models) + 1);
	groups_n = malloc((groups != NULL ? strlen(groups) : 7) + 1);
	if (url_n == NULL || models_n == NULL || groups_n == NULL) {
		rc = fail(ctx, "out of memory");
		goto out;
	}
	len = strlen(url_n);
	while (len > 0 && url_n[len - 1] == '/')
		url_n[--len] = '\0';
	if (!normalize_list(models, PF_MODEL_NAME_MAX, 0, models_n)) {
		usage_error(ctx, "invalid --models list '%s'", models);
		goto out;
	}
	if (!normalize_list(
	        groups != NULL ? groups : "default", GROUP_MAX, 0, groups_n)) {
		usage_error(ctx, "invalid --group list '%s'", groups);
		goto out;
	}
	if (mapping != NULL && !parse_mapping(mapping, &mapping_n)) {
		usage_error(ctx, "%s",
		    "--model-mapping must be a JSON object of model names "
		    "{\"asked\":\"sent\"}");
		goto out;
	}

	rc = ACCT_EXIT_FAIL;
	if (connect_db(ctx, &conn) != GO_ON)
		goto out;
	params[0] = name;
	params[1] = type;
	params[2] = url_n;
	params[3] = key != NULL ? key : "";
	params[4] = models_n;
	params[5] = groups_n;
	params[6] = fmt_i64(prio_buf, sizeof(prio_buf), priority);
	params[7] = fmt_i64(weight_buf, sizeof(weight_buf), weight);
	params[8] = mapping_n != NULL ? mapping_n : "";
	params[9] = proxy != NULL ? proxy : "";
	err = acct_db_exec(
	    conn, sql, 10 + N_TIMEOUTS, params, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fail(ctx, errbuf);
		goto out;
	}
	printf("%s\n", acct_db_value(res, 0, 0));
	rc = ACCT_EXIT_OK;
out:
	acct_db_result_free(res);
	acct_db_close(conn);
	free(url_n);
	free(models_n);
	free(groups_n);
	free(mapping_n);
	return rc;
}

/* channel-list */

static const char channel_list_usage[]
    = "usage: planktonfly admin channel-list\n"
      "\n"
      "Lists channels (never their keys), tab-separated with a header\n"
      "line: id name type status disabled_reason models group priority\n"
      "weight (status 1 enabled, 2 disabled by admin, 3 auto-disabled).\n"
      "\n";

static int
admin_channel_list(admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "SELECT id, name, CASE type WHEN 1 THEN 'openai'"
	      " WHEN 2 THEN 'anthropic' ELSE type::text END, status,"
	      " disabled_reason, models, \"group\", priority, weight"
	      " FROM channels ORDER BY id";
	acct_opt opts[] = { { "config", 1, NULL } };
	char errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	pf_err err;
	int rc;

	rc = prepare(ctx, channel_list_usage, argc, argv, opts, 1);
	if (rc != GO_ON)
		return rc;
	rc = connect_db(ctx, &conn);
	if (rc != GO_ON)
		return rc;
	err = acct_db_exec(conn, sql, 0, NULL, &res, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err != PF_OK)
		return fail(ctx, errbuf);
	printf("id\tname\ttype\tstatus\tdisabled_reason\tmodels\tgroup\t"
	       "priority\tweight\n");
	print_rows(res, 9);
	acct_db_result_free(res);
	return ACCT_EXIT_OK;
}

/* channel-enable, channel-disable */

static const char channel_enable_usage[]
    = "usage: planktonfly admin channel-enable --id N\n"
      "\n"
      "Enables a channel (status 1) and clears its disabled reason and\n"
      "failure count; its routing entries are enabled with it.\n"
      "\n"
      "  --id N  channel id (see channel-list)\n";

static const char channel_disable_usage[]
    = "usage: planktonfly admin channel-disable --id N [--reason TEXT]\n"
      "\n"
      "Disables a channel by hand (status 2); routing stops using it.\n"
      "\n"
      "  --id N         channel id (see channel-list)\n"
      "  --reason TEXT  shown by channel-list (default \"disabled by "
      "admin\")\n";

static int
set_channel_status(admin_ctx *ctx, int argc, char **argv, int enable)
{
	static const char sql_enable[]
	    = "UPDATE channels SET status = 1, disabled_reason = '',"
	      " disabled_at = 0, fail_count = 0,"
	      " updated_at = EXTRACT(EPOCH FROM now())::BIGINT"
	      " WHERE id = $1::int RETURNING id";
	static const char sql_disable[]
	    = "UPDATE channels SET status = 2, disabled_reason = $2,"
	      " disabled_at = EXTRACT(EPOCH FROM now())::BIGINT,"
	      " updated_at = EXTRACT(EPOCH FROM now())::BIGINT"
	      " WHERE id = $1::int RETURNING id";
	acct_opt opts[] = { { "config", 1, NULL }, { "id", 1, NULL },
		{ "reason", 1, NULL } };
	/* channel-enable takes no --reason. */
	const size_t n = enable ? 2 : 3;
	const char *id_s, *reason;
	char id_buf[24], errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	struct pg_result *res = NULL;
	const char *params[2];
	int64_t id;
	pf_err err;
	int rc;

	rc = prepare(ctx, enable ? channel_enable_usage : channel_disable_usage,
	    argc, argv, opts, n);
	if (rc != GO_ON)
		return rc;
	id_s = acct_opt_value(opts, n, "id");
	reason = acct_opt_value(opts, n, "reason");
	if (id_s == NULL)
		return usage_error(ctx, "%s is required", "--id");
	if (acct_parse_int(id_s, 1, INT32_MAX, &id) != PF_OK)
		return usage_error(ctx, "invalid --id '%s'", id_s);
	if (reason == NULL)
		reason = "disabled by admin";
	if (!valid_text(reason, PF_ERROR_BODY_MAX))
		return usage_error(ctx, "%s",
		    "--reason is too long or has control characters");
	rc = connect_db(ctx, &conn);
	if (rc != GO_ON)
		return rc;
	params[0] = fmt_i64(id_buf, sizeof(id_buf), id);
	params[1] = reason;
	err = acct_db_exec(conn, enable ? sql_enable : sql_disable,
	    enable ? 1 : 2, params, &res, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err != PF_OK)
		return fail(ctx, errbuf);
	rc = acct_db_rows(res) == 1 ? ACCT_EXIT_OK : ACCT_EXIT_FAIL;
	acct_db_result_free(res);
	if (rc != ACCT_EXIT_OK)
		fprintf(stderr, "planktonfly admin %s: no channel with id %s\n",
		    ctx->sub, params[0]);
	return rc;
}

static int
admin_channel_enable(admin_ctx *ctx, int argc, char **argv)
{
	return set_channel_status(ctx, argc, argv, 1);
}

static int
admin_channel_disable(admin_ctx *ctx, int argc, char **argv)
{
	return set_channel_status(ctx, argc, argv, 0);
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

static int
admin_price_set(admin_ctx *ctx, int argc, char **argv)
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
	acct_opt opts[] = { { "config", 1, NULL }, { "model", 1, NULL },
		{ "input", 1, NULL }, { "output", 1, NULL },
		{ "cached", 1, NULL }, { "call", 1, NULL } };
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	const char *model, *in_s, *out_s, *cached_s, *call_s;
	int64_t in = 0, out = 0, cached = 0, call = 0;
	char b[4][24], errbuf[ERRBUF_MAX];
	struct pg_conn *conn = NULL;
	const char *params[5];
	pf_err err;
	int rc;

	rc = prepare(ctx, price_set_usage, argc, argv, opts, n);
	if (rc != GO_ON)
		return rc;
	model = acct_opt_value(opts, n, "model");
	in_s = acct_opt_value(opts, n, "input");
	out_s = acct_opt_value(opts, n, "output");
	cached_s = acct_opt_value(opts, n, "cached");
	call_s = acct_opt_value(opts, n, "call");
	if (model == NULL)
		return usage_error(ctx, "%s is required", "--model");
	if (!valid_word(model, PF_MODEL_NAME_MAX))
		return usage_error(ctx, "invalid --model '%s'", model);
	if (call_s != NULL) {
		if (in_s != NULL || out_s != NULL || cached_s != NULL)
			return usage_error(ctx, "%s",
			    "--call excludes --input, --output and --cached");
		if (!parse_usd(call_s, &call))
			return usage_error(ctx,
			    "--call must be a decimal USD amount, not '%s'",
			    call_s);
	} else {
		if (in_s == NULL || out_s == NULL)
			return usage_error(
			    ctx, "%s", "give --input and --output, or --call");
		if (!parse_usd(in_s, &in))
			return usage_error(ctx,
			    "--input must be a decimal USD amount, not '%s'",
			    in_s);
		if (!parse_usd(out_s, &out))
			return usage_error(ctx,
			    "--output must be a decimal USD amount, not '%s'",
			    out_s);
		cached = in;
		if (cached_s != NULL && !parse_usd(cached_s, &cached))
			return usage_error(ctx,
			    "--cached must be a decimal USD amount, not '%s'",
			    cached_s);
	}
	rc = connect_db(ctx, &conn);
	if (rc != GO_ON)
		return rc;
	params[0] = model;
	params[1] = fmt_i64(b[0], sizeof(b[0]), in);
	params[2] = fmt_i64(b[1], sizeof(b[1]), out);
	params[3] = fmt_i64(b[2], sizeof(b[2]), cached);
	params[4] = fmt_i64(b[3], sizeof(b[3]), call);
	err = acct_db_exec(conn, sql, 5, params, NULL, errbuf, sizeof(errbuf));
	acct_db_close(conn);
	if (err != PF_OK)
		return fail(ctx, errbuf);
	return ACCT_EXIT_OK;
}

/* Dispatch */

typedef int (*admin_fn)(admin_ctx *ctx, int argc, char **argv);

static const struct {
	const char *name;
	admin_fn fn;
	const char *help;
} subs[] = {
	{ "user-create", admin_user_create, "create a user; prints its id" },
	{ "user-list", admin_user_list, "list users" },
	{ "token-create", admin_token_create,
	    "create an API token; prints its key once" },
	{ "token-list", admin_token_list, "list a user's tokens (no keys)" },
	{ "channel-add", admin_channel_add, "add a channel; prints its id" },
	{ "channel-list", admin_channel_list, "list channels (no keys)" },
	{ "channel-enable", admin_channel_enable, "enable a channel" },
	{ "channel-disable", admin_channel_disable, "disable a channel" },
	{ "price-set", admin_price_set, "set a model's price" },
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
	admin_ctx ctx;

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
