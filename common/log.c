/*
 * log.c -- one line per call, written with a single write(2) so lines from
 * different threads never interleave.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

/* The one process-wide setting cmd/ writes before threads start; atomic so
 * a late reader never sees a torn value. */
static atomic_int log_min_level = PF_LOG_INFO;

static const char *const level_names[] = {
	[PF_LOG_DEBUG] = "debug",
	[PF_LOG_INFO] = "info",
	[PF_LOG_WARN] = "warn",
	[PF_LOG_ERROR] = "error",
};

void
pf_log_set_level(pf_log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

int
pf_log_enabled(pf_log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

void
pf_log(pf_log_level level, const char *id, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t len;
	int n;
	va_list ap;

	if (!pf_log_enabled(level))
		return;
	if ((unsigned)level > PF_LOG_ERROR)
		level = PF_LOG_ERROR;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000L, level_names[level], id != NULL ? id : "-");
	if (n < 0)
		return;
	len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n;
	if (len > sizeof(line) - 1)
		len = sizeof(line) - 1;
	/* One call, one line: a value carrying a newline or an escape
	 * sequence must not forge or garble lines. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			line[i] = '?';
	}
	/* Leave room for the newline; a truncated line ends in "...". */
	if (len > sizeof(line) - 2) {
		len = sizeof(line) - 2;
		memcpy(line + len - 3, "...", 3);
	}
	line[len++] = '\n';
	{
		size_t off = 0;
		while (off < len) {
			ssize_t w = write(STDERR_FILENO, line + off, len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
}

void
pf_log_quote(const char *s, size_t len, char *out, size_t outlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t pos = 0, i;
	int plain = len > 0;

	if (out == NULL || outlen == 0)
		return;
	for (i = 0; i < len && plain; i++) {
		unsigned char c = (unsigned char)s[i];
		plain
		    = c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
	}
	if (plain && len < outlen) {
		memcpy(out, s, len);
		out[len] = '\0';
		return;
	}
	/* Quoted; keep room for the closing quote, "..." and the NUL. */
	if (outlen < 6) {
		out[0] = '\0';
		return;
	}
	out[pos++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4];
		size_t n = 1;

		esc[0] = (char)c;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c == 0x7f) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = digits[c >> 4];
			esc[3] = digits[c & 0x0f];
			n = 4;
		}
		if (pos + n > outlen - 5) {
			memcpy(out + pos, "...", 3);
			pos += 3;
			break;
		}
		memcpy(out + pos, esc, n);
		pos += n;
	}
	out[pos++] = '"';
	out[pos] = '\0';
}

/* Appends n bytes of s to out at *pos, keeping room for the NUL. */
static void
put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
	size_t room = outlen - 1 - *pos;

	if (n > room)
		n = room;
	memcpy(out + *pos, s, n);
	*pos += n;
}

/* Length of a value starting at v: a single-quoted conninfo string with
 * backslash escapes, else up to whitespace (and, in a URL query, up to
 * '&' or '#'). */
static size_t
value_len(const char *v, int in_url)
{
	size_t i = 0;

	if (v[0] == '\'') {
		for (i = 1; v[i] != '\0' && v[i] != '\''; i++) {
			if (v[i] == '\\' && v[i + 1] != '\0')
				i++;
		}
		return v[i] == '\'' ? i + 1 : i;
	}
	while (v[i] != '\0' && v[i] != ' ' && v[i] != '\t' && v[i] != '\n'
	    && !(in_url && (v[i] == '&' || v[i] == '#')))
		i++;
	return i;
}

void
pf_log_redact_url(const char *url, char *out, size_t outlen)
{
	static const char pw[] = "password";
	size_t pos = 0, i = 0, at = 0;
	const char *scheme;

	if (out == NULL || outlen == 0)
		return;
	if (url == NULL) {
		out[0] = '\0';
		return;
	}
	scheme = strstr(url, "://");
	if (scheme != NULL) {
		size_t start = (size_t)(scheme - url) + 3;

		/* The userinfo ends at the last '@'.  Passwords with a raw
		 * '/', '?' or '#' are common enough that we do not stop at
		 * the path: hiding a path segment is the lesser harm. */
		for (size_t k = start; url[k] != '\0'; k++) {
			if (url[k] == '@')
				at = k;
		}
		if (at != 0) {
			put(out, outlen, &pos, url, start);
			put(out, outlen, &pos, "***", 3);
			i = at;
		}
	}
	while (url[i] != '\0') {
		size_t k = i + sizeof(pw) - 1;

		/* "password", "sslpassword", "PGPASSWORD" ... = value */
		if (strncasecmp(url + i, pw, sizeof(pw) - 1) == 0) {
			while (url[k] == ' ')
				k++;
			if (url[k] == '=') {
				k++;
				while (url[k] == ' ')
					k++;
				put(out, outlen, &pos, url + i, k - i);
				put(out, outlen, &pos, "***", 3);
				i = k + value_len(url + k, scheme != NULL);
				continue;
			}
		}
		put(out, outlen, &pos, url + i, 1);
		i++;
	}
	out[pos] = '\0';
}
