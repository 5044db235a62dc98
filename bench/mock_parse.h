/*
 * mock_parse.h -- what a mock-model request asks for: the x-mock-* knob
 * headers and the few body fields the mock uses.
 */
#ifndef PF_BENCH_MOCK_PARSE_H
#define PF_BENCH_MOCK_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/mock.h"
#include "common/err.h"

struct MHD_Connection;
struct json_t;

#define MOCK_NO_LIMIT UINT32_MAX

/* The knobs of one request: server defaults overridden by headers. */
typedef struct mock_knobs {
	uint32_t ttfb_ms;
	uint32_t chunks;
	uint32_t chunk_delay_ms;
	uint32_t chunk_bytes;
	uint32_t hang_ms;
	uint32_t hang_after; /* MOCK_NO_LIMIT = never */
	uint32_t drop_after; /* MOCK_NO_LIMIT = never */
	uint32_t status;     /* 0 = none */
	uint32_t error_rate; /* percent, when rate_set */
	uint32_t fail_first; /* requests to fail first, when fail_first_set */
	uint32_t coalesce;   /* 0/1 */
	uint32_t no_usage;   /* 0/1 */
	bool rate_set;
	bool fail_first_set;
	bool coalesce_set; /* else: coalesce when chunk_delay_ms is 0 */
} mock_knobs;

/* mock_knobs_defaults fills k from the command-line options alone. */
void mock_knobs_defaults(const mock_options *opt, mock_knobs *k);

/*
 * mock_knobs_path applies a path knob list (the SPEC of
 * /mock/knobs/SPEC/v1/..., len bytes, not NUL-terminated): comma-separated
 * NAME=N items, NAME a header name without "x-mock-".  Errors: PF_EINVAL
 * (unknown name, bad value, len > PF_MOCK_PATH_KNOBS_MAX) with *bad = the
 * offending header's name or "path knobs" (static).
 */
PF_NODISCARD pf_err mock_knobs_path(
    const char *spec, size_t len, mock_knobs *k, const char **bad);

/*
 * mock_knobs_headers overrides k with conn's x-mock-* headers.  Errors:
 * PF_EINVAL with *bad = the offending header's name (static).
 */
PF_NODISCARD pf_err mock_knobs_headers(
    struct MHD_Connection *conn, mock_knobs *k, const char **bad);

/*
 * mock_knobs_read = mock_knobs_defaults + mock_knobs_headers.  Errors:
 * PF_EINVAL with *bad = the offending header's name (static).
 */
PF_NODISCARD pf_err mock_knobs_read(struct MHD_Connection *conn,
    const mock_options *opt, mock_knobs *k, const char **bad);

/* What a request body said; strings point into the parsed tree. */
typedef struct mock_fields {
	const char *model;
	int stream;          /* -1 absent, else 0/1 */
	int include_usage;   /* stream_options.include_usage, -1 absent */
	int64_t max_tokens;  /* max_tokens / max_completion_tokens /
				max_output_tokens; -1 absent */
	uint64_t text_bytes; /* the prompt-token rule's byte count */
	uint32_t embed_inputs;
	uint32_t embed_dims;
	bool embed_base64;
} mock_fields;

/*
 * mock_fields_read extracts the fields from root (a JSON object); with
 * embeddings it also reads input, dimensions and encoding_format.  f is
 * filled as far as possible even on error.  Errors: PF_EINVAL with *bad =
 * a message for the client (static).
 */
PF_NODISCARD pf_err mock_fields_read(const struct json_t *root, bool embeddings,
    mock_fields *f, const char **bad);

#endif /* PF_BENCH_MOCK_PARSE_H */
