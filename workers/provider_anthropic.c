/*
 * provider_anthropic.c -- Anthropic Messages channels, for clients that
 * speak the same dialect (POST /v1/messages passed through).
 *
 * Converting between dialects (an Anthropic client on an OpenAI channel
 * and back) is not here yet: xfer.c skips a candidate whose type differs
 * from the client's API.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <string.h>

#include "common/limits.h"
#include "workers/provider.h"
#include "workers/sse.h"

/* The API version we speak unless the client named one (its
 * anthropic-version header is then passed on by wrk_client_headers). */
#define ANTHROPIC_VERSION "2023-06-01"

static pf_err
anthropic_headers(
    const pf_relay_request *rq, const pf_candidate *c, struct curl_slist **list)
{
	static const char *const fixed[] = {
		"anthropic-version: " ANTHROPIC_VERSION,
		"Content-Type: application/json",
		"Expect:",
	};
	/* the client's anthropic-version is passed on instead of ours */
	size_t first = wrk_header_get(rq, "anthropic-version") != NULL ? 1 : 0;

	return wrk_headers_add(list, "x-api-key: ", c->key, fixed + first,
	    sizeof fixed / sizeof fixed[0] - first);
}

static pf_err
anthropic_body(const pf_relay_request *rq, const pf_candidate *c, wrk_body *ret)
{
	return wrk_body_for_candidate(rq, c, 0, ret);
}

static int
count(const json_t *obj, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return 0;
	*out = json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
	return 1;
}

int
wrk_usage_anthropic_read(const json_t *usage, wrk_usage *u)
{
	int64_t out;

	if (!json_is_object(usage))
		return 0;
	count(usage, "input_tokens", &u->parts[0]);
	count(usage, "cache_creation_input_tokens", &u->parts[1]);
	count(usage, "cache_read_input_tokens", &u->parts[2]);
	if (count(usage, "output_tokens", &out))
		u->reported.completion = out;
	u->reported.prompt = u->parts[0] + u->parts[1] + u->parts[2];
	u->reported.cached = u->parts[2];
	u->found = 1;
	return 1;
}

/* Units of generated text in content blocks or a block delta. */
static void
block_feed(const json_t *b, pf_tokest *e)
{
	static const char *const keys[]
	    = { "text", "partial_json", "thinking" };

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const json_t *v = json_object_get(b, keys[i]);

		if (json_is_string(v))
			pf_tokest_feed(
			    e, json_string_value(v), json_string_length(v));
	}
}

static void
anthropic_stream_event(const pf_relay_request *rq, wrk_usage *u,
    wrk_buf *scratch, const uint8_t *ev, size_t len, int *ret_drop)
{
	json_t *root;

	(void)rq;
	*ret_drop = 0;
	if (wrk_sse_data(ev, len, scratch) <= 0)
		return;
	root = wrk_json_object_load(scratch->data, scratch->len);
	if (root == NULL)
		return;
	/* message_start: message.usage; message_delta: usage */
	wrk_usage_anthropic_read(
	    json_object_get(json_object_get(root, "message"), "usage"), u);
	wrk_usage_anthropic_read(json_object_get(root, "usage"), u);
	block_feed(json_object_get(root, "delta"), &u->completion);
	json_decref(root);
}

static void
anthropic_response(
    const pf_relay_request *rq, wrk_usage *u, const uint8_t *body, size_t len)
{
	json_t *root, *b;
	size_t i;

	(void)rq;
	root = wrk_json_object_load(body, len);
	if (root == NULL)
		return;
	wrk_usage_anthropic_read(json_object_get(root, "usage"), u);
	json_array_foreach(json_object_get(root, "content"), i, b)
	{
		block_feed(b, &u->completion);
	}
	json_decref(root);
}

const wrk_provider wrk_provider_anthropic = {
	.name = "anthropic",
	.headers = anthropic_headers,
	.body = anthropic_body,
	.stream_event = anthropic_stream_event,
	.response = anthropic_response,
};
