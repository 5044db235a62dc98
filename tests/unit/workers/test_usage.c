/* Unit tests of usage extraction, usage-chunk detection and estimation. */
#include <jansson.h>
#include <string.h>

#include "tests/tap.h"
#include "workers/provider.h"
#include "workers/usage.h"

static json_t *
parse(const char *s)
{
	json_error_t e;

	return json_loads(s, 0, &e);
}

static void
test_read(void)
{
	pf_usage_tokens t;
	json_t *j;

	j = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":19,"
	          "\"completion_tokens\":10,\"total_tokens\":29,"
	          "\"prompt_tokens_details\":{\"cached_tokens\":7}}}");
	memset(&t, 0, sizeof t);
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 19
	        && t.completion == 10 && t.cached == 7,
	    "prompt, completion, cached read");
	ok(wrk_usage_openai_is_usage_chunk(j), "empty choices + usage = chunk");
	json_decref(j);

	j = parse("{\"choices\":[{\"delta\":{\"content\":\"hi\"}}],"
	          "\"usage\":null}");
	ok(wrk_usage_openai_read(j, &t) == 0, "usage null is not usage");
	ok(!wrk_usage_openai_is_usage_chunk(j), "content chunk is not one");
	json_decref(j);

	j = parse("{\"choices\":[{\"delta\":{}}],\"usage\":{"
	          "\"prompt_tokens\":3,\"completion_tokens\":4}}");
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 3
	        && t.completion == 4 && t.cached == 0,
	    "usage on a content chunk is read");
	ok(!wrk_usage_openai_is_usage_chunk(j),
	    "but that chunk is not usage-only (it is forwarded)");
	json_decref(j);

	j = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":-5,"
	          "\"completion_tokens\":\"9\"}}");
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 0
	        && t.completion == 0,
	    "negative and non-integer counts are 0");
	json_decref(j);

	j = parse("{\"type\":\"response.completed\",\"response\":{"
	          "\"usage\":{\"input_tokens\":8,\"output_tokens\":9,"
	          "\"input_tokens_details\":{\"cached_tokens\":2}}}}");
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 8
	        && t.completion == 9 && t.cached == 2,
	    "Responses API usage in response.completed");
	json_decref(j);

	j = parse("{\"choices\":{},\"usage\":{}}");
	ok(!wrk_usage_openai_is_usage_chunk(j), "choices must be an array");
	json_decref(j);
}

static void
test_estimate(void)
{
	const char *body = "{\"model\":\"m\",\"messages\":["
	                   "{\"role\":\"system\",\"content\":\"abcd\"},"
	                   "{\"role\":\"user\",\"content\":[{\"type\":"
	                   "\"text\",\"text\":\"efgh\"}]}]}";
	const char *legacy = "{\"model\":\"m\",\"prompt\":\"12345678\"}";
	wrk_usage u;
	pf_usage_tokens t;
	json_t *j;

	ok(wrk_text_units("abcd", 4) == 4, "ASCII: one unit a byte");
	ok(wrk_text_units("\xe4\xbd\xa0\xe5\xa5\xbd", 6) == 8,
	    "CJK: four units a code point");
	ok(wrk_units_tokens(0) == 0 && wrk_units_tokens(1) == 1
	        && wrk_units_tokens(4) == 1 && wrk_units_tokens(5) == 2,
	    "tokens round up");
	ok(wrk_usage_prompt_units((const uint8_t *)body, strlen(body))
	        == 4 + 4 + 4 + 4,
	    "prompt units: string and parts content, 4 per message");
	ok(wrk_usage_prompt_units((const uint8_t *)legacy, strlen(legacy)) == 8,
	    "prompt units of a legacy completion");
	ok(wrk_usage_prompt_units((const uint8_t *)"[1]", 3) == 0,
	    "not an object: 0");

	j = parse("{\"choices\":[{\"delta\":{\"content\":\"hello\","
	          "\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}},"
	          "{\"message\":{\"content\":\"abc\"}},{\"text\":\"x\"}]}");
	ok(wrk_usage_openai_content_units(j) == 5 + 2 + 3 + 1,
	    "content units of delta, tool args, message, text");
	json_decref(j);

	j = parse(
	    "{\"type\":\"response.output_text.delta\",\"delta\":\"abc\"}");
	ok(wrk_usage_openai_content_units(j) == 3,
	    "content units of a Responses API delta event");
	json_decref(j);
	j = parse("{\"output\":[{\"type\":\"message\",\"content\":[{"
	          "\"type\":\"output_text\",\"text\":\"abcd\"}]}]}");
	ok(wrk_usage_openai_content_units(j) == 4,
	    "content units of a Responses API response");
	json_decref(j);

	memset(&u, 0, sizeof u);
	u.completion_units = 9;
	wrk_usage_result(&u, (const uint8_t *)legacy, strlen(legacy), &t);
	ok(t.estimated == 1 && t.prompt == 2 && t.completion == 3
	        && t.cached == 0,
	    "no usage reported: estimated and flagged");
	u.found = 1;
	u.reported.prompt = 11;
	u.reported.completion = 12;
	u.reported.cached = 5;
	wrk_usage_result(&u, (const uint8_t *)legacy, strlen(legacy), &t);
	ok(t.estimated == 0 && t.prompt == 11 && t.completion == 12
	        && t.cached == 5,
	    "reported usage wins");
}

