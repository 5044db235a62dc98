#include "common/tokest.h"
#include "common/json.h"

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
feed_string(pf_tokest *e, pf_json *d, int v)
{
	const char *p;
	size_t n;

	p = pf_json_str(d, v, &n);
	if (p == NULL)
		return;
	pf_tokest_break(e);
	pf_tokest_feed(e, p, n);
}

static void
feed_value(pf_tokest *e, pf_json *d, int v, unsigned depth)
{
	int x;

	if (depth > PROMPT_DEPTH_MAX)
		return;
	switch (pf_json_type(d, v)) {
	case PF_JSON_STRING:
		feed_string(e, d, v);
		break;
	case PF_JSON_INTEGER:
		pf_tokest_id(e);
		break;
	case PF_JSON_ARRAY:
		for (x = pf_json_first(d, v); x >= 0; x = pf_json_next(d, v, x))
			feed_value(e, d, x, depth + 1);
		break;
	case PF_JSON_OBJECT: {
		int calls = pf_json_get(d, v, "tool_calls");

		feed_string(e, d, pf_json_get(d, v, "text"));
		feed_value(e, d, pf_json_get(d, v, "content"), depth + 1);
		feed_string(e, d, pf_json_get(d, v, "arguments"));
		feed_string(e, d, pf_json_get(d, v, "output"));
		for (x = pf_json_first(d, calls); x >= 0;
		     x = pf_json_next(d, calls, x)) {
			int fn = pf_json_get(d, x, "function");

			feed_string(e, d, pf_json_get(d, fn, "name"));
			feed_string(e, d, pf_json_get(d, fn, "arguments"));
		}
		break;
	}
	default:
		break;
	}
}

void
pf_tokest_prompt_json(pf_tokest *e, pf_json *d)
{
	static const char *const keys[]
	    = { "messages", "system", "prompt", "input", "instructions" };

	if (pf_json_type(d, 0) != PF_JSON_OBJECT)
		return;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		feed_value(e, d, pf_json_get(d, 0, keys[i]), 0);
	pf_tokest_break(e);
}

int64_t
pf_tokest_prompt_body(const uint8_t *body, size_t len)
{
	pf_tokest e = { 0 };
	pf_json d;

	pf_json_init(&d);
	if (pf_json_parse(&d, body, len) == PF_OK)
		pf_tokest_prompt_json(&e, &d);
	pf_json_fini(&d);
	return pf_tokest_tokens(&e);
}
