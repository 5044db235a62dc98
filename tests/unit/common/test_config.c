/*
 * test_config.c -- configuration sources, errors and secrecy; log lines
 * and URL redaction; ids, hex and SHA-256.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "tests/tap.h"

static char tmpdir[] = "/tmp/pf-test-config-XXXXXX";

/* Writes text to a fresh file under tmpdir; returns its path (static). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

static pf_err
load(const char *path, char *const *envp, pf_config *cfg, char *err,
    size_t errlen)
{
	err[0] = '\0';
	return pf_config_load(path, envp, cfg, err, errlen);
}

static void
test_defaults(void)
{
	char *const env[] = { "HOME=/root", "PATH=/bin",
		"PF_TEST_DATABASE_URL=x", "PF_TEST_REDIS_URL=y",
		"PF_BASE_URL=http://h/v1", "PF_API_KEY=sk-x",
		"PF_MOCK_URL=http://m/v1", "NOEQUALS", NULL };
	pf_config c;
	char err[512];

	ok(load(NULL, env, &c, err, sizeof(err)) == PF_OK,
	    "defaults load; non-PF_, PF_TEST_ and client variables ignored "
	    "(%s)",
	    err);
	ok(strcmp(c.listen, "127.0.0.1:3000") == 0, "listen default");
	ok(strcmp(c.worker_url, "inproc://pf-worker") == 0
	        && strcmp(c.reply_url, "inproc://pf-reply") == 0
	        && strcmp(c.accountant_url, "inproc://pf-accountant") == 0,
	    "NNG URL defaults");
	ok(c.database_url[0] == '\0' && c.redis_url[0] == '\0',
	    "database_url and redis_url empty by default");
	ok(c.body_max == PF_BODY_MAX_DEFAULT, "body_max default");
	ok(c.http_threads == 2 && c.worker_threads == 1, "thread defaults");
	ok(c.http_conn_memory == PF_HTTP_CONN_MEMORY_DEFAULT,
	    "http_conn_memory default (the \"4096\" of the key table)");
	ok(c.sched_batch == 0, "threads keep the default policy by default");
	ok(c.connect_timeout_ms == 5000 && c.first_byte_timeout_ms == 60000
	        && c.idle_timeout_ms == 60000 && c.total_timeout_ms == 600000,
	    "timeout defaults");
	ok(c.client_timeout_s == 30 && c.auth_cache_ttl_ms == 10000
	        && c.channel_refresh_ms == 2000,
	    "client/cache/refresh defaults");
	ok(c.quota_per_unit == 500000 && c.log_level == PF_LOG_INFO,
	    "quota_per_unit and log_level defaults");
	{
		pf_config d;
		pf_config_defaults(&d);
		ok(memcmp(&c, &d, sizeof(c)) == 0,
		    "pf_config_defaults matches an empty load");
	}
}

static void
test_file_and_env(void)
{
	const char *path = write_file("good.ini",
	    "; comment\n"
	    "# another\n"
	    "listen = 0.0.0.0:8080\n"
	    "[relay]\n"
	    "Body_Max = 1024\n"
	    "PF_HTTP_THREADS = 4\n"
	    "log_level = DEBUG\n"
	    "database_url = host=localhost dbname=pf\n");
	char *const env[]
	    = { "PF_LISTEN=127.0.0.1:9999", "pf_worker_threads=3", NULL };
	pf_config c;
	char err[512];

	ok(load(path, env, &c, err, sizeof(err)) == PF_OK, "file loads (%s)",
	    err);
	ok(strcmp(c.listen, "127.0.0.1:9999") == 0, "env overrides file");
	ok(c.body_max == 1024, "file key in any case and section");
	ok(c.http_threads == 4, "PF_ prefix allowed in the file");
	ok(c.log_level == PF_LOG_DEBUG, "log level case-insensitive");
	ok(c.worker_threads == 3, "env key case-insensitive");
	ok(strcmp(c.database_url, "host=localhost dbname=pf") == 0,
	    "value with spaces");
	ok(pf_config_set(&c, "quota_per_unit", "1000", err, sizeof(err))
	            == PF_OK
	        && c.quota_per_unit == 1000,
	    "pf_config_set without prefix");
}

static int
contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static void
test_errors(void)
{
	static const struct {
		const char *kv;
		const char *named;
	} bad[] = {
		{ "PF_NOPE=1", "PF_NOPE" },
		{ "PF_BODY_MAX=12x", "PF_BODY_MAX" },
		{ "PF_BODY_MAX=", "PF_BODY_MAX" },
		{ "PF_BODY_MAX= 5", "PF_BODY_MAX" },
		{ "PF_BODY_MAX=+5", "PF_BODY_MAX" },
		{ "PF_BODY_MAX=0x10", "PF_BODY_MAX" },
		{ "PF_BODY_MAX=67108865", "PF_BODY_MAX" },
		{ "PF_BODY_MAX=-1", "PF_BODY_MAX" },
		{ "PF_HTTP_THREADS=0", "PF_HTTP_THREADS" },
		{ "PF_HTTP_CONN_MEMORY=4095", "PF_HTTP_CONN_MEMORY" },
		{ "PF_HTTP_CONN_MEMORY=262145", "PF_HTTP_CONN_MEMORY" },
		{ "PF_CONNECT_TIMEOUT_MS=99999999999999999999",
		    "PF_CONNECT_TIMEOUT_MS" },
		{ "PF_QUOTA_PER_UNIT=0", "PF_QUOTA_PER_UNIT" },
		{ "PF_LOG_LEVEL=verbose", "PF_LOG_LEVEL" },
		{ "PF_LISTEN=localhost", "PF_LISTEN" },
		{ "PF_LISTEN=localhost:70000", "PF_LISTEN" },
		{ "PF_WORKER_URL=", "PF_WORKER_URL" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *const env[] = { (char *)bad[i].kv, NULL };
		pf_config c;
		pf_err e;

		memset(&c, 0xa5, sizeof(c));
		e = load(NULL, env, &c, err, sizeof(err));
		ok(e == PF_ECONFIG && contains(err, bad[i].named)
		        && ((unsigned char *)&c)[0] == 0xa5,
		    "%s -> ECONFIG naming the key, cfg untouched: %s",
		    bad[i].kv, err);
	}
	{
		char *const env[] = { "PF_BODY_MAX=67108864", NULL };
		pf_config c;
		ok(load(NULL, env, &c, err, sizeof(err)) == PF_OK
		        && c.body_max == PF_BODY_MAX_CEILING,
		    "body_max at the ceiling accepted");
	}
}

static void
test_file_errors(void)
{
	pf_config c;
	char err[512];
	char path[256];
	const char *p;
	pf_err e;

	snprintf(path, sizeof(path), "%s/missing.ini", tmpdir);
	e = load(path, NULL, &c, err, sizeof(err));
	ok(e == PF_EIO && contains(err, "missing.ini"),
	    "missing file -> EIO naming it: %s", err);

	p = write_file(
	    "unknown.ini", "listen = 127.0.0.1:1\n\nfrobnicate = 1\n");
	e = load(p, NULL, &c, err, sizeof(err));
	ok(e == PF_ECONFIG && contains(err, "frobnicate")
	        && contains(err, "unknown.ini:3"),
	    "unknown file key -> ECONFIG with file:line: %s", err);

	p = write_file("badint.ini", "[x]\nidle_timeout_ms = 10s\n");
	e = load(p, NULL, &c, err, sizeof(err));
	ok(e == PF_ECONFIG && contains(err, "PF_IDLE_TIMEOUT_MS")
	        && contains(err, "badint.ini:2"),
	    "malformed int in file: %s", err);

	p = write_file("syntax.ini", "listen = 127.0.0.1:1\njust words\n");
	e = load(p, NULL, &c, err, sizeof(err));
	ok(e == PF_ECONFIG && contains(err, "syntax.ini:2"),
	    "syntax error names the line: %s", err);

	{
		char text[400];
		memset(text, 'a', sizeof(text));
		memcpy(text, "listen=", 7);
		text[sizeof(text) - 2] = '\n';
		text[sizeof(text) - 1] = '\0';
		p = write_file("long.ini", text);
		e = load(p, NULL, &c, err, sizeof(err));
		ok(e == PF_ECONFIG && contains(err, "long.ini:1"),
		    "over-long line rejected, not split: %s", err);
	}
	{
		char *big = malloc(PF_CONFIG_FILE_MAX + 10);
		memset(big, '\n', PF_CONFIG_FILE_MAX + 9);
		big[PF_CONFIG_FILE_MAX + 9] = '\0';
		p = write_file("big.ini", big);
		free(big);
		e = load(p, NULL, &c, err, sizeof(err));
		ok(e == PF_ECONFIG && contains(err, "big.ini"),
		    "file over PF_CONFIG_FILE_MAX rejected: %s", err);
	}
	e = load(tmpdir, NULL, &c, err, sizeof(err));
	ok(e == PF_EIO || e == PF_ECONFIG, "a directory is not a config file");
}

static void
test_secrets(void)
{
	char big[PF_CONFIG_STR + 20];
	char kv[PF_CONFIG_STR + 64];
	char err[512];
	pf_config c;

	memset(big, 'S', sizeof(big));
	memcpy(big, "hunter2", 7);
	big[sizeof(big) - 1] = '\0';
	snprintf(kv, sizeof(kv), "PF_DATABASE_URL=%s", big);
	{
		char *const env[] = { kv, NULL };
		ok(load(NULL, env, &c, err, sizeof(err)) == PF_ECONFIG
		        && contains(err, "PF_DATABASE_URL")
		        && !contains(err, "hunter2"),
		    "too-long secret: key named, value not shown: %s", err);
	}
	{
		char *const env[]
		    = { "PF_DATABSE_URL=postgres://u:hunter2@h/d", NULL };
		ok(load(NULL, env, &c, err, sizeof(err)) == PF_ECONFIG
		        && contains(err, "PF_DATABSE_URL")
		        && !contains(err, "hunter2"),
		    "misspelt key: value not shown: %s", err);
	}
	{
		const char *p = write_file("secret.ini",
		    "redis_url = redis://:hunter2@127.0.0.1:1\nbogus = "
		    "hunter2\n");
		ok(load(p, NULL, &c, err, sizeof(err)) == PF_ECONFIG
		        && !contains(err, "hunter2"),
		    "file error does not echo values: %s", err);
	}
	{
		FILE *f = tmpfile();
		char text[8192];
		size_t n;

		pf_config_usage(f);
		rewind(f);
		n = fread(text, 1, sizeof(text) - 1, f);
		text[n] = '\0';
		fclose(f);
		ok(contains(text, "PF_LISTEN")
		        && contains(text, "127.0.0.1:3000")
		        && contains(text, "PF_DATABASE_URL")
		        && contains(text, "PF_REDIS_URL")
		        && contains(text, "PF_WORKER_URL")
		        && contains(text, "PF_REPLY_URL")
		        && contains(text, "PF_ACCOUNTANT_URL")
		        && contains(text, "PF_BODY_MAX")
		        && contains(text, "4194304")
		        && contains(text, "PF_HTTP_THREADS")
		        && contains(text, "PF_WORKER_THREADS")
		        && contains(text, "PF_CONNECT_TIMEOUT_MS")
		        && contains(text, "PF_FIRST_BYTE_TIMEOUT_MS")
		        && contains(text, "PF_IDLE_TIMEOUT_MS")
		        && contains(text, "PF_TOTAL_TIMEOUT_MS")
		        && contains(text, "PF_CLIENT_TIMEOUT_S")
		        && contains(text, "PF_AUTH_CACHE_TTL_MS")
		        && contains(text, "PF_CHANNEL_REFRESH_MS")
		        && contains(text, "PF_QUOTA_PER_UNIT")
		        && contains(text, "500000")
		        && contains(text, "PF_LOG_LEVEL"),
		    "usage lists every key with its default");
	}
}

static void
test_redact(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "postgres://user:hunter2@localhost:5432/db",
		    "postgres://***@localhost:5432/db" },
		{ "redis://:hunter2@127.0.0.1:6379/0",
		    "redis://***@127.0.0.1:6379/0" },
		{ "host=localhost password=hunter2 user=x",
		    "host=localhost password=*** user=x" },
		{ "host=h password = 'a b\\' hunter2' dbname=d",
		    "host=h password = *** dbname=d" },
		{ "PASSWORD=hunter2", "PASSWORD=***" },
		{ "host=h password=hun&ter#2 x=y", "host=h password=*** x=y" },
		{ "postgresql://h/db?user=u&password=hunter2&sslmode=disable",
		    "postgresql://h/db?user=u&password=***&sslmode=disable" },
		{ "redis://127.0.0.1:6379", "redis://127.0.0.1:6379" },
		{ "redis://:pa/ss@127.0.0.1", "redis://***@127.0.0.1" },
		{ "http://a/b@c", "http://***@c" },
		{ "host=x sslpassword=hunter2", "host=x sslpassword=***" },
		{ "passwords are fine", "passwords are fine" },
		{ "", "" },
	};
	char out[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pf_log_redact_url(cases[i].in, out, sizeof(out));
		ok(strcmp(out, cases[i].out) == 0, "redact \"%s\" -> \"%s\"",
		    cases[i].in, out);
	}
	pf_log_redact_url("postgres://user:hunter2@localhost/db", out, 12);
	ok(strlen(out) == 11 && !contains(out, "hunter2"),
	    "redaction truncates to outlen: %s", out);
}

static void
test_quote(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain", "plain" },
		{ "", "\"\"" },
		{ "two words", "\"two words\"" },
		{ "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "x=y", "\"x=y\"" },
		{ "line\nbreak\x1b", "\"line\\x0abreak\\x1b\"" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pf_log_quote(
		    cases[i].in, strlen(cases[i].in), out, sizeof(out));
		ok(strcmp(out, cases[i].out) == 0, "quote -> %s", out);
	}
	pf_log_quote("a long value with spaces", 24, out, 12);
	ok(strcmp(out, "\"a long...\"") == 0, "quote cut to outlen: %s", out);
	pf_log_quote("abcdefgh", 8, out, 5);
	ok(strcmp(out, "") == 0, "no room at all -> empty");
}

/* Runs fn with stderr redirected to a file and returns what it wrote. */
static size_t
capture_stderr(void (*fn)(void), char *buf, size_t len)
{
	char path[256];
	int fd, saved;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	saved = dup(2);
	dup2(fd, 2);
	fn();
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void
log_some(void)
{
	char big[6000];

	memset(big, 'v', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	pf_log_set_level(PF_LOG_WARN);
	pf_info("PF-TEST-HIDDEN", "x=%d", 1);
	pf_warn("PF-TEST-SHOWN", "key=%s n=%d", "value", 7);
	pf_error("PF-TEST-LONG", "big=%s", big);
	pf_warn("PF-TEST-INJECT", "v=%s", "a\nfake 2026 error PF-X\r\x1b[2J");
	pf_log_set_level(PF_LOG_INFO);
}

static void
test_log(void)
{
	char buf[16384];
	size_t n = capture_stderr(log_some, buf, sizeof(buf));
	char *second, *third;

	ok(!contains(buf, "PF-TEST-HIDDEN"), "below-level line dropped");
	ok(contains(buf, " warn PF-TEST-SHOWN key=value n=7\n"),
	    "line format: level, ID, key=value: %.*s",
	    (int)(strcspn(buf, "\n") < 80 ? strcspn(buf, "\n") : 80), buf);
	ok(buf[4] == '-' && buf[10] == 'T' && contains(buf, "Z warn"),
	    "line starts with a UTC timestamp");
	second = strchr(buf, '\n');
	third = second != NULL ? strchr(second + 1, '\n') : NULL;
	ok(third != NULL && contains(second + 1, " error PF-TEST-LONG big=v")
	        && third - second <= 4096 && memcmp(third - 3, "...", 3) == 0,
	    "an over-long line is cut to one line ending in ...");
	ok(third != NULL && strchr(third + 1, '\n') == buf + n - 1
	        && contains(third + 1,
	            " warn PF-TEST-INJECT v=a?fake 2026 error PF-X??[2J\n"),
	    "control bytes in values cannot start a new line");
	ok(pf_log_enabled(PF_LOG_INFO) && !pf_log_enabled(PF_LOG_DEBUG),
	    "pf_log_enabled follows the level");
}

static void
test_ids(void)
{
	static const uint8_t raw[] = { 0x00, 0x7f, 0x80, 0xff, 0xab };
	uint8_t a[PF_ID_LEN], b[PF_ID_LEN], back[5] = { 0 };
	char hex[PF_ID_HEX_LEN + 1];
	char sha[65];

	ok(pf_id_new(a) == PF_OK && pf_id_new(b) == PF_OK
	        && memcmp(a, b, PF_ID_LEN) != 0,
	    "two ids differ");
	/* ids made in one burst share their first bytes (the clock): their
	 * hashes must not (4096 random hashes fill ~2590 of 4096 buckets) */
	{
		static uint8_t seen[4096];
		unsigned used = 0;
		for (int i = 0; i < 4096; i++) {
			uint8_t id[PF_ID_LEN];
			if (pf_id_new(id) != PF_OK)
				break;
			unsigned k = pf_id_hash(id) & 4095u;
			used += !seen[k];
			seen[k] = 1;
		}
		ok(used > 2000,
		    "a burst of ids spreads over buckets (%u of 4096)", used);
	}
	pf_hex_encode(a, PF_ID_LEN, hex);
	ok(strlen(hex) == 32, "id hex is 32 chars");
	pf_hex_encode(raw, sizeof(raw), hex);
	ok(strcmp(hex, "007f80ffab") == 0, "hex encode lower-case");
	ok(pf_hex_decode("007F80FFab", 10, back, 5) == PF_OK
	        && memcmp(back, raw, 5) == 0,
	    "hex decode either case");
	memset(back, 0x11, sizeof(back));
	ok(pf_hex_decode("007f80ffa", 9, back, 5) == PF_EINVAL
	        && pf_hex_decode("007f80ffag", 10, back, 5) == PF_EINVAL
	        && pf_hex_decode("007f80ffab00", 12, back, 5) == PF_EINVAL
	        && back[0] == 0x11,
	    "hex decode rejects odd, non-hex, wrong length; out untouched");
	ok(pf_sha256_hex("abc", 3, sha) == PF_OK
	        && strcmp(sha,
	               "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff"
	               "61f20015ad")
	            == 0,
	    "sha256(abc)");
	ok(pf_sha256_hex("", 0, sha) == PF_OK
	        && strcmp(sha,
	               "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca49599"
	               "1b7852b855")
	            == 0,
	    "sha256 of nothing");
	ok(pf_random_bytes(a, 0) == PF_OK, "zero random bytes");
}

/* sched_of runs pf_cli_set_sched on a thread of its own (the test's
 * threads keep their policy) and returns the policy it left there. */
static void *
sched_thread(void *arg)
{
	pf_cli_set_sched(arg);
	return (void *)(intptr_t)sched_getscheduler(0);
}

static int
sched_of(const pf_config *cfg)
{
	pthread_t t;
	void *ret = (void *)(intptr_t)-1;

	if (pthread_create(&t, NULL, sched_thread, (void *)cfg) != 0)
		return -1;
	pthread_join(t, &ret);
	return (int)(intptr_t)ret;
}

/* PF_SCHED_BATCH: SCHED_BATCH for the calling thread, else left alone. */
static void
test_sched(void)
{
	pf_config c;

	pf_config_defaults(&c);
	ok(sched_of(&c) == sched_getscheduler(0),
	    "PF_SCHED_BATCH=0 leaves the inherited policy");
	c.sched_batch = 1;
	ok(sched_of(&c) == SCHED_BATCH, "PF_SCHED_BATCH=1 sets SCHED_BATCH");
}

int
main(void)
{
	char cmd[300];

	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	test_defaults();
	test_sched();
	test_file_and_env();
	test_errors();
	test_file_errors();
	test_secrets();
	test_redact();
	test_quote();
	test_log();
	test_ids();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		ok(0, "cleanup %s", tmpdir);
	return tap_done();
}
