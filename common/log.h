/*
 * log.h -- structured log lines: "ts level ID key=value ...".
 *
 * Every line carries a stable ID ("PF-HTTP-LISTEN") that operators can grep
 * for.  Values are quoted when they contain spaces, quotes or control
 * characters.  Secrets (keys, tokens, passwords, signatures) are never
 * passed to these functions; pf_log_redact_url() strips credentials from a
 * URL for the cases that need to print one.
 *
 * Thread-safe: each line is written with one write(2) to stderr.
 */
#ifndef PF_COMMON_LOG_H
#define PF_COMMON_LOG_H

#include <stddef.h>

typedef enum pf_log_level {
	PF_LOG_DEBUG = 0,
	PF_LOG_INFO = 1,
	PF_LOG_WARN = 2,
	PF_LOG_ERROR = 3,
} pf_log_level;

/* pf_log_set_level sets the minimum level printed (process-wide; set once
 * by cmd/ before threads start). */
void pf_log_set_level(pf_log_level level);

/* pf_log_enabled says whether a line at level would be printed. */
int pf_log_enabled(pf_log_level level);

/*
 * pf_log writes one line.  id is the stable ID; fmt is a printf format for
 * the key=value part (callers format "key=%s" pairs themselves).
 */
void pf_log(pf_log_level level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define pf_debug(id, ...) pf_log(PF_LOG_DEBUG, id, __VA_ARGS__)
#define pf_info(id, ...) pf_log(PF_LOG_INFO, id, __VA_ARGS__)
#define pf_warn(id, ...) pf_log(PF_LOG_WARN, id, __VA_ARGS__)
#define pf_error(id, ...) pf_log(PF_LOG_ERROR, id, __VA_ARGS__)

/*
 * pf_log_quote writes s[0..len) into out (outlen bytes, always
 * NUL-terminated) as a log value: as is when it is non-empty printable
 * ASCII without spaces, quotes, backslashes or '='; otherwise in double
 * quotes with '"' and '\\' escaped and control bytes as \xNN, cut with
 * "..." inside the quotes when out is too small.  pf_log itself replaces
 * control bytes in a line with '?', so one call is always one line.
 */
void pf_log_quote(const char *s, size_t len, char *out, size_t outlen);

/*
 * pf_log_redact_url copies url into out (outlen bytes, always
 * NUL-terminated) with any "user:password@" part and any "password=..."
 * conninfo value replaced by "***".
 */
void pf_log_redact_url(const char *url, char *out, size_t outlen);

#endif /* PF_COMMON_LOG_H */
