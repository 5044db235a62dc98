/*
 * mock.h -- the mock model: a fast, deterministic OpenAI-compatible (and
 * Anthropic-compatible) upstream for tests and load tests (a product
 * feature, not a test fake of our own parts).
 *
 * Event-driven on libmicrohttpd (epoll, optional thread pool); delays
 * suspend the connection and a timer thread resumes it, so an open stream
 * costs one small struct.  Every knob, the content rules and GET
 * /mock/stats are documented in docs/mock-model.md.
 */
#ifndef PF_BENCH_MOCK_H
#define PF_BENCH_MOCK_H

#include <stdint.h>

#include "common/err.h"

typedef struct mock_server mock_server;

/* Defaults for every response; requests may override them per call with
 * x-mock-* headers (see docs/mock-model.md). */
typedef struct mock_options {
	const char *listen;      /* "HOST:PORT" ("[::1]:PORT"); port 0 = any */
	uint32_t ttfb_ms;        /* delay before the first byte */
	uint32_t chunks;         /* content chunks in a response */
	uint32_t chunk_delay_ms; /* delay between stream chunks */
	uint32_t threads;        /* event threads; 0 = one per CPU */
	uint32_t chunk_bytes;    /* text bytes per chunk; 0 = "tok<i> " */
	uint32_t hang_ms;        /* how long x-mock-hang-after hangs */
	const char *models;      /* comma-separated ids for GET /v1/models */
	/* stream writes: MOCK_COALESCE_AUTO (0) packs the events that are
	 * due into one write when there is no chunk delay (an instant stream
	 * goes out in one write), one write per event otherwise;
	 * MOCK_COALESCE_ON packs always, MOCK_COALESCE_OFF never */
	uint32_t coalesce;
} mock_options;

#define MOCK_COALESCE_AUTO 0u
#define MOCK_COALESCE_ON 1u
#define MOCK_COALESCE_OFF 2u

/* mock_options_defaults fills opt with the documented defaults
 * (127.0.0.1:9000, 16 chunks, no delays, 300 s hangs, "mock-model"). */
void mock_options_defaults(mock_options *opt);

/*
 * mock_server_start starts serving with a copy of opt (strings are copied
 * too).  Errors: PF_EINVAL (bad listen address or option out of range),
 * PF_EIO (cannot listen), PF_ENOMEM.  *ret is written only on success.
 */
PF_NODISCARD pf_err mock_server_start(
    const mock_options *opt, mock_server **ret);

/* mock_server_port returns the bound TCP port. */
unsigned mock_server_port(const mock_server *m);

/* mock_server_threads returns the number of event threads serving. */
unsigned mock_server_threads(const mock_server *m);

/* mock_server_free stops m (resuming every delayed or hanging connection
 * first, then closing all connections) and frees it; blocking; NULL is a
 * no-op. */
void mock_server_free(mock_server *m);

/* mock_cmd is `planktonfly mock-model`: argv[0] is "mock-model".  Runs
 * until SIGINT or SIGTERM; returns the exit status. */
int mock_cmd(int argc, char **argv);

#endif /* PF_BENCH_MOCK_H */
