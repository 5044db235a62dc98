/*
 * config.c -- defaults, an INI file (libinih), then PF_* environment.
 *
 * One table describes every key: its name, where it lives in pf_config,
 * its type, range and default.  The loader, pf_config_set and the --help
 * text all walk that table, so a key cannot be settable but undocumented.
 *
 * Values of secret keys never appear in an error message; neither do the
 * values of unknown keys (a misspelt PF_DATABSE_URL still holds a secret).
 * Environment variables starting with PF_TEST_ belong to the test harness
 * (PF_TEST_DATABASE_URL, PF_TEST_REDIS_URL) and are ignored here, as are
 * the client-side variables scripts/demo prints for users to export
 * (PF_BASE_URL, PF_API_KEY, PF_MOCK_URL).
 */
#include "common/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "common/limits.h"

enum key_type { KEY_STR, KEY_U32, KEY_I64, KEY_LEVEL };

enum key_flags {
	KEY_SECRET = 1,   /* value never printed */
	KEY_NONEMPTY = 2, /* "" is an error */
	KEY_HOSTPORT = 4, /* host:port */
};

struct key {
	const char *name; /* without PF_ */
	enum key_type type;
	int flags;
	size_t off;
	int64_t min, max; /* integers */
	const char *def;  /* default, as text (parsed by pf_config_defaults) */
	const char *help;
};

#define OFF(f) offsetof(pf_config, f)
#define MS_MAX 86400000 /* one day */

