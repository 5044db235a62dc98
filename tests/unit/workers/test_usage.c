/* Unit tests of usage extraction, usage-chunk detection and estimation. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tests/tap.h"
#include "workers/provider.h"
#include "workers/usage.h"

/* s parsed (common/json.h), on the heap; NULL when it does not parse */
static pf_json *
parse(const char *s)
{
	pf_json *d = malloc(sizeof *d);

	if (d == NULL)
		return NULL;
	pf_json_init(d);
	if (pf_json_parse(d, s, strlen(s)) != PF_OK) {
		free(d);
		return NULL;
	}
	return d;
}

/* s parsed by jansson (the Anthropic provider reads jansson trees) */
static json_t *
jparse(const char *s)
{
	json_error_t e;

	return json_loads(s, 0, &e);
}

static void
unparse(pf_json *d)
{
	if (d == NULL)
		return;
	pf_json_fini(d);
	free(d);
}

static void
test_read(void)
{
	pf_usage_tokens t;
	pf_json *j;

	j = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":19,"
	          "\"completion_tokens\":10,\"total_tokens\":29,"
	          "\"prompt_tokens_details\":{\"cached_tokens\":7}}}");
	memset(&t, 0, sizeof t);
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 19
	        && t.completion == 10 && t.cached == 7,
	    "prompt, completion, cached read");
	ok(wrk_usage_openai_is_usage_chunk(j), "empty choices + usage = chunk");
	unparse(j);

	j = parse("{\"choices\":[{\"delta\":{\"content\":\"hi\"}}],"
	          "\"usage\":null}");
	ok(wrk_usage_openai_read(j, &t) == 0, "usage null is not usage");
	ok(!wrk_usage_openai_is_usage_chunk(j), "content chunk is not one");
	unparse(j);

	j = parse("{\"choices\":[{\"delta\":{}}],\"usage\":{"
	          "\"prompt_tokens\":3,\"completion_tokens\":4}}");
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 3
	        && t.completion == 4 && t.cached == 0,
	    "usage on a content chunk is read");
	ok(!wrk_usage_openai_is_usage_chunk(j),
	    "but that chunk is not usage-only (it is forwarded)");
	unparse(j);

	j = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":-5,"
	          "\"completion_tokens\":\"9\"}}");
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 0
	        && t.completion == 0,
	    "negative and non-integer counts are 0");
	unparse(j);

	j = parse("{\"type\":\"response.completed\",\"response\":{"
	          "\"usage\":{\"input_tokens\":8,\"output_tokens\":9,"
	          "\"input_tokens_details\":{\"cached_tokens\":2}}}}");
	ok(wrk_usage_openai_read(j, &t) == 1 && t.prompt == 8
	        && t.completion == 9 && t.cached == 2,
	    "Responses API usage in response.completed");
	unparse(j);

	j = parse("{\"choices\":{},\"usage\":{}}");
	ok(!wrk_usage_openai_is_usage_chunk(j), "choices must be an array");
	unparse(j);
}

static int64_t
est(const char *s)
{
	pf_tokest e = { 0 };

	pf_tokest_feed(&e, s, strlen(s));
	return pf_tokest_tokens(&e);
}

static int64_t
content_tokens(const char *chunk)
{
	pf_tokest e = { 0 };
	pf_json *j = parse(chunk);

	wrk_usage_openai_content(j, &e);
	unparse(j);
	return pf_tokest_tokens(&e);
}

/* The estimator on fixed texts (common/tokest.h). */
static void
test_tokest(void)
{
	pf_tokest e = { 0 };
	char chunk[32];
	int exact = 1;

	ok(est("") == 0 && est(" ") == 0, "nothing, or one space: 0");
	ok(est("The quick brown fox jumps over the lazy dog.") == 10,
	    "English: a token a word and one for the period (tiktoken 10)");
	ok(est("tok0 tok1 tok2 ") == 3,
	    "three mock chunks are 3 tokens (was 4: ceil(15 bytes / 4))");
	ok(est("internationalization") == 3, "20-letter word: 3");
	ok(est("a b c d e f") == 3,
	    "one-letter words: capped at ceil(11 bytes / 4) = 3");
	ok(est("hello world") == 2 && est("hello\n\nworld") == 3
	        && est("hello  world") == 3,
	    "one space is free; a newline run or a double space is 1");
	ok(est("{\"city\": \"Paris\"}") == 5,
	    "tool-call JSON: 6 by words and symbols, capped at 17 bytes / 4");
	ok(est("\xe4\xbd\xa0\xe5\xa5\xbd") == 2,
	    "CJK: a token a character (2 characters)");
	ok(est("\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c") == 3,
	    "4 CJK characters: capped at ceil(12 bytes / 4) = 3");
	ok(est("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82") == 2,
	    "Cyrillic word of 6 letters (weight 12): 2");
	ok(est("\xff\xfe") == 1, "invalid UTF-8 counted, not rejected");

	pf_tokest_feed(&e, "tok", 3);
	pf_tokest_feed(&e, "0 to", 4);
	pf_tokest_feed(&e, "k1 ", 3);
	ok(pf_tokest_tokens(&e) == 2,
	    "a word split over two deltas counts once");
	pf_tokest_break(&e);
	pf_tokest_feed(&e, "ab", 2);
	pf_tokest_id(&e);
	ok(pf_tokest_tokens(&e) == 4 && e.bytes == 16,
	    "break starts a new word; a token id is 1 token, 4 bytes");

	/* the mock's natural chunks "tok<i> ": k delivered chunks are never
	 * more than k tokens (the mock's count for a complete run of k) */
	memset(&e, 0, sizeof e);
	for (int i = 0; i < 100000 && exact; i++) {
		int n = snprintf(chunk, sizeof chunk, "tok%d ", i);

		pf_tokest_feed(&e, chunk, (size_t)n);
		exact = pf_tokest_tokens(&e) == i + 1;
	}
	ok(exact, "mock chunks 0..99999: exactly one token each");

	/* prefixes never count more than the whole text */
	{
		const char *t = "Hello, world! \xe4\xbd\xa0\xe5\xa5\xbd "
		                "supercalifragilistic  {\"a\": [1, 2]}\n";
		int64_t prev = 0;
		int mono = 1;

		for (size_t k = 0; k <= strlen(t); k++) {
			pf_tokest p = { 0 };

			pf_tokest_feed(&p, t, k);
			mono = mono && pf_tokest_tokens(&p) >= prev;
			prev = pf_tokest_tokens(&p);
		}
		ok(mono && prev == est(t), "estimates grow with the prefix");
	}
}