/* The provider's stream hook: drop the usage chunk unless asked. */
static void
test_stream_event(void)
{
	const char *chunk = "data: {\"choices\":[],\"usage\":{"
	                    "\"prompt_tokens\":5,\"completion_tokens\":6}}\n\n";
	const char *content = "data: {\"choices\":[{\"delta\":{\"content\":"
	                      "\"abcdefgh\"}}],\"usage\":null}\n\n";
	const char *done = "data: [DONE]\n\n";
	pf_relay_request rq;
	wrk_usage u;
	wrk_buf scratch;
	int drop = -1;

	memset(&rq, 0, sizeof rq);
	memset(&u, 0, sizeof u);
	wrk_buf_init(&scratch);
	wrk_provider_openai.stream_event(&rq, &u, &scratch,
	    (const uint8_t *)content, strlen(content), &drop);
	ok(drop == 0 && u.completion_units == 8 && !u.found,
	    "content chunk forwarded, text counted");
	wrk_provider_openai.stream_event(
	    &rq, &u, &scratch, (const uint8_t *)chunk, strlen(chunk), &drop);
	ok(drop == 1 && u.found && u.reported.prompt == 5
	        && u.reported.completion == 6,
	    "usage chunk recorded and dropped when the client did not ask");
	rq.client_usage = 1;
	drop = -1;
	wrk_provider_openai.stream_event(
	    &rq, &u, &scratch, (const uint8_t *)chunk, strlen(chunk), &drop);
	ok(drop == 0, "usage chunk forwarded when the client asked");
	drop = -1;
	wrk_provider_openai.stream_event(
	    &rq, &u, &scratch, (const uint8_t *)done, strlen(done), &drop);
	ok(drop == 0, "[DONE] forwarded");
	wrk_buf_fini(&scratch);
}

static void
test_anthropic(void)
{
	wrk_usage u;
	json_t *j;

	memset(&u, 0, sizeof u);
	j = parse("{\"input_tokens\":10,\"output_tokens\":1,"
	          "\"cache_creation_input_tokens\":3,"
	          "\"cache_read_input_tokens\":20}");
	ok(wrk_usage_anthropic_read(j, &u) == 1 && u.found
	        && u.reported.prompt == 33 && u.reported.cached == 20
	        && u.reported.completion == 1,
	    "anthropic: prompt = input + cache write + cache read");
	json_decref(j);
	j = parse("{\"output_tokens\":15}");
	ok(wrk_usage_anthropic_read(j, &u) == 1 && u.reported.prompt == 33
	        && u.reported.completion == 15,
	    "anthropic: message_delta output assigned, input kept");
	ok(wrk_usage_anthropic_read(j, &u) == 1 && u.reported.completion == 15,
	    "anthropic: cumulative counts are never added twice");
	json_decref(j);
}

int
main(void)
{
	test_anthropic();
	test_read();
	test_estimate();
	test_stream_event();
	return tap_done();
}
