/*
 * admin_token.c -- `planktonfly admin token-create` and `token-list`.
 *
 * A key is shown once, on token-create's stdout; the database keeps its
 * SHA-256 hex and its first PF_API_KEY_PREFIX_LEN characters.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "accountant/admin.h"
#include "accountant/check.h"
#include "accountant/db.h"
#include "accountant/password.h"
#include "common/ids.h"
#include "common/limits.h"

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

int
acct_admin_token_create(acct_admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO tokens (user_id, name, key_hash, key_prefix,"
	      " remain_quota, unlimited_quota, expired_at, models, allow_ips,"
	      " \"group\") SELECT id, $2, $3, $4, $5::bigint, $6::boolean,"
	      " $7::bigint, $8, $9, $10 FROM users WHERE username = $1"
	      " RETURNING id";
	const char *user, *name, *quota_s, *unlimited_s, *models, *ips;
	const char *expires_s, *group;
	const acct_admin_opt opts[] = { { "user", 1, 1, &user },
		{ "name", 1, 0, &name }, { "quota", 1, 0, &quota_s },
		{ "unlimited", 0, 0, &unlimited_s },
		{ "models", 1, 0, &models }, { "allow-ips", 1, 0, &ips },
		{ "expires", 1, 0, &expires_s }, { "group", 1, 0, &group } };
	char *models_n = NULL, *ips_n = NULL;
	char key[ACCT_TOKEN_KEY_LEN + 1], hash[65];
	char prefix[PF_API_KEY_PREFIX_LEN + 1];
	char quota_buf[24], expires_buf[24], errbuf[ACCT_ADMIN_ERRBUF];
	struct pg_result *res = NULL;
	const char *params[10];
	int64_t quota = 0, expires = -1;
	int unlimited;
	pf_err err;
	int rc;

	rc = acct_admin_prepare(ctx, token_create_usage, argc, argv, opts,
	    sizeof(opts) / sizeof(opts[0]));
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	unlimited = unlimited_s != NULL;
	if (!acct_check_word(user, ACCT_USERNAME_MAX))
		return acct_admin_usage_error(ctx, "invalid --user '%s'", user);
	if (name == NULL)
		name = "";
	if (!acct_check_text(name, ACCT_TOKEN_NAME_MAX))
		return acct_admin_usage_error(ctx, "invalid --name '%s'", name);
	if (quota_s != NULL && unlimited)
		return acct_admin_usage_error(ctx, "%s",
		    "--quota and --unlimited exclude "
		    "each other");
	if (quota_s != NULL
	    && acct_parse_int(quota_s, 0, INT64_MAX, &quota) != PF_OK)
		return acct_admin_usage_error(ctx,
		    "--quota must be a non-negative integer, not '%s'",
		    quota_s);
	if (quota_s == NULL)
		unlimited = 1;
	if (expires_s != NULL
	    && (acct_parse_int(expires_s, -1, INT64_MAX, &expires) != PF_OK
	        || expires == 0))
		return acct_admin_usage_error(ctx,
		    "--expires must be unix seconds or -1, not '%s'",
		    expires_s);
	if (group == NULL)
		group = "";
	if (group[0] != '\0' && !acct_check_word(group, ACCT_GROUP_MAX))
		return acct_admin_usage_error(
		    ctx, "invalid --group '%s'", group);
	if (models != NULL) {
		models_n = malloc(strlen(models) + 1);
		if (models_n == NULL)
			return acct_admin_fail(ctx, "out of memory");
		if (!acct_check_list(models, PF_MODEL_NAME_MAX, 0, models_n)) {
			free(models_n);
			return acct_admin_usage_error(
			    ctx, "invalid --models list '%s'", models);
		}
	}
	if (ips != NULL) {
		ips_n = malloc(strlen(ips) + 1);
		if (ips_n == NULL) {
			free(models_n);
			return acct_admin_fail(ctx, "out of memory");
		}
		if (!acct_check_list(ips, INET6_ADDRSTRLEN + 4, 1, ips_n)) {
			free(models_n);
			free(ips_n);
			return acct_admin_usage_error(
			    ctx, "invalid --allow-ips list '%s'", ips);
		}
	}

	rc = ACCT_EXIT_FAIL;
	err = acct_token_key_new(key, sizeof(key));
	if (err == PF_OK)
		err = pf_sha256_hex(key, strlen(key), hash);
	if (err != PF_OK) {
		acct_admin_fail(ctx, "generating the key failed");
		goto out;
	}
	memcpy(prefix, key, PF_API_KEY_PREFIX_LEN);
	prefix[PF_API_KEY_PREFIX_LEN] = '\0';
	params[0] = user;
	params[1] = name;
	params[2] = hash;
	params[3] = prefix;
	params[4] = acct_admin_fmt_i64(quota_buf, sizeof(quota_buf), quota);
	params[5] = unlimited ? "true" : "false";
	params[6]
	    = acct_admin_fmt_i64(expires_buf, sizeof(expires_buf), expires);
	params[7] = models_n != NULL ? models_n : "";
	params[8] = ips_n != NULL ? ips_n : "";
	params[9] = group;
	err = acct_admin_exec(
	    ctx, sql, 10, params, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		acct_admin_fail(ctx, errbuf);
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

int
acct_admin_token_list(acct_admin_ctx *ctx, int argc, char **argv)
{
	/* The LEFT JOIN tells "no such user" (no row) from "no tokens"
	 * (one row of NULLs). */
	static const char sql[]
	    = "SELECT t.id, t.name, t.key_prefix, t.status, t.remain_quota,"
	      " t.unlimited_quota, t.used_quota, t.expired_at, t.models,"
	      " t.\"group\" FROM users u LEFT JOIN tokens t ON t.user_id = u.id"
	      " WHERE u.username = $1 ORDER BY t.id";
	const char *user;
	const acct_admin_opt opts[] = { { "user", 1, 1, &user } };
	char errbuf[ACCT_ADMIN_ERRBUF];
	struct pg_result *res = NULL;
	const char *params[1];
	pf_err err;
	int rc;

	rc = acct_admin_prepare(ctx, token_list_usage, argc, argv, opts, 1);
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	params[0] = user;
	err = acct_admin_exec(
	    ctx, sql, 1, params, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK)
		return acct_admin_fail(ctx, errbuf);
	if (acct_db_rows(res) == 0) {
		acct_db_result_free(res);
		fprintf(stderr, "planktonfly admin %s: no user named '%s'\n",
		    ctx->sub, user);
		return ACCT_EXIT_FAIL;
	}
	printf("id\tname\tprefix\tstatus\tremain_quota\tunlimited\t"
	       "used_quota\texpired_at\tmodels\tgroup\n");
	if (acct_db_value(res, 0, 0)[0] != '\0')
		acct_admin_print_rows(res, 10);
	acct_db_result_free(res);
	return ACCT_EXIT_OK;
}
