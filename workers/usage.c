#include <string.h>

#include "common/json.h"
#include "common/limits.h"
#include "common/tokest.h"
#include "workers/usage.h"

static int64_t
int_member(const pf_json *d, int obj, const char *key)
{
	int v = pf_json_get(d, obj, key);
	int64_t n;

	if (pf_json_type(d, v) != PF_JSON_INTEGER)
		return 0;
	n = pf_json_int(d, v);
	return n > 0 ? n : 0;
}

int
wrk_usage_openai_read(const pf_json *d, pf_usage_tokens *ret)
{
	int u = pf_json_get(d, 0, "usage");
	int det;
	pf_usage_tokens t;

	/* Responses API streams carry it in response.completed */
	if (pf_json_type(d, u) != PF_JSON_OBJECT)
		u = pf_json_get(d, pf_json_get(d, 0, "response"), "usage");
	if (pf_json_type(d, u) != PF_JSON_OBJECT)
		return 0;
	memset(&t, 0, sizeof t);
	if (pf_json_get(d, u, "prompt_tokens") < 0
	    && pf_json_get(d, u, "input_tokens") >= 0) {
		/* Responses API names; same meaning (input includes cached) */
		t.prompt = int_member(d, u, "input_tokens");
		t.completion = int_member(d, u, "output_tokens");
		det = pf_json_get(d, u, "input_tokens_details");
	} else {
		/* embeddings report prompt_tokens and total_tokens only */
		t.prompt = int_member(d, u, "prompt_tokens");
		t.completion = int_member(d, u, "completion_tokens");
		det = pf_json_get(d, u, "prompt_tokens_details");
	}
	if (pf_json_type(d, det) == PF_JSON_OBJECT)
		t.cached = int_member(d, det, "cached_tokens");
	*ret = t;
	return 1;
}

int
wrk_usage_openai_is_usage_chunk(const pf_json *d)
{
	int choices = pf_json_get(d, 0, "choices");

	return pf_json_type(d, choices) == PF_JSON_ARRAY
	    && pf_json_count(d, choices) == 0
	    && pf_json_type(d, pf_json_get(d, 0, "usage")) == PF_JSON_OBJECT;
}

static void
feed(pf_tokest *e, pf_json *d, int v)
{
	const char *p;
	size_t n;

	p = pf_json_str(d, v, &n);
	if (p != NULL)
		pf_tokest_feed(e, p, n);
}

/* Delivered text of a message or delta: content and the other generated
 * fields (reasoning, refusal, tool-call name and arguments). */
static void
feed_message(pf_tokest *e, pf_json *d, int m)
{
	int calls, call;

	if (pf_json_type(d, m) != PF_JSON_OBJECT)
		return;
	feed(e, d, pf_json_get(d, m, "content"));
	feed(e, d, pf_json_get(d, m, "reasoning_content"));
	feed(e, d, pf_json_get(d, m, "refusal"));
	calls = pf_json_get(d, m, "tool_calls");
	for (call = pf_json_first(d, calls); call >= 0;
	     call = pf_json_next(d, calls, call)) {
		int fn = pf_json_get(d, call, "function");

		feed(e, d, pf_json_get(d, fn, "name"));
		feed(e, d, pf_json_get(d, fn, "arguments"));
	}
}

void
wrk_usage_openai_content(pf_json *d, pf_tokest *e)
{
	int choices = pf_json_get(d, 0, "choices");
	int output = pf_json_get(d, 0, "output");
	int type = pf_json_get(d, 0, "type");
	int ch, item, parts, part;

	for (ch = pf_json_first(d, choices); ch >= 0;
	     ch = pf_json_next(d, choices, ch)) {
		feed_message(e, d, pf_json_get(d, ch, "message"));
		feed_message(e, d, pf_json_get(d, ch, "delta"));
		feed(e, d, pf_json_get(d, ch, "text"));
	}
	/* Responses API: output[].content[].text, output[].arguments, and
	 * the stream's *.delta events */
	for (item = pf_json_first(d, output); item >= 0;
	     item = pf_json_next(d, output, item)) {
		feed(e, d, pf_json_get(d, item, "arguments"));
		parts = pf_json_get(d, item, "content");
		for (part = pf_json_first(d, parts); part >= 0;
		     part = pf_json_next(d, parts, part))
			feed(e, d, pf_json_get(d, part, "text"));
	}
	if (pf_json_str_eq(d, type, "response.output_text.delta",
	        strlen("response.output_text.delta"))
	    || pf_json_str_eq(d, type, "response.function_call_arguments.delta",
	        strlen("response.function_call_arguments.delta")))
		feed(e, d, pf_json_get(d, 0, "delta"));
}

void
wrk_usage_result(const wrk_usage *u, const uint8_t *req_body, size_t req_len,
    pf_usage_tokens *ret)
{
	pf_usage_tokens t;

	if (u->found) {
		*ret = u->reported;
		ret->estimated = 0;
		return;
	}
	memset(&t, 0, sizeof t);
	t.prompt = u->has_prompt_estimate
	    ? u->prompt_estimate
	    : pf_tokest_prompt_body(req_body, req_len);
	t.completion = pf_tokest_tokens(&u->completion);
	t.estimated = 1;
	*ret = t;
}
