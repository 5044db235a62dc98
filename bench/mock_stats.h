/*
 * mock_stats.h -- what a mock-model server has seen, for GET /mock/stats:
 * counters and the last /v1 request (headers, body, parsed fields), so a
 * test can assert what a gateway sent upstream.
 *
 * Thread-safe: counters are atomics, the last request is kept under a
 * mutex (a few memcpy per request).
 */
#ifndef PF_BENCH_MOCK_STATS_H
#define PF_BENCH_MOCK_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct MHD_Connection;

typedef enum mock_counter {
	MOCK_STREAMS_STARTED = 0,
	MOCK_STREAMS_COMPLETED,
	MOCK_STREAMS_INCOMPLETE,
	MOCK_CHUNKS_SENT,
	MOCK_ERRORS_INJECTED,
	MOCK_DROPS,
	MOCK_HANGS,
	MOCK_BAD_REQUESTS,
	MOCK_COUNTER_COUNT
} mock_counter;

/* What one request carried (strings may be NULL = absent). */
typedef struct mock_seen {
	const char *method;
	const char *path;
	const char *model;
	int stream;         /* -1 absent, else 0/1 */
	int include_usage;  /* -1 absent, else 0/1 */
	int64_t max_tokens; /* -1 absent */
	const char *body;
	size_t body_len;
	bool body_too_big; /* over the cap: not kept */
} mock_seen;

typedef struct mock_stats mock_stats;

/* mock_stats_new allocates counters; names[i] (nroutes entries, NULL =
 * not listed) label the per-route counts in the JSON.  names must outlive
 * the stats.  Errors: PF_ENOMEM. */
PF_NODISCARD pf_err mock_stats_new(
    const char *const *names, unsigned nroutes, mock_stats **ret);

/* mock_stats_free frees s; NULL is a no-op. */
void mock_stats_free(mock_stats *s);

/* mock_stats_add counts one event. */
void mock_stats_add(mock_stats *s, mock_counter c);

/* mock_stats_record counts a request to route and keeps it (and conn's
 * headers) as "last"; returns its number, 1 for the first request. */
uint64_t mock_stats_record(mock_stats *s, unsigned route,
    struct MHD_Connection *conn, const mock_seen *seen);

/* mock_stats_json returns the stats as compact JSON (caller frees), with
 * suspended reported as-is; NULL when out of memory. */
char *mock_stats_json(mock_stats *s, uint64_t suspended);

/* mock_stats_reset zeroes the counters (except the stream counters, so
 * "open" keeps counting streams in flight) and forgets "last". */
void mock_stats_reset(mock_stats *s);

#endif /* PF_BENCH_MOCK_STATS_H */
