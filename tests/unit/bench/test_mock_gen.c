/*
 * test_mock_gen.c -- the mock model's bodies and stream events: valid
 * JSON, SSE framing, the documented content and token rules, and that a
 * windowed (partial) emission reproduces the full one byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench/mock_gen.h"
#include "tests/tap.h"

static char big[1 << 20];

static size_t
emit_event(const mock_reply *r, uint32_t idx, char *buf, size_t cap)
{
	mock_out o;

	mock_out_init(&o, buf, cap, 0);
	mock_stream_event(r, idx, &o);
	return mock_out_complete(&o) ? o.len : 0;
}

/* emit_windowed writes event idx through a window of w bytes at a time. */
static size_t
emit_windowed(const mock_reply *r, uint32_t idx, size_t w, char *out)
{
	size_t off = 0;
	char win[64];

	for (;;) {
		mock_out o;

		mock_out_init(&o, win, w, off);
		mock_stream_event(r, idx, &o);
		memcpy(out + off, win, o.len);
		off += o.len;
		if (mock_out_complete(&o))
			return off;
	}
}

static void
expected_text(const mock_reply *r, char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (uint32_t i = 0; i < r->chunks; i++) {
		char tok[32];
		int k = snprintf(tok, sizeof(tok), "tok%u ", i);
		size_t want = r->chunk_bytes != 0 ? r->chunk_bytes : (size_t)k;

		for (size_t j = 0; j < want && n + 1 < cap; j++)
			out[n++] = j < (size_t)k ? tok[j] : 'x';
	}
	out[n] = '\0';
}

/* delta_text returns the content a stream event carries, or NULL. */
static const char *
delta_text(mock_api api, json_t *ev)
{
	json_t *c;

	switch (api) {
	case MOCK_API_CHAT:
		c = json_array_get(json_object_get(ev, "choices"), 0);
		return json_string_value(
		    json_object_get(json_object_get(c, "delta"), "content"));
	case MOCK_API_COMPLETIONS:
		c = json_array_get(json_object_get(ev, "choices"), 0);
		return json_string_value(json_object_get(c, "text"));
	case MOCK_API_RESPONSES:
		if (strcmp(json_string_value(json_object_get(ev, "type")),
		        "response.output_text.delta")
		    != 0)
			return NULL;
		return json_string_value(json_object_get(ev, "delta"));
	case MOCK_API_MESSAGES:
		if (strcmp(json_string_value(json_object_get(ev, "type")),
		        "content_block_delta")
		    != 0)
			return NULL;
		return json_string_value(
		    json_object_get(json_object_get(ev, "delta"), "text"));
	default:
		return NULL;
	}
}

static const char *const api_names[]
    = { "chat", "completions", "responses", "messages" };

/* check_stream walks every event of r; returns the usage-bearing event
 * (caller decrefs) or NULL. */