static void
test_estimate(void)
{
	const char *body = "{\"model\":\"m\",\"messages\":["
	                   "{\"role\":\"system\",\"content\":\"abcd\"},"
	                   "{\"role\":\"user\",\"content\":[{\"type\":"
	                   "\"text\",\"text\":\"efgh\"}]}]}";
	const char *legacy = "{\"model\":\"m\",\"prompt\":\"12345678\"}";
	/* the chaos test's 72-vs-36 case: 143 bytes of text, mock = 36 */
	const char *chaos
	    = "{\"model\":\"c-fast\",\"stream\":true,\"stream_options\":"
	      "{\"include_usage\":true},\"max_tokens\":50,\"messages\":[{"
	      "\"role\":\"user\",\"content\":\"hello world! hello world! "
	      "hello world! hello world! hello world! hello world! hello "
	      "world! hello world! hello world! hello world! hello world! "
	      "\"}]}";
	const char *other = "{\"model\":\"m\",\"system\":\"be brief\","
	                    "\"instructions\":\"x\",\"input\":[{\"role\":"
	                    "\"user\",\"content\":[{\"type\":\"input_text\","
	                    "\"text\":\"hi\"}]},[1,2,3]],\"messages\":[{"
	                    "\"role\":\"assistant\",\"tool_calls\":[{"
	                    "\"function\":{\"name\":\"get\",\"arguments\":"
	                    "\"{}\"}}]}]}";
	wrk_usage u;
	pf_usage_tokens t;

	ok(pf_tokest_prompt_body((const uint8_t *)body, strlen(body)) == 2,
	    "prompt: string and parts content only, no roles or keys "
	    "(was 4: 4 units a message)");
	ok(pf_tokest_prompt_body((const uint8_t *)legacy, strlen(legacy)) == 1,
	    "prompt of a legacy completion: one 8-digit word");
	ok(pf_tokest_prompt_body((const uint8_t *)chaos, strlen(chaos)) == 33,
	    "143 bytes of text: 33 (mock 36; the whole body counted 72)");
	ok(pf_tokest_prompt_body((const uint8_t *)other, strlen(other)) == 7,
	    "system, instructions, input parts, token ids, tool calls: "
	    "9 by words, capped at ceil(28 bytes / 4) = 7");
	ok(pf_tokest_prompt_body((const uint8_t *)"[1]", 3) == 0
	        && pf_tokest_prompt_body((const uint8_t *)"{", 1) == 0,
	    "not an object: 0");

	ok(content_tokens("{\"choices\":[{\"delta\":{\"content\":\"hello\","
	                  "\"tool_calls\":[{\"function\":{\"name\":\"get\","
	                  "\"arguments\":\"{}\"}}]}},{\"message\":{"
	                  "\"content\":\" abc\"}},{\"text\":\" x\"}]}")
	        == 4,
	    "completion: delta content, tool name and args, message, text");
	ok(content_tokens("{\"choices\":[{\"delta\":{\"role\":\"assistant\","
	                  "\"content\":\"\"}}]}")
	        == 0,
	    "the role chunk is free");
	ok(content_tokens("{\"type\":\"response.output_text.delta\","
	                  "\"delta\":\"abc\"}")
	        == 1,
	    "a Responses API delta event");
	ok(content_tokens("{\"output\":[{\"type\":\"message\",\"content\":[{"
	                  "\"type\":\"output_text\",\"text\":\"ab cd\"}]}]}")
	        == 2,
	    "a Responses API response");

	memset(&u, 0, sizeof u);
	pf_tokest_feed(&u.completion, "tok0 tok1 tok2 ", 15);
	wrk_usage_result(&u, (const uint8_t *)body, strlen(body), &t);
	ok(t.estimated == 1 && t.prompt == 2 && t.completion == 3
	        && t.cached == 0,
	    "no usage reported: estimated and flagged");
	u.prompt_estimate = 40;
	u.has_prompt_estimate = 1;
	wrk_usage_result(&u, NULL, 0, &t);
	ok(t.estimated == 1 && t.prompt == 40 && t.completion == 3,
	    "no usage, body given back: the prompt estimate taken before");
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
	ok(drop == 0 && pf_tokest_tokens(&u.completion) == 1 && !u.found,
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
	j = jparse("{\"input_tokens\":10,\"output_tokens\":1,"
	           "\"cache_creation_input_tokens\":3,"
	           "\"cache_read_input_tokens\":20}");
	ok(wrk_usage_anthropic_read(j, &u) == 1 && u.found
	        && u.reported.prompt == 33 && u.reported.cached == 20
	        && u.reported.completion == 1,
	    "anthropic: prompt = input + cache write + cache read");
	json_decref(j);
	j = jparse("{\"output_tokens\":15}");
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
	test_tokest();
	test_estimate();
	test_stream_event();
	return tap_done();
}
