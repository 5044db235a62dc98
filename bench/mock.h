/*
 * mock.h -- the mock model: a fast, deterministic OpenAI-compatible
 * upstream for tests and load tests (a product feature, not a test fake
 * of our own parts).
 */
#ifndef PF_BENCH_MOCK_H
#define PF_BENCH_MOCK_H

#include <stdint.h>

#include "common/err.h"

typedef struct mock_server mock_server;

/* Defaults for every response; requests may override them per call with
 * x-mock-* headers (see docs/mock-model.md). */
typedef struct mock_options {
	const char *listen;      /* "127.0.0.1:PORT"; port 0 = any */
	uint32_t ttfb_ms;        /* delay before the first byte */
	uint32_t chunks;         /* content chunks in a response */
	uint32_t chunk_delay_ms; /* delay between stream chunks */
	uint32_t threads;        /* event threads */
} mock_options;

/* mock_server_start starts serving.  Errors: PF_EIO (cannot listen),
 * PF_EINVAL, PF_ENOMEM. */
PF_NODISCARD pf_err mock_server_start(
    const mock_options *opt, mock_server **ret);

/* mock_server_port returns the bound TCP port. */
unsigned mock_server_port(const mock_server *m);

/* mock_server_free stops and frees m; NULL is a no-op. */
void mock_server_free(mock_server *m);

/* mock_cmd is `planktonfly mock-model`: argv[0] is "mock-model". */
int mock_cmd(int argc, char **argv);

#endif /* PF_BENCH_MOCK_H */
