/*
 * admin_channel.c -- `planktonfly admin channel-add`, `channel-list`,
 * `channel-enable`, `channel-disable`.  Channel keys are never printed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accountant/admin.h"
#include "accountant/check.h"
#include "accountant/db.h"
#include "common/limits.h"

#define CHANNEL_OPENAI "1"
#define CHANNEL_ANTHROPIC "2"

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

int
acct_admin_channel_add(acct_admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "INSERT INTO channels (name, type, base_url, key, models,"
	      " \"group\", priority, weight, model_mapping, proxy,"
	      " connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms,"
	      " total_timeout_ms) VALUES ($1, $2::smallint, $3, $4, $5, $6,"
	      " $7::bigint, $8::int, $9, $10, $11::int, $12::int, $13::int,"
	      " $14::int) RETURNING id";
	const char *name, *type, *url, *key, *models, *groups, *prio_s;
	const char *weight_s, *mapping, *proxy, *timeout_s[N_TIMEOUTS];
	const acct_admin_opt opts[] = { { "name", 1, 1, &name },
		{ "type", 1, 1, &type }, { "base-url", 1, 1, &url },
		{ "models", 1, 1, &models }, { "key", 1, 0, &key },
		{ "group", 1, 0, &groups }, { "priority", 1, 0, &prio_s },
		{ "weight", 1, 0, &weight_s },
		{ "model-mapping", 1, 0, &mapping }, { "proxy", 1, 0, &proxy },
		{ timeout_opts[0], 1, 0, &timeout_s[0] },
		{ timeout_opts[1], 1, 0, &timeout_s[1] },
		{ timeout_opts[2], 1, 0, &timeout_s[2] },
		{ timeout_opts[3], 1, 0, &timeout_s[3] } };
	const size_t n = sizeof(opts) / sizeof(opts[0]);
	char *url_n = NULL, *models_n = NULL, *groups_n = NULL;
	char *mapping_n = NULL;
	char prio_buf[24], weight_buf[24], errbuf[ACCT_ADMIN_ERRBUF];
	char timeout_buf[N_TIMEOUTS][24];
	struct pg_result *res = NULL;
	const char *params[10 + N_TIMEOUTS];
	int64_t priority = 0, weight = 1;
	size_t len;
	pf_err err;
	int rc;

	rc = acct_admin_prepare(ctx, channel_add_usage, argc, argv, opts, n);
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	if (name[0] == '\0' || !acct_check_text(name, ACCT_CHANNEL_NAME_MAX))
		return acct_admin_usage_error(ctx, "invalid --name '%s'", name);
	if (strcmp(type, "openai") == 0)
		type = CHANNEL_OPENAI;
	else if (strcmp(type, "anthropic") == 0)
		type = CHANNEL_ANTHROPIC;
	else
		return acct_admin_usage_error(
		    ctx, "--type must be openai or anthropic, not '%s'", type);
	if (!acct_check_url(url, 0))
		return acct_admin_usage_error(ctx,
		    "--base-url must be an http:// or https:// URL, not '%s'",
		    url);
	/* Never echo a key, even a malformed one. */
	if (key != NULL
	    && (strlen(key) > PF_SECRET_MAX || acct_check_control(key)))
		return acct_admin_usage_error(
		    ctx, "%s", "--key is too long or has control characters");
	if (prio_s != NULL
	    && acct_parse_int(prio_s, INT64_MIN, INT64_MAX, &priority) != PF_OK)
		return acct_admin_usage_error(
		    ctx, "--priority must be an integer, not '%s'", prio_s);
	if (weight_s != NULL
	    && acct_parse_int(weight_s, 0, INT32_MAX, &weight) != PF_OK)
		return acct_admin_usage_error(ctx,
		    "--weight must be an integer 0..2147483647, not '%s'",
		    weight_s);
	/* Not echoed: a proxy URL may carry credentials. */
	if (proxy != NULL && proxy[0] != '\0' && !acct_check_url(proxy, 1))
		return acct_admin_usage_error(ctx, "%s",
		    "--proxy must be an http(s)://, socks4(a):// or "
		    "socks5(h):// URL");
	for (size_t i = 0; i < N_TIMEOUTS; i++) {
		const char *v = timeout_s[i];
		int64_t ms = 0;

		if (v != NULL && acct_parse_int(v, 0, INT32_MAX, &ms) != PF_OK)
			return acct_admin_usage_error(ctx,
			    "--%s must be milliseconds 0..2147483647, not '%s'",
			    timeout_opts[i], v);
		acct_admin_fmt_i64(timeout_buf[i], sizeof(timeout_buf[i]), ms);
		params[10 + i] = timeout_buf[i];
	}

	rc = ACCT_EXIT_USAGE;
	url_n = strdup(url);
	models_n = malloc(strlen(models) + 1);
	groups_n = malloc((groups != NULL ? strlen(groups) : 7) + 1);
	if (url_n == NULL || models_n == NULL || groups_n == NULL) {
		rc = acct_admin_fail(ctx, "out of memory");
		goto out;
	}
	len = strlen(url_n);
	while (len > 0 && url_n[len - 1] == '/')
		url_n[--len] = '\0';
	if (!acct_check_list(models, PF_MODEL_NAME_MAX, 0, models_n)) {
		acct_admin_usage_error(
		    ctx, "invalid --models list '%s'", models);
		goto out;
	}
	if (!acct_check_list(groups != NULL ? groups : "default",
	        ACCT_GROUP_MAX, 0, groups_n)) {
		acct_admin_usage_error(
		    ctx, "invalid --group list '%s'", groups);
		goto out;
	}
	if (mapping != NULL && !acct_check_model_mapping(mapping, &mapping_n)) {
		acct_admin_usage_error(ctx, "%s",
		    "--model-mapping must be a JSON object of model names "
		    "{\"asked\":\"sent\"}");
		goto out;
	}

	rc = ACCT_EXIT_FAIL;
	params[0] = name;
	params[1] = type;
	params[2] = url_n;
	params[3] = key != NULL ? key : "";
	params[4] = models_n;
	params[5] = groups_n;
	params[6] = acct_admin_fmt_i64(prio_buf, sizeof(prio_buf), priority);
	params[7] = acct_admin_fmt_i64(weight_buf, sizeof(weight_buf), weight);
	params[8] = mapping_n != NULL ? mapping_n : "";
	params[9] = proxy != NULL ? proxy : "";
	err = acct_admin_exec(
	    ctx, sql, 10 + N_TIMEOUTS, params, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		acct_admin_fail(ctx, errbuf);
		goto out;
	}
	printf("%s\n", acct_db_value(res, 0, 0));
	rc = ACCT_EXIT_OK;
