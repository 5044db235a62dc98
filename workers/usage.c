#include <jansson.h>
#include <string.h>

#include "common/limits.h"
#include "workers/usage.h"

uint64_t
wrk_text_units(const char *s, size_t len)
{
	uint64_t units = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80)
			units += 1;
		else if ((c & 0xc0) != 0x80)
			units += 4; /* lead byte of a code point */
	}
	return units;
}

int64_t
wrk_units_tokens(uint64_t units)
{
	return (int64_t)((units + 3) / 4);
}

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

static uint64_t
string_units(const json_t *v)
{
	if (!json_is_string(v))
		return 0;
	return wrk_text_units(json_string_value(v), json_string_length(v));
}

/* Units of a message's fields other than "content". */
static uint64_t
extra_units(const json_t *m)
{
	const json_t *calls, *call;
	uint64_t units = 0;
	size_t i;

	if (!json_is_object(m))
		return 0;
	units += string_units(json_object_get(m, "reasoning_content"));
	units += string_units(json_object_get(m, "refusal"));
	calls = json_object_get(m, "tool_calls");
	json_array_foreach(calls, i, call)
	{
		const json_t *fn = json_object_get(call, "function");

		units += string_units(json_object_get(fn, "name"));
		units += string_units(json_object_get(fn, "arguments"));
	}
	return units;
}

static uint64_t
message_units(const json_t *m)
{
	return string_units(json_object_get(m, "content")) + extra_units(m);
}

uint64_t
wrk_usage_openai_content_units(const json_t *root)
{
	const json_t *choices = json_object_get(root, "choices");
	const json_t *output = json_object_get(root, "output");
	const json_t *type = json_object_get(root, "type");
	const json_t *ch, *item, *part;
	uint64_t units = 0;
	size_t i, j;

	json_array_foreach(choices, i, ch)
	{
		units += message_units(json_object_get(ch, "message"));
		units += message_units(json_object_get(ch, "delta"));
		units += string_units(json_object_get(ch, "text"));
	}
	/* Responses API: output[].content[].text, output[].arguments, and
	 * the stream's *.delta events */
	json_array_foreach(output, i, item)
	{
		units += string_units(json_object_get(item, "arguments"));
		json_array_foreach(json_object_get(item, "content"), j, part)
		{
			units += string_units(json_object_get(part, "text"));
		}
	}
	if (json_is_string(type)
	    && (strcmp(json_string_value(type), "response.output_text.delta")
	            == 0
	        || strcmp(json_string_value(type),
	               "response.function_call_arguments.delta")
	            == 0))
		units += string_units(json_object_get(root, "delta"));
	return units;
}

/* Text of a content value: a string, or an array of parts with "text". */
static uint64_t
content_units(const json_t *c)
{
	const json_t *part;
	uint64_t units = 0;
	size_t i;

	if (json_is_string(c))
		return string_units(c);
	json_array_foreach(c, i, part)
	{
		if (json_is_string(part))
			units += string_units(part);
		else
			units += string_units(json_object_get(part, "text"));
	}
	return units;
}

uint64_t
wrk_usage_prompt_units(const uint8_t *body, size_t len)
{
	json_t *root, *msgs, *m;
	json_error_t jerr;
	uint64_t units = 0;
	size_t i;

	root = json_loadb((const char *)body, len, 0, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	msgs = json_object_get(root, "messages");
	json_array_foreach(msgs, i, m)
	{
		units += content_units(json_object_get(m, "content"));
		units += extra_units(m);
		units += 4; /* role and framing */
	}
	units += content_units(json_object_get(root, "system"));
	units += content_units(json_object_get(root, "prompt"));
	units += content_units(json_object_get(root, "input"));
	json_decref(root);
	return units;
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
	t.prompt = wrk_units_tokens(wrk_usage_prompt_units(req_body, req_len));
	t.completion = wrk_units_tokens(u->completion_units);
	t.estimated = 1;
	*ret = t;
}
