#include <jansson.h>
#include <string.h>

#include "common/limits.h"
#include "common/tokest.h"
#include "workers/usage.h"

static int64_t
int_member(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (!json_is_integer(v))
		return 0;
	n = json_integer_value(v);
	return n > 0 ? (int64_t)n : 0;
}

int
wrk_usage_openai_read(const json_t *root, pf_usage_tokens *ret)
{
	const json_t *u = json_object_get(root, "usage");
	const json_t *d;
	pf_usage_tokens t;

	/* Responses API streams carry it in response.completed */
	if (!json_is_object(u))
		u = json_object_get(json_object_get(root, "response"), "usage");
	if (!json_is_object(u))
		return 0;
	memset(&t, 0, sizeof t);
	if (json_object_get(u, "prompt_tokens") == NULL
	    && json_object_get(u, "input_tokens") != NULL) {
		/* Responses API names; same meaning (input includes cached) */
		t.prompt = int_member(u, "input_tokens");
		t.completion = int_member(u, "output_tokens");
		d = json_object_get(u, "input_tokens_details");
	} else {
		/* embeddings report prompt_tokens and total_tokens only */
		t.prompt = int_member(u, "prompt_tokens");
		t.completion = int_member(u, "completion_tokens");
		d = json_object_get(u, "prompt_tokens_details");
	}
	if (json_is_object(d))
		t.cached = int_member(d, "cached_tokens");
	*ret = t;
	return 1;
}

int
wrk_usage_openai_is_usage_chunk(const json_t *root)
{
	const json_t *choices = json_object_get(root, "choices");

	return json_is_array(choices) && json_array_size(choices) == 0
	    && json_is_object(json_object_get(root, "usage"));
}

static void
feed(pf_tokest *e, const json_t *v)
{
	if (json_is_string(v))
		pf_tokest_feed(e, json_string_value(v), json_string_length(v));
}

/* Delivered text of a message or delta: content and the other generated
 * fields (reasoning, refusal, tool-call name and arguments). */
static void
feed_message(pf_tokest *e, const json_t *m)
{
	const json_t *calls, *call;
	size_t i;

	if (!json_is_object(m))
		return;
	feed(e, json_object_get(m, "content"));
	feed(e, json_object_get(m, "reasoning_content"));
	feed(e, json_object_get(m, "refusal"));
	calls = json_object_get(m, "tool_calls");
	json_array_foreach(calls, i, call)
	{
		const json_t *fn = json_object_get(call, "function");

		feed(e, json_object_get(fn, "name"));
		feed(e, json_object_get(fn, "arguments"));
	}
}

void
wrk_usage_openai_content(const json_t *root, pf_tokest *e)
{
	const json_t *choices = json_object_get(root, "choices");
	const json_t *output = json_object_get(root, "output");
	const json_t *type = json_object_get(root, "type");
	const json_t *ch, *item, *part;
	size_t i, j;

	json_array_foreach(choices, i, ch)
	{
		feed_message(e, json_object_get(ch, "message"));
		feed_message(e, json_object_get(ch, "delta"));
		feed(e, json_object_get(ch, "text"));
	}
	/* Responses API: output[].content[].text, output[].arguments, and
	 * the stream's *.delta events */
	json_array_foreach(output, i, item)
	{
		feed(e, json_object_get(item, "arguments"));
		json_array_foreach(json_object_get(item, "content"), j, part)
		{
			feed(e, json_object_get(part, "text"));
		}
	}
	if (json_is_string(type)
	    && (strcmp(json_string_value(type), "response.output_text.delta")
	            == 0
	        || strcmp(json_string_value(type),
	               "response.function_call_arguments.delta")
	            == 0))
		feed(e, json_object_get(root, "delta"));
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