static void
check_stream(const mock_reply *r, const char *label)
{
	uint32_t n = mock_stream_events(r);
	char text[4096], want[4096];
	size_t tl = 0;
	bool framing = true, json_ok = true, window_ok = true, done = false;
	json_t *usage = NULL;
	char *win = malloc(sizeof(big));

	text[0] = '\0';
	for (uint32_t i = 0; i < n; i++) {
		size_t len = emit_event(r, i, big, sizeof(big) - 1);
		const char *data;
		json_t *ev;
		const char *d;

		if (emit_windowed(r, i, 13, win) != len
		    || memcmp(win, big, len) != 0)
			window_ok = false;
		big[len] = '\0';
		if (len < 2 || big[len - 1] != '\n' || big[len - 2] != '\n')
			framing = false;
		if (r->api == MOCK_API_RESPONSES
		    || r->api == MOCK_API_MESSAGES) {
			if (strncmp(big, "event: ", 7) != 0)
				framing = false;
			data = strstr(big, "\ndata: ");
			data = data != NULL ? data + 7 : big;
		} else {
			if (strncmp(big, "data: ", 6) != 0)
				framing = false;
			data = big + 6;
		}
		if (strcmp(data, "[DONE]\n\n") == 0) {
			done = i == n - 1;
			continue;
		}
		ev = json_loads(data, JSON_DISABLE_EOF_CHECK, NULL);
		if (ev == NULL) {
			json_ok = false;
			continue;
		}
		d = delta_text(r->api, ev);
		if (d != NULL && tl + strlen(d) < sizeof(text)) {
			memcpy(text + tl, d, strlen(d) + 1);
			tl += strlen(d);
		}
		if (json_is_object(json_object_get(ev, "usage"))
		    && r->api <= MOCK_API_COMPLETIONS) {
			json_decref(usage);
			usage = json_incref(json_object_get(ev, "usage"));
		}
		json_decref(ev);
	}
	free(win);
	expected_text(r, want, sizeof(want));
	ok(framing, "%s: SSE framing of every event", label);
	ok(json_ok, "%s: every data line is JSON", label);
	ok(window_ok, "%s: windowed emission equals the whole", label);
	ok(strcmp(text, want) == 0, "%s: deltas spell the content", label);
	if (r->api <= MOCK_API_COMPLETIONS) {
		ok(done, "%s: ends with data: [DONE]", label);
		if (r->include_usage && !r->no_usage)
			ok(usage != NULL
			        && json_integer_value(json_object_get(
			               usage, "completion_tokens"))
			            == r->chunks
			        && json_integer_value(
			               json_object_get(usage, "prompt_tokens"))
			            == r->prompt_tokens,
			    "%s: usage chunk with the counts", label);
		else
			ok(usage == NULL, "%s: no usage chunk", label);
	}
	json_decref(usage);
}

static json_t *
body_json(const mock_reply *r)
{
	mock_out o;

	mock_out_init(&o, big, sizeof(big) - 1, 0);
	mock_body(r, &o);
	if (!mock_out_complete(&o))
		return NULL;
	big[o.len] = '\0';
	return json_loads(big, 0, NULL);
}

static void
test_streams(void)
{
	mock_reply r;

	for (int api = MOCK_API_CHAT; api <= MOCK_API_MESSAGES; api++) {
		for (int variant = 0; variant < 4; variant++) {
			char label[64];

			memset(&r, 0, sizeof(r));
			r.api = (mock_api)api;
			snprintf(r.model, sizeof(r.model), "m\"x\\y\001");
			r.seq = 7;
			r.created = 1700000000;
			r.prompt_tokens = 5;
			r.chunks = variant == 3 ? 0 : 4;
			r.chunk_bytes = variant == 1 ? 3
			    : variant == 2           ? 40
			                             : 0;
			r.include_usage = variant != 2;
			r.no_usage = variant == 3;
			snprintf(label, sizeof(label), "%s v%d", api_names[api],
			    variant);
			check_stream(&r, label);
		}
	}
}