static const struct key keys[] = {
	{ "LISTEN", KEY_STR, KEY_NONEMPTY | KEY_HOSTPORT, OFF(listen), 0, 0,
	    "127.0.0.1:3000", "client HTTP address, host:port" },
	{ "LISTEN_REUSEPORT", KEY_U32, 0, OFF(listen_reuseport), 0, 1, "0",
	    "1: SO_REUSEPORT on PF_LISTEN, so a new gateway can start beside "
	    "the old one for a handover (set on both; 0 = a second gateway "
	    "on the port fails to start)" },
	{ "DATABASE_URL", KEY_STR, KEY_SECRET, OFF(database_url), 0, 0, "",
	    "PostgreSQL conninfo or postgres:// URL (secret)" },
	{ "REDIS_URL", KEY_STR, KEY_SECRET, OFF(redis_url), 0, 0, "",
	    "redis://host:port[/db] (secret)" },
	{ "WORKER_URL", KEY_STR, KEY_NONEMPTY, OFF(worker_url), 0, 0,
	    "inproc://pf-worker",
	    "NNG URLs workers listen on, comma-separated" },
	{ "REPLY_URL", KEY_STR, KEY_NONEMPTY, OFF(reply_url), 0, 0,
	    "inproc://pf-reply", "NNG URL the ingress takes replies on" },
	{ "WORKER_CTL_URL", KEY_STR, 0, OFF(worker_ctl_url), 0, 0, "",
	    "NNG URL base of worker control sockets (\"\" = from WORKER_URL)" },
	{ "ACCOUNTANT_URL", KEY_STR, KEY_NONEMPTY, OFF(accountant_url), 0, 0,
	    "inproc://pf-accountant", "NNG URL of the accountant" },
	{ "ACCOUNTANT_PUB_URL", KEY_STR, KEY_NONEMPTY, OFF(accountant_pub_url),
	    0, 0, "inproc://pf-accountant-pub",
	    "NNG URL the accountant publishes balance changes on" },
	{ "ACCOUNTANT_LOG_DIR", KEY_STR, KEY_NONEMPTY, OFF(accountant_log_dir),
	    0, 0, "data/accountant",
	    "directory of the accountant's event log" },
	{ "SPOOL_DIR", KEY_STR, KEY_NONEMPTY, OFF(spool_dir), 0, 0,
	    "data/spool",
	    "directory of the ingress usage spool (one ingress per "
	    "directory)" },
	{ "SPOOL_SYNC_AFTER_MS", KEY_U32, 0, OFF(spool_sync_after_ms), 0, 60000,
	    "100",
	    "fdatasync the spool for events unacked this long after their "
	    "write (0 = at once)" },
	{ "BODY_MAX", KEY_U32, 0, OFF(body_max), 1, PF_BODY_MAX_CEILING,
	    "4194304", "client request body cap, bytes" },
	{ "HTTP_THREADS", KEY_U32, 0, OFF(http_threads), 1, 1024, "2",
	    "ingress HTTP threads" },
	{ "HTTP_CONN_MEMORY", KEY_U32, 0, OFF(http_conn_memory),
	    PF_HTTP_CONN_MEMORY_MIN, PF_HTTP_CONN_MEMORY_MAX, "4096",
	    "memory per client connection, bytes; bounds the request header "
	    "block (its bytes + 64 per header <= this - 256; larger gets "
	    "431)" },
	{ "SCHED_BATCH", KEY_U32, 0, OFF(sched_batch), 0, 1, "0",
	    "1: every thread of serve, ingress and worker runs under "
	    "SCHED_BATCH (a woken thread does not preempt its waker)" },
	{ "SERVE_FUSED", KEY_U32, 0, OFF(serve_fused), 0, 1, "1",
	    "serve: 1 = each of HTTP_THREADS threads runs an HTTP daemon and "
	    "the upstream transfers of its requests in one event loop (no "
	    "thread hand-off; WORKER_THREADS is not used); 0 = HTTP threads "
	    "hand requests to WORKER_THREADS transfer threads" },
	{ "WORKER_THREADS", KEY_U32, 0, OFF(worker_threads), 1, 1024, "1",
	    "upstream transfer threads per worker" },
	{ "UPSTREAM_OWN_CLIENT", KEY_U32, 0, OFF(upstream_own_client), 0, 1,
	    "1",
	    "1: plain http:// upstreams at an IP address (no proxy) use "
	    "Planktonfly's own HTTP/1.1 client; 0: libcurl for every "
	    "upstream (https, host names and proxies always use libcurl)" },
	{ "CONNECT_TIMEOUT_MS", KEY_U32, 0, OFF(connect_timeout_ms), 1, MS_MAX,
	    "5000", "upstream connect timeout" },
	{ "FIRST_BYTE_TIMEOUT_MS", KEY_U32, 0, OFF(first_byte_timeout_ms), 1,
	    MS_MAX, "60000", "upstream time to first byte" },
	{ "IDLE_TIMEOUT_MS", KEY_U32, 0, OFF(idle_timeout_ms), 1, MS_MAX,
	    "60000", "upstream silence between bytes" },
	{ "TOTAL_TIMEOUT_MS", KEY_U32, 0, OFF(total_timeout_ms), 1, MS_MAX,
	    "600000", "whole request deadline" },
	{ "CLIENT_TIMEOUT_S", KEY_U32, 0, OFF(client_timeout_s), 1, 86400, "30",
	    "idle client connection timeout, seconds" },
	{ "AUTH_CACHE_TTL_MS", KEY_U32, 0, OFF(auth_cache_ttl_ms), 0, MS_MAX,
	    "10000", "how long a token lookup is trusted (0 = no cache)" },
	{ "CHANNEL_REFRESH_MS", KEY_U32, 0, OFF(channel_refresh_ms), 1, MS_MAX,
	    "2000", "channel/routing snapshot reload interval" },
	{ "CHANNEL_FAIL_MAX", KEY_U32, 0, OFF(channel_fail_max), 0, 1000000,
	    "3", "failures in a row that auto-disable a channel (0 = never)" },
	{ "CHANNEL_PROBE_MS", KEY_U32, 0, OFF(channel_probe_ms), 0, MS_MAX,
	    "30000", "probe interval for auto-disabled channels (0 = never)" },
	{ "QUOTA_PER_UNIT", KEY_I64, 0, OFF(quota_per_unit), 1,
	    INT64_C(1000000000000), "500000", "quota units per USD" },
	{ "LOG_LEVEL", KEY_LEVEL, 0, OFF(log_level), 0, 0, "info",
	    "debug|info|warn|error" },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const level_names[] = { "debug", "info", "warn", "error" };

__attribute__((format(printf, 3, 4))) static void
errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static int
has_prefix(const char *s, size_t len)
{
	return len >= 3 && strncasecmp(s, "PF_", 3) == 0;
}

/* Finds the key named by name[0..len) ("PF_" optional, any case). */
static const struct key *
find_key(const char *name, size_t len)
{
	if (has_prefix(name, len)) {
		name += 3;
		len -= 3;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		if (strlen(keys[i].name) == len
		    && strncasecmp(keys[i].name, name, len) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Parses a whole decimal integer in [min, max]. */
static int
parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end = NULL;
	long long v;

	/* strtoll skips leading space and takes a sign; we want digits. */
	if (s[0] < '0' || s[0] > '9') {
		if (!(s[0] == '-' && s[1] >= '0' && s[1] <= '9'))
			return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return -1;
	if (errno == ERANGE || v < min || v > max)
		return -2;
	*ret = v;
	return 0;
}

static int
valid_hostport(const char *s)
{
	const char *colon = strrchr(s, ':');
	int64_t port;

	if (colon == NULL || colon == s)
		return 0;
	return parse_int(colon + 1, 0, 65535, &port) == 0;
}

static pf_err
apply(pf_config *cfg, const struct key *k, const char *value, char *errbuf,
    size_t errlen)
{
	char *field = (char *)cfg + k->off;
	size_t vlen = strlen(value);
	int64_t v = 0;
	int rc;

	switch (k->type) {
	case KEY_STR:
		if (vlen >= PF_CONFIG_STR) {
			errf(errbuf, errlen,
			    "PF_%s: value too long (max %u bytes)", k->name,
			    PF_CONFIG_STR - 1);
			return PF_ECONFIG;
		}
		if ((k->flags & KEY_NONEMPTY) && vlen == 0) {
			errf(errbuf, errlen, "PF_%s: must not be empty",
			    k->name);
			return PF_ECONFIG;
		}
		if ((k->flags & KEY_HOSTPORT) && !valid_hostport(value)) {
			errf(errbuf, errlen,
			    "PF_%s: expected host:port with a port 0-65535, "
			    "got '%.*s'",
			    k->name, 200, value);
			return PF_ECONFIG;
		}
		memcpy(field, value, vlen + 1);
		return PF_OK;
	case KEY_U32:
	case KEY_I64:
		rc = parse_int(value, k->min, k->max, &v);
		if (rc == -1) {
			errf(errbuf, errlen, "PF_%s: not an integer: '%.*s'",
			    k->name, 64, value);
			return PF_ECONFIG;
		}
		if (rc == -2) {
			errf(errbuf, errlen,
			    "PF_%s: out of range (%" PRId64 "..%" PRId64
			    "): '%.*s'",
			    k->name, k->min, k->max, 64, value);
			return PF_ECONFIG;
		}
		if (k->type == KEY_U32) {
			uint32_t u = (uint32_t)v;
			memcpy(field, &u, sizeof(u));
		} else {
			memcpy(field, &v, sizeof(v));
		}
		return PF_OK;
	case KEY_LEVEL:
		for (size_t i = 0; i < 4; i++) {
			if (strcasecmp(value, level_names[i]) == 0) {
				pf_log_level l = (pf_log_level)i;
				memcpy(field, &l, sizeof(l));
				return PF_OK;
			}
		}
		errf(errbuf, errlen,
		    "PF_%s: expected debug|info|warn|error, got '%.*s'",
		    k->name, 64, value);
		return PF_ECONFIG;
	}
	return PF_ECONFIG;
}

void
pf_config_defaults(pf_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++) {
		pf_err err = apply(cfg, &keys[i], keys[i].def, NULL, 0);
		(void)err; /* the table's defaults are tested to parse */
	}
}

pf_err
pf_config_set(pf_config *cfg, const char *key, const char *value, char *errbuf,
    size_t errlen)
{
	const struct key *k;

	if (cfg == NULL || key == NULL || value == NULL) {
		errf(errbuf, errlen, "config: missing key or value");
		return PF_ECONFIG;
	}
	k = find_key(key, strlen(key));
	if (k == NULL) {
		errf(errbuf, errlen, "unknown configuration key '%.*s'", 64,
		    key);
		return PF_ECONFIG;
	}
	return apply(cfg, k, value, errbuf, errlen);
}

struct file_ctx {
	pf_config *cfg;
	const char *path;
	pf_err err;
	char *errbuf;
	size_t errlen;
	const char *next; /* reader position in the file text */
	int lineno;       /* line the reader returned last */
};

/* An fgets-style reader over the file text that counts lines, so errors
 * name the line of the offending key. */
static char *
read_line(char *str, int num, void *stream)
{
	struct file_ctx *fc = stream;
	size_t n = 0;

	if (*fc->next == '\0' || num < 2)
		return NULL;
	while (n < (size_t)num - 1 && fc->next[n] != '\0') {
		if (fc->next[n++] == '\n')
			break;
	}
	memcpy(str, fc->next, n);
	str[n] = '\0';
	fc->next += n;
	fc->lineno++;
	return str;
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct file_ctx *fc = user;
	int lineno = fc->lineno;
	char msg[512];
	pf_err err;

	(void)section; /* keys are valid in any section */
	if (fc->err != PF_OK)
		return 1; /* keep the first error */
	err = pf_config_set(fc->cfg, name, value, msg, sizeof(msg));
	if (err != PF_OK) {
		fc->err = err;
		errf(
		    fc->errbuf, fc->errlen, "%s:%d: %s", fc->path, lineno, msg);
		return 0;
	}
	return 1;
}

/* Reads the whole file, capped at PF_CONFIG_FILE_MAX; NUL-terminated. */
static pf_err
read_file(const char *path, char **ret, char *errbuf, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *data;
	size_t n;

	if (f == NULL) {
		errf(errbuf, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return PF_EIO;
	}
	data = malloc(PF_CONFIG_FILE_MAX + 2);
	if (data == NULL) {
		fclose(f);
		return PF_ENOMEM;
	}
	n = fread(data, 1, PF_CONFIG_FILE_MAX + 1, f);
	if (ferror(f)) {
		errf(errbuf, errlen, "%s: read error", path);
		fclose(f);
		free(data);
		return PF_EIO;
	}
	fclose(f);
	if (n > PF_CONFIG_FILE_MAX) {
		errf(errbuf, errlen, "%s: larger than %u bytes", path,
		    PF_CONFIG_FILE_MAX);
		free(data);
		return PF_ECONFIG;
	}
	data[n] = '\0';
	if (memchr(data, '\0', n) != NULL) {
		errf(errbuf, errlen, "%s: contains a NUL byte", path);
		free(data);
		return PF_ECONFIG;
	}
	*ret = data;
	return PF_OK;
}

/* libinih splits a line longer than its buffer into two lines, which could
 * turn the tail of a value into a key; refuse such lines up front. */
static pf_err
check_lines(const char *path, const char *data, char *errbuf, size_t errlen)
{
	const size_t max = INI_MAX_LINE - 3;
	int lineno = 1;

	while (*data != '\0') {
		size_t n = strcspn(data, "\n");
		if (n > max) {
			errf(errbuf, errlen,
			    "%s:%d: line longer than %zu bytes (set long "
			    "values "
			    "through the environment)",
			    path, lineno, max);
			return PF_ECONFIG;
		}
		data += n;
		if (*data == '\n')
			data++;
		lineno++;
	}
	return PF_OK;
}

static pf_err
load_file(pf_config *cfg, const char *path, char *errbuf, size_t errlen)
{
	struct file_ctx fc = { cfg, path, PF_OK, errbuf, errlen, NULL, 0 };
	char *data = NULL;
	pf_err err;
	int rc;

	err = read_file(path, &data, errbuf, errlen);
	if (err != PF_OK)
		return err;
	err = check_lines(path, data, errbuf, errlen);
	if (err != PF_OK) {
		free(data);
		return err;
	}
	fc.next = data;
	rc = ini_parse_stream(read_line, &fc, ini_cb, &fc);
	free(data);
	if (fc.err != PF_OK)
		return fc.err;
	if (rc != 0) {
		errf(errbuf, errlen,
		    "%s:%d: syntax error (expected key = value)", path, rc);
		return PF_ECONFIG;
	}
	return PF_OK;
}

/* Variables the demo prints for clients (curl, SDKs) to use; a user who
 * exports them must still be able to start the server from that shell. */
static int
is_client_variable(const char *kv, size_t klen)
{
	static const char *const names[]
	    = { "PF_BASE_URL", "PF_API_KEY", "PF_MOCK_URL" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == klen
		    && strncasecmp(kv, names[i], klen) == 0)
			return 1;
	}
	return 0;
}

static pf_err
load_env(pf_config *cfg, char *const *envp, char *errbuf, size_t errlen)
{
	if (envp == NULL)
		return PF_OK;
	for (size_t i = 0; envp[i] != NULL; i++) {
		const char *kv = envp[i];
		const char *eq = strchr(kv, '=');
		size_t klen;
		const struct key *k;
		char msg[512];
		pf_err err;

		if (eq == NULL)
			continue;
		klen = (size_t)(eq - kv);
		if (!has_prefix(kv, klen))
			continue;
		if (klen >= 8 && strncasecmp(kv, "PF_TEST_", 8) == 0)
			continue;
		if (is_client_variable(kv, klen))
			continue;
		k = find_key(kv, klen);
		if (k == NULL) {
			errf(errbuf, errlen,
			    "unknown environment variable %.*s (see --help)",
			    (int)(klen < 64 ? klen : 64), kv);
			return PF_ECONFIG;
		}
		err = apply(cfg, k, eq + 1, msg, sizeof(msg));
		if (err != PF_OK) {
			errf(errbuf, errlen, "environment: %s", msg);
			return err;
		}
	}
	return PF_OK;
}

pf_err
pf_config_load(const char *path, char *const *envp, pf_config *ret_cfg,
    char *errbuf, size_t errlen)
{
	pf_config *cfg;
	pf_err err;

	if (ret_cfg == NULL)
		return PF_EINVAL;
	/* pf_config is ~3 KB; build it aside so ret_cfg is written only on
	 * success. */
	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL)
		return PF_ENOMEM;
	pf_config_defaults(cfg);
	if (path != NULL) {
		err = load_file(cfg, path, errbuf, errlen);
		if (err != PF_OK)
			goto out;
	}
	err = load_env(cfg, envp, errbuf, errlen);
	if (err != PF_OK)
		goto out;
	*ret_cfg = *cfg;
out:
	free(cfg);
	return err;
}

/* named: whether key is in names (NULL: every key is). */
static int
named(const struct key *k, const char *const *names)
{
	if (names == NULL)
		return 1;
	for (; *names != NULL; names++)
		if (strcmp(*names, k->name) == 0)
			return 1;
	return 0;
}

void
pf_config_usage_some(FILE *f, const char *const *names)
{
	fprintf(f,
	    "Configuration: --config FILE (INI; keys without PF_, any "
	    "section), then PF_* environment variables.\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (named(k, names))
			fprintf(f, "  PF_%-22s %s (default: %s)\n", k->name,
			    k->help, k->def[0] != '\0' ? k->def : "empty");
	}
}

void
pf_config_usage(FILE *f)
{
	pf_config_usage_some(f, NULL);
}