out:
	acct_db_result_free(res);
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

int
acct_admin_channel_list(acct_admin_ctx *ctx, int argc, char **argv)
{
	static const char sql[]
	    = "SELECT id, name, CASE type WHEN 1 THEN 'openai'"
	      " WHEN 2 THEN 'anthropic' ELSE type::text END, status,"
	      " disabled_reason, models, \"group\", priority, weight"
	      " FROM channels ORDER BY id";

	return acct_admin_list(ctx, channel_list_usage, argc, argv, sql,
	    "id\tname\ttype\tstatus\tdisabled_reason\tmodels\tgroup\t"
	    "priority\tweight\n",
	    9);
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
set_channel_status(acct_admin_ctx *ctx, int argc, char **argv, int enable)
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
	const char *id_s, *reason = NULL;
	const acct_admin_opt opts[]
	    = { { "id", 1, 1, &id_s }, { "reason", 1, 0, &reason } };
	char id_buf[24], errbuf[ACCT_ADMIN_ERRBUF];
	struct pg_result *res = NULL;
	const char *params[2];
	int64_t id;
	pf_err err;
	int rc;

	/* channel-enable takes no --reason. */
	rc = acct_admin_prepare(ctx,
	    enable ? channel_enable_usage : channel_disable_usage, argc, argv,
	    opts, enable ? 1 : 2);
	if (rc != ACCT_ADMIN_GO_ON)
		return rc;
	if (acct_parse_int(id_s, 1, INT32_MAX, &id) != PF_OK)
		return acct_admin_usage_error(ctx, "invalid --id '%s'", id_s);
	if (reason == NULL)
		reason = "disabled by admin";
	if (!acct_check_text(reason, PF_ERROR_BODY_MAX))
		return acct_admin_usage_error(ctx, "%s",
		    "--reason is too long or has control characters");
	params[0] = acct_admin_fmt_i64(id_buf, sizeof(id_buf), id);
	params[1] = reason;
	err = acct_admin_exec(ctx, enable ? sql_enable : sql_disable,
	    enable ? 1 : 2, params, &res, errbuf, sizeof(errbuf));
	if (err != PF_OK)
		return acct_admin_fail(ctx, errbuf);
	rc = acct_db_rows(res) == 1 ? ACCT_EXIT_OK : ACCT_EXIT_FAIL;
	acct_db_result_free(res);
	if (rc != ACCT_EXIT_OK)
		fprintf(stderr, "planktonfly admin %s: no channel with id %s\n",
		    ctx->sub, params[0]);
	return rc;
}

int
acct_admin_channel_enable(acct_admin_ctx *ctx, int argc, char **argv)
{
	return set_channel_status(ctx, argc, argv, 1);
}

int
acct_admin_channel_disable(acct_admin_ctx *ctx, int argc, char **argv)
{
	return set_channel_status(ctx, argc, argv, 0);
}