static void
test_bodies(void)
{
	mock_reply r;
	json_t *j, *u;
	char want[256];

	memset(&r, 0, sizeof(r));
	r.api = MOCK_API_CHAT;
	snprintf(r.model, sizeof(r.model), "gpt-\"q\"");
	r.chunks = 3;
	r.prompt_tokens = 9;
	j = body_json(&r);
	expected_text(&r, want, sizeof(want));
	u = json_object_get(j, "usage");
	ok(j != NULL
	        && strcmp(json_string_value(json_object_get(j, "model")),
	               "gpt-\"q\"")
	            == 0,
	    "chat: model echoed and escaped");
	ok(strcmp(json_string_value(json_object_get(
	              json_object_get(
	                  json_array_get(json_object_get(j, "choices"), 0),
	                  "message"),
	              "content")),
	       "tok0 tok1 tok2 ")
	        == 0,
	    "chat: content is tok0 tok1 tok2");
	ok(json_integer_value(json_object_get(u, "prompt_tokens")) == 9
	        && json_integer_value(json_object_get(u, "completion_tokens"))
	            == 3
	        && json_integer_value(json_object_get(u, "total_tokens")) == 12,
	    "chat: usage");
	json_decref(j);

	r.no_usage = true;
	j = body_json(&r);
	ok(j != NULL && json_object_get(j, "usage") == NULL,
	    "chat: x-mock-no-usage drops usage");
	json_decref(j);

	r.no_usage = false;
	r.api = MOCK_API_MESSAGES;
	r.length_stop = true;
	j = body_json(&r);
	u = json_object_get(j, "usage");
	ok(j != NULL
	        && strcmp(json_string_value(json_object_get(j, "stop_reason")),
	               "max_tokens")
	            == 0
	        && json_integer_value(json_object_get(u, "input_tokens")) == 9
	        && json_integer_value(json_object_get(u, "output_tokens")) == 3,
	    "messages: stop_reason max_tokens and usage");
	json_decref(j);

	r.api = MOCK_API_RESPONSES;
	r.length_stop = false;
	j = body_json(&r);
	u = json_object_get(j, "usage");
	ok(j != NULL
	        && strcmp(json_string_value(json_object_get(j, "status")),
	               "completed")
	            == 0
	        && json_integer_value(json_object_get(u, "output_tokens")) == 3,
	    "responses: completed with usage");
	json_decref(j);

	r.api = MOCK_API_EMBEDDINGS;
	r.embed_inputs = 2;
	r.embed_dims = 5;
	j = body_json(&r);
	ok(j != NULL && json_array_size(json_object_get(j, "data")) == 2
	        && json_array_size(json_object_get(
	               json_array_get(json_object_get(j, "data"), 1),
	               "embedding"))
	            == 5,
	    "embeddings: 2 vectors of 5 floats");
	json_decref(j);
	r.embed_base64 = true;
	j = body_json(&r);
	ok(j != NULL
	        && strlen(json_string_value(json_object_get(
	               json_array_get(json_object_get(j, "data"), 0),
	               "embedding")))
	            == 28,
	    "embeddings: base64 of 5 float32 is 28 chars");
	json_decref(j);
}

static void
test_errors_and_models(void)
{
	mock_out o;
	json_t *j;

	mock_out_init(&o, big, sizeof(big) - 1, 0);
	mock_error_body(MOCK_API_CHAT, 429, NULL, "slow \"down\"", &o);
	big[o.len] = '\0';
	j = json_loads(big, 0, NULL);
	ok(j != NULL
	        && strcmp(json_string_value(json_object_get(
	                      json_object_get(j, "error"), "code")),
	               "rate_limit_exceeded")
	            == 0
	        && strcmp(json_string_value(json_object_get(
	                      json_object_get(j, "error"), "message")),
	               "slow \"down\"")
	            == 0,
	    "OpenAI error body for 429");
	json_decref(j);

	mock_out_init(&o, big, sizeof(big) - 1, 0);
	mock_error_body(MOCK_API_MESSAGES, 529, NULL, "busy", &o);
	big[o.len] = '\0';
	j = json_loads(big, 0, NULL);
	ok(j != NULL
	        && strcmp(
	               json_string_value(json_object_get(j, "type")), "error")
	            == 0
	        && strcmp(json_string_value(json_object_get(
	                      json_object_get(j, "error"), "type")),
	               "overloaded_error")
	            == 0,
	    "Anthropic error body for 529");
	json_decref(j);

	mock_out_init(&o, big, sizeof(big) - 1, 0);
	mock_models_body("a,b,,c", NULL, &o);
	big[o.len] = '\0';
	j = json_loads(big, 0, NULL);
	ok(j != NULL && json_array_size(json_object_get(j, "data")) == 3,
	    "models list skips empty names");
	json_decref(j);

	ok(mock_tokens_of_bytes(0) == 0 && mock_tokens_of_bytes(1) == 1
	        && mock_tokens_of_bytes(4) == 1 && mock_tokens_of_bytes(5) == 2,
	    "prompt tokens = ceil(bytes / 4)");
}

int
main(void)
{
	test_streams();
	test_bodies();
	test_errors_and_models();
	return tap_done();
}
