/*
 * mock_gen.h -- the mock model's deterministic response bodies.
 *
 * Pure functions, no I/O: given what a request asked for (a mock_reply),
 * they write response bodies and stream events through a mock_out cursor.
 * A cursor can count bytes only, or write a window of the logical output
 * into a caller buffer (skipping bytes already sent), so a stream never
 * holds more than one small state struct per connection: an event that
 * does not fit the transport's buffer is regenerated and continued at its
 * offset on the next call.
 *
 * Content (docs/mock-model.md is the contract tests rely on): content
 * chunk i carries the text "tok<i> " (i from 0), or, when chunk_bytes B is
 * set, exactly B bytes: the first B bytes of "tok<i> " followed by 'x'
 * repeated.  completion tokens = number of content chunks.
 */
#ifndef PF_BENCH_MOCK_GEN_H
#define PF_BENCH_MOCK_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

/* The API shape a request is answered in. */
typedef enum mock_api {
	MOCK_API_CHAT = 0,    /* /v1/chat/completions */
	MOCK_API_COMPLETIONS, /* /v1/completions (legacy) */
	MOCK_API_RESPONSES,   /* /v1/responses (OpenAI Responses) */
	MOCK_API_MESSAGES,    /* /v1/messages (Anthropic) */
	MOCK_API_EMBEDDINGS,  /* /v1/embeddings */
} mock_api;

/* What to answer; filled from the request and the knobs. */
typedef struct mock_reply {
	mock_api api;
	char model[PF_MODEL_NAME_MAX + 1]; /* echoed, JSON-escaped on output */
	uint64_t seq;                      /* request number, used in ids */
	int64_t created;                   /* unix seconds */
	uint32_t chunks;                   /* content chunks */
	uint32_t chunk_bytes;              /* 0 = natural "tok<i> " text */
	uint32_t prompt_tokens;
	bool include_usage; /* stream_options.include_usage (streams) */
	bool no_usage;      /* x-mock-no-usage: omit usage everywhere */
	bool length_stop;   /* max_tokens cut the answer short */
	/* embeddings only */
	uint32_t embed_inputs; /* vectors to return */
	uint32_t embed_dims;   /* values per vector */
	bool embed_base64;     /* encoding_format "base64" (float32 LE) */
} mock_reply;

/* A write cursor over a logical byte stream (see the file comment). */
typedef struct mock_out {
	char *buf;       /* NULL: count only */
	size_t cap;      /* bytes available in buf */
	size_t skip;     /* logical bytes still to drop before writing */
	size_t len;      /* bytes written into buf */
	size_t total;    /* logical bytes produced so far */
	size_t _skipped; /* skip as given to mock_out_init */
} mock_out;

/* mock_out_init prepares o to write into buf (cap bytes; buf NULL counts
 * only), dropping the first skip logical bytes. */
void mock_out_init(mock_out *o, char *buf, size_t cap, size_t skip);

/* mock_out_put appends n bytes of s (clipped to the window). */
void mock_out_put(mock_out *o, const void *s, size_t n);

/* mock_out_complete says whether everything produced fitted: true when the
 * logical output ended inside the window given to mock_out_init. */
bool mock_out_complete(const mock_out *o);

/* mock_stream_events returns the number of SSE events of r's stream. */
uint32_t mock_stream_events(const mock_reply *r);

/* mock_stream_pre returns how many events come before content chunk 0
 * (event pre + i is content chunk i). */
uint32_t mock_stream_pre(const mock_reply *r);

/* mock_stream_event writes event idx (< mock_stream_events) of r's stream,
 * framing ("data: ...\n\n" or "event: ...\ndata: ...\n\n") included. */
void mock_stream_event(const mock_reply *r, uint32_t idx, mock_out *o);

/* mock_body writes r's non-stream JSON body (chat, completions, responses,
 * messages or embeddings). */
void mock_body(const mock_reply *r, mock_out *o);

/*
 * mock_error_body writes an error body for status in api's format: OpenAI
 * {"error":{"message","type","param","code"}} or, for MOCK_API_MESSAGES,
 * Anthropic {"type":"error","error":{"type","message"}}.  code overrides
 * the OpenAI code that status implies (NULL = implied).  message is plain
 * text (escaped here).
 */
void mock_error_body(mock_api api, unsigned status, const char *code,
    const char *message, mock_out *o);

/* mock_models_body writes the OpenAI model list for the comma-separated
 * names in csv, or (id != NULL) the single model object for id. */
void mock_models_body(const char *csv, const char *id, mock_out *o);

/* mock_put_json_str writes s as a JSON string (quotes included). */
void mock_put_json_str(mock_out *o, const char *s);

/* mock_tokens_of_bytes is the documented prompt-token rule:
 * ceil(bytes / 4). */
uint32_t mock_tokens_of_bytes(uint64_t bytes);

#endif /* PF_BENCH_MOCK_GEN_H */
