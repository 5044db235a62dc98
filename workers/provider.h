/*
 * provider.h -- what differs between upstream API dialects.
 *
 * A provider knows how to authenticate to a channel of its type, how to
 * shape the request body for it (model rename, asking for usage) and how
 * to read usage from its responses.  The transfer machinery (xfer.c) is
 * the same for all.  Adding a dialect is one new provider_<name>.c that
 * defines a wrk_provider and one line in wrk_provider_for().
 *
 * Conversion between dialects (an Anthropic client on an OpenAI channel)
 * will hook in here too: body() sees the client's dialect in
 * rq->client_api, stream_event() may rewrite events.
 */
#ifndef PF_WORKERS_PROVIDER_H
#define PF_WORKERS_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"
#include "workers/buf.h"
#include "workers/usage.h"

struct curl_slist;
struct json_t;

/* The upstream request body: either the client's bytes or a rewrite. */
typedef struct wrk_body {
	char *_owned; /* rewrite (malloc), or NULL */
	const uint8_t *ptr;
	size_t len;
} wrk_body;

/* wrk_body_fini frees a rewrite; NULL-safe on an empty body. */
void wrk_body_fini(wrk_body *b);

typedef struct wrk_provider {
	const char *name;
	/* headers appends the auth and content headers for candidate c to
	 * *list (curl copies the strings).  Errors: PF_EINVAL (a key with
	 * control characters), PF_ENOMEM. */
	pf_err (*headers)(const pf_relay_request *rq, const pf_candidate *c,
	    struct curl_slist **list);
	/* body builds the upstream body for candidate c into *ret (which
	 * may point into rq).  Errors: PF_EINVAL, PF_ENOMEM. */
	pf_err (*body)(
	    const pf_relay_request *rq, const pf_candidate *c, wrk_body *ret);
	/* stream_event inspects one complete SSE event before it goes to
	 * the client: records usage and delivered text in u, sets *ret_drop
	 * when the event must not be forwarded.  scratch is a reusable
	 * buffer. */
	void (*stream_event)(const pf_relay_request *rq, wrk_usage *u,
	    wrk_buf *scratch, const uint8_t *ev, size_t len, int *ret_drop);
	/* response inspects a complete non-stream success body. */
	void (*response)(const pf_relay_request *rq, wrk_usage *u,
	    const uint8_t *body, size_t len);
} wrk_provider;

/* wrk_provider_for returns the provider for a pf_api_type, or NULL when
 * none is built in. */
const wrk_provider *wrk_provider_for(int32_t type);

/* wrk_header_get returns the client header `name` (lower case) rq
 * carries, or NULL. */
const pf_header *wrk_header_get(const pf_relay_request *rq, const char *name);

/*
 * wrk_client_headers appends to *list the client headers rq carries that
 * suit a channel of c's type: anthropic-* to Anthropic channels,
 * openai-beta to OpenAI ones, x-mock-* to both.  Anything else, and
 * values with control bytes, are skipped (the ingress filters the same
 * way; this guards the header lines we build).  Errors: PF_ENOMEM (*list
 * keeps what was appended).
 */
PF_NODISCARD pf_err wrk_client_headers(const pf_relay_request *rq,
    const pf_candidate *c, struct curl_slist **list);

/*
 * wrk_headers_add appends to *list the secret line key_name + key (e.g.
 * "x-api-key: " + the channel key; nothing when the key is empty), then
 * lines[0..n).  The key must be at most PF_SECRET_MAX bytes without
 * control bytes; the stack copy of the secret line is wiped.  Errors:
 * PF_EINVAL (bad key), PF_ENOMEM (*list keeps what was appended).
 */
PF_NODISCARD pf_err wrk_headers_add(struct curl_slist **list,
    const char *key_name, pf_bytes key, const char *const *lines, size_t n);

extern const wrk_provider wrk_provider_openai;
extern const wrk_provider wrk_provider_anthropic;

/*
 * wrk_usage_anthropic_read folds an Anthropic "usage" object into u,
 * converting to OpenAI semantics: prompt = input_tokens +
 * cache_creation_input_tokens + cache_read_input_tokens, cached =
 * cache_read_input_tokens, completion = output_tokens.  Counts are
 * cumulative, so each one present is assigned, never added (message_start
 * brings the input side, the last message_delta the final output).
 * Returns 1 when usage was an object.
 */
int wrk_usage_anthropic_read(const struct json_t *usage, wrk_usage *u);

/*
 * wrk_body_for_candidate builds the upstream body for candidate c, the
 * part of a provider's body() all dialects share: rq's bytes when the
 * body is empty, else wrk_rewrite_body with c's upstream model and
 * force_usage.  Errors: those of wrk_rewrite_body.
 */
PF_NODISCARD pf_err wrk_body_for_candidate(const pf_relay_request *rq,
    const pf_candidate *c, int force_usage, wrk_body *ret);

/*
 * wrk_rewrite_body returns in *ret the JSON body for an upstream: "model"
 * set to model (when mlen > 0 and it differs) and, when force_usage (the
 * OpenAI stream case), stream_options.include_usage set to true.  The client's
 * bytes are used unchanged (ret->ptr = body) when nothing changes or the
 * body is not a JSON object jansson can hold.  Numbers keep their exact
 * value.  Errors: PF_EINVAL (model not UTF-8), PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_rewrite_body(const uint8_t *body, size_t len,
    const char *model, size_t mlen, int force_usage, wrk_body *ret);

/* wrk_error_well_formed says whether an upstream error body is a JSON
 * object with an "error" member (OpenAI and Anthropic both answer so). */
int wrk_error_well_formed(const uint8_t *body, size_t len);

/* wrk_openai_error writes an OpenAI error object for an upstream status
 * whose body could not be used into out (reset first).  Errors:
 * PF_ENOMEM. */
PF_NODISCARD pf_err wrk_openai_error(long status, wrk_buf *out);

/* wrk_json_object_load parses len bytes at p and returns the JSON
 * object (the caller owns it: json_decref), or NULL when they are not a
 * JSON object. */
struct json_t *wrk_json_object_load(const void *p, size_t len);

/* wrk_json_dumps returns compact JSON text of v (malloc; free()), every
 * number keeping its exact value (reals get 16 significant digits, or 17
 * when needed), or NULL on allocation failure. */
char *wrk_json_dumps(const struct json_t *v);

/* wrk_openai_wants_usage says whether an OpenAI path accepts
 * stream_options (chat completions and legacy completions). */
int wrk_openai_wants_usage(const uint8_t *path, size_t len);

#endif /* PF_WORKERS_PROVIDER_H */
