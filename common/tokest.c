#include <jansson.h>

#include "common/tokest.h"

enum { CLS_NONE, CLS_WORD, CLS_PUNCT, CLS_SPACE };

#define WORD_STEP 8  /* weight units a word token */
#define PUNCT_STEP 3 /* bytes a punctuation token */
#define PROMPT_DEPTH_MAX 32

static uint64_t
div_up(uint64_t n, uint64_t d)
{
	return (n + d - 1) / d;
}

/* Extend the current run of class cls by weight w (starting a new run
 * when the class differs) and count the tokens it adds. */
static void
extend(pf_tokest *e, uint8_t cls, uint32_t w)
{
	uint32_t before = 0;

	if (e->cls == cls)
		before = e->run;
	else
		e->run = 0;
	e->cls = cls;
	e->run += w;
	switch (cls) {
	case CLS_WORD:
		e->tokens
		    += div_up(e->run, WORD_STEP) - div_up(before, WORD_STEP);
		break;
	case CLS_PUNCT:
		e->tokens
		    += div_up(e->run, PUNCT_STEP) - div_up(before, PUNCT_STEP);
		break;
	default:
		break;
	}
	if (e->run > UINT32_MAX / 2) /* keep counting without overflow */
		e->run = e->cls == CLS_WORD ? WORD_STEP : PUNCT_STEP;
}

static int
is_word(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
	    || (c >= 'A' && c <= 'Z') || c == '_';
}

static void
space(pf_tokest *e, unsigned char c)
{
	uint32_t before = e->cls == CLS_SPACE ? e->run : 0;

	if (e->cls != CLS_SPACE)
		e->run = 0;
	e->cls = CLS_SPACE;
	/* run: 1 for a single space, 2 once notable (counted once) */
	if (before >= 2)
		return;
	e->run = (before == 1 || c == '\n') ? 2 : 1;
	if (e->run == 2)
		e->tokens++;
}

void
pf_tokest_feed(pf_tokest *e, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		e->bytes++;
		if (is_word(c))
			extend(e, CLS_WORD, 1);
		else if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			space(e, c);
		else if (c < 0x80)
			extend(e, CLS_PUNCT, 1);
		else if ((c & 0xe0) == 0xc0)
			extend(e, CLS_WORD, 2); /* two-byte code point */
		else if ((c & 0xc0) != 0x80) {
			/* three or four bytes: one token each, its own run */
			e->tokens++;
			e->cls = CLS_NONE;
			e->run = 0;
		}
		/* continuation bytes: counted in bytes only */
	}
}

void
pf_tokest_break(pf_tokest *e)
{
	e->cls = CLS_NONE;
	e->run = 0;
}

void
pf_tokest_id(pf_tokest *e)
{
	pf_tokest_break(e);
	e->bytes += 4;
	e->tokens++;
}

int64_t
pf_tokest_tokens(const pf_tokest *e)
{
	uint64_t cap = div_up(e->bytes, 4);
	uint64_t n = e->tokens < cap ? e->tokens : cap;

	return n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

static void
feed_string(pf_tokest *e, const json_t *v)
{
	if (!json_is_string(v))
		return;
	pf_tokest_break(e);
	pf_tokest_feed(e, json_string_value(v), json_string_length(v));
}

static void
feed_value(pf_tokest *e, const json_t *v, unsigned depth)
{
	const json_t *x, *calls;
	size_t i;

	if (depth > PROMPT_DEPTH_MAX)
		return;
	if (json_is_string(v)) {
		feed_string(e, v);
	} else if (json_is_integer(v)) {
		pf_tokest_id(e);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
		{
			feed_value(e, x, depth + 1);
		}
	} else if (json_is_object(v)) {
		feed_string(e, json_object_get(v, "text"));
		feed_value(e, json_object_get(v, "content"), depth + 1);
		feed_string(e, json_object_get(v, "arguments"));
		feed_string(e, json_object_get(v, "output"));
		calls = json_object_get(v, "tool_calls");
		json_array_foreach(calls, i, x)
		{
			const json_t *fn = json_object_get(x, "function");

			feed_string(e, json_object_get(fn, "name"));
			feed_string(e, json_object_get(fn, "arguments"));
		}
	}
}

void
pf_tokest_prompt_json(pf_tokest *e, const json_t *root)
{
	static const char *const keys[]
	    = { "messages", "system", "prompt", "input", "instructions" };

	if (!json_is_object(root))
		return;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		feed_value(e, json_object_get(root, keys[i]), 0);
	pf_tokest_break(e);
}

int64_t
pf_tokest_prompt_body(const uint8_t *body, size_t len)
{
	pf_tokest e = { 0 };
	json_error_t jerr;
	json_t *root;

	root = json_loadb((const char *)body, len, 0, &jerr);
	pf_tokest_prompt_json(&e, root);
	json_decref(root);
	return pf_tokest_tokens(&e);
}
