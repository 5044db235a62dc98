/*
 * Unit tests of common/json.h: the fast parser accepts exactly what
 * jansson (json_loadb, flags 0) accepts, and reads the same values.
 * Hand-picked edge cases first, then seeded random mutations of real
 * request and answer bodies, each compared value by value with jansson's
 * tree.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tests/tap.h"

/* Is v (pf_json) the same value as j (jansson)? */
static int
same_value(pf_json *d, int v, const json_t *j)
{
	const char *s;
	size_t n;

	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *m;

		if (pf_json_type(d, v) != PF_JSON_OBJECT)
			return 0;
		/* jansson keeps the last of duplicate keys, as pf_json_get */
		json_object_foreach((json_t *)j, key, m)
		{
			if (!same_value(d, pf_json_get(d, v, key), m))
				return 0;
		}
		if (pf_json_get(d, v, "no such key, surely") >= 0)
			return 0;
		return pf_json_count(d, v) >= json_object_size(j);
	}
	case JSON_ARRAY: {
		size_t i = 0;
		int e;

		if (pf_json_type(d, v) != PF_JSON_ARRAY
		    || pf_json_count(d, v) != json_array_size(j))
			return 0;
		for (e = pf_json_first(d, v); e >= 0; e = pf_json_next(d, v, e))
			if (!same_value(d, e, json_array_get(j, i++)))
				return 0;
		return i == json_array_size(j);
	}
	case JSON_STRING:
		s = pf_json_str(d, v, &n);
		return s != NULL && n == json_string_length(j)
		    && memcmp(s, json_string_value(j), n) == 0
		    && pf_json_str_eq(d, v, json_string_value(j), n)
		    && (n == 0
		        || !pf_json_str_eq(d, v, json_string_value(j), n - 1));
	case JSON_INTEGER:
		return pf_json_type(d, v) == PF_JSON_INTEGER
		    && pf_json_int(d, v) == json_integer_value(j);
	case JSON_REAL:
		return pf_json_type(d, v) == PF_JSON_REAL;
	case JSON_TRUE:
		return pf_json_type(d, v) == PF_JSON_TRUE;
	case JSON_FALSE:
		return pf_json_type(d, v) == PF_JSON_FALSE;
	case JSON_NULL:
		return pf_json_type(d, v) == PF_JSON_NULL;
	}
	return 0;
}

/* 1 when both refuse buf, or both accept it with the same values. */
static int
agree(const char *buf, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf, len, 0, &jerr);
	pf_json d;
	pf_err err;
	int same;

	pf_json_init(&d);
	err = pf_json_parse(&d, buf, len);
	if (j == NULL)
		same = err == PF_EINVAL && pf_json_type(&d, 0) == PF_JSON_NONE;
	else
		same = err == PF_OK && same_value(&d, 0, j);
	if (!same)
		printf("# disagree (jansson %s, pf_json %s): %.*s\n",
		    j != NULL ? "accepts" : "refuses",
		    err == PF_OK ? "accepts" : "refuses", (int)len, buf);
	json_decref(j);
	pf_json_fini(&d);
	return same;
}

static int
agree_s(const char *s)
{
	return agree(s, strlen(s));
}

static void
test_cases(void)
{
	static const char *const cases[] = {
		"{}",
		"[]",
		" {} ",
		"\t\r\n[ ]\n",
		"",
		" ",
		"{",
		"}",
		"[",
		"]",
		"1",
		"\"s\"",
		"true",
		"null",
		"{} x",
		"{}{}",
		"[] ,",
		"{\"a\":1}",
		"{\"a\":1,}",
		"[1,]",
		"[,1]",
		"{\"a\"}",
		"{\"a\" 1}",
		"{a:1}",
		"{'a':1}",
		"{\"a\":1 \"b\":2}",
		"{\"a\":1,\"a\":2}",
		"{\"a\":{\"b\":[1,2,{\"c\":null}]}}",
		"[true,false,null]",
		"[tru]",
		"[truex]",
		"[nul]",
		"[True]",
		"[falsey]",
		"[null1]",
		/* numbers */
		"[0]",
		"[-0]",
		"[01]",
		"[-01]",
		"[-]",
		"[+1]",
		"[1.]",
		"[.5]",
		"[1.5]",
		"[1e5]",
		"[1E+5]",
		"[1e-5]",
		"[1e]",
		"[1e+]",
		"[1.5e3]",
		"[0.0]",
		"[-0.0e-0]",
		"[1x]",
		"[0x10]",
		"[9223372036854775807]",
		"[9223372036854775808]",
		"[-9223372036854775808]",
		"[-9223372036854775809]",
		"[99999999999999999999999]",
		"[18446744073709551616]",
		"[1e308]",
		"[1e309]",
		"[-1e309]",
		"[1e-400]",
		"[123456789012345678901234567890.5]",
		/* strings */
		"[\"\"]",
		"[\"a\\\"b\"]",
		"[\"\\\\\"]",
		"[\"\\/\"]",
		"[\"\\b\\f\\n\\r\\t\"]",
		"[\"\\x\"]",
		"[\"\\u0041\"]",
		"[\"\\u00e9\"]",
		"[\"\\u20AC\"]",
		"[\"\\u0000\"]",
		"[\"\\u000\"]",
		"[\"\\u00G0\"]",
		"[\"\\uD83D\\uDE00\"]",
		"[\"\\uD83D\"]",
		"[\"\\uD83Dx\"]",
		"[\"\\uD83D\\u0041\"]",
		"[\"\\uDE00\"]",
		"[\"\\uDBFF\\uDFFF\"]",
		"[\"\\uD800\\uDC00\"]",
		"[\"\\uD83D\\n\"]",
		"[\"unterminated]",
		"[\"tab\there\"]",
		"[\"\x01\"]",
		"[\"\x1f\"]",
		"[\"\x7f\"]",
		"[\"\xc3\xa9\"]",
		"[\"\xc3\"]",
		"[\"\xc3(\"]",
		"[\"\xc0\x80\"]",
		"[\"\xc1\xbf\"]",
		"[\"\xe0\x80\x80\"]",
		"[\"\xe0\xa0\x80\"]",
		"[\"\xed\xa0\x80\"]",
		"[\"\xef\xbf\xbf\"]",
		"[\"\xf0\x90\x80\x80\"]",
		"[\"\xf0\x80\x80\x80\"]",
		"[\"\xf4\x8f\xbf\xbf\"]",
		"[\"\xf4\x90\x80\x80\"]",
		"[\"\xf5\x80\x80\x80\"]",
		"[\"\xff\"]",
		"[\"\x80\"]",
		"[1]\xff",
		"[1] \xc3\xa9",
		"\xef\xbb\xbf[]",
		"{\"k\\u0000\":1}",
		"{\"\\u006b\":1,\"k\":2}",
		"{\"model\":\"gpt\\u002d4\",\"stream\":true}",
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ok(agree_s(cases[i]), "case %zu agrees with jansson", i);
	ok(agree("[\"a\0b\"]", 7), "NUL inside a string");
	ok(agree("[1]\0", 4), "NUL after the value");
	ok(agree("[\"\\u0041\"", 9), "end inside an escape's array");
}

/* Nesting: jansson refuses a value deeper than 2048. */
static void
test_depth(void)
{
	size_t n = 2100;
	char *buf = malloc(2 * n + 2);
	int all = 1;

	if (buf == NULL)
		return;
	for (size_t k = 2040; k <= 2055; k++) {
		memset(buf, '[', k);
		memset(buf + k, ']', k);
		all &= agree(buf, 2 * k);
		/* a scalar in the innermost array is one level deeper */
		memset(buf, '[', k);
		buf[k] = '1';
		memset(buf + k + 1, ']', k);
		all &= agree(buf, 2 * k + 1);
	}
	ok(all, "depth limit at 2048 values, as jansson");
	free(buf);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

/* Seeded mutations of real bodies: bytes replaced, inserted or deleted
 * from an alphabet of the characters the grammar cares about. */
static void
test_mutations(void)
{
	static const char *const seeds[] = {
		"{\"model\":\"mock-model\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"hi \\\"there\\\" \\u00e9\\uD83D\\uDE00\"}],"
		"\"stream\":false,\"max_tokens\":16,\"temperature\":0.7}",
		"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
		"\"created\":1795707777,\"choices\":[{\"index\":0,\"message\":"
		"{\"role\":\"assistant\",\"content\":\"tok0 tok1\","
		"\"refusal\":null},\"logprobs\":null,\"finish_reason\":"
		"\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
		"\"completion_tokens\":16,\"total_tokens\":17,"
		"\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
		"[1,-2.5e-3,\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",[],{},"
		"[{\"a\":[true,false,null]}],-0,123456789]",
	};
	static const char alphabet[] = "{}[]:,\"\\/ubfnrtDdCc0123456789-+.eE"
	                               " \t\r\nlsa\x00\x01\x1f\x7f\x80\xbf\xc2"
	                               "\xc3\xe0\xed\xf0\xf4\xff";
	char buf[512];
	int all = 1;
	long n = 0;

	for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
		size_t base = strlen(seeds[s]);

		for (int round = 0; round < 40000; round++) {
			size_t len = base;
			int edits = 1 + (int)(next_rand() % 3);

			memcpy(buf, seeds[s], base);
			for (int e = 0; e < edits; e++) {
				size_t at = next_rand() % (len + 1);
				char c = alphabet[next_rand()
				    % (sizeof alphabet - 1)];

				switch (next_rand() % 3) {
				case 0:
					if (at < len)
						buf[at] = c;
					break;
				case 1:
					if (len + 1 < sizeof buf) {
						memmove(buf + at + 1, buf + at,
						    len - at);
						buf[at] = c;
						len++;
					}
					break;
				default:
					if (at < len) {
						memmove(buf + at, buf + at + 1,
						    len - at - 1);
						len--;
					}
					break;
				}
			}
			if (!agree(buf, len))
				all = 0;
			n++;
		}
	}
	ok(all, "%ld mutated bodies: pf_json and jansson agree on each", n);
}

static void
test_reads(void)
{
	const char *body = "{\"a\":1,\"s\":\"x\\ty\",\"a\":[2,3],\"o\":{}}";
	pf_json d;
	const char *s;
	size_t n;
	int a;

	pf_json_init(&d);
	ok(pf_json_parse(&d, body, strlen(body)) == PF_OK, "parses");
	a = pf_json_get(&d, 0, "a");
	ok(pf_json_type(&d, a) == PF_JSON_ARRAY && pf_json_count(&d, a) == 2,
	    "the last duplicate key wins");
	ok(pf_json_int(&d, pf_json_first(&d, a)) == 2
	        && pf_json_int(&d, pf_json_next(&d, a, pf_json_first(&d, a)))
	            == 3
	        && pf_json_next(
	               &d, a, pf_json_next(&d, a, pf_json_first(&d, a)))
	            < 0,
	    "array elements in order, then none");
	s = pf_json_str(&d, pf_json_get(&d, 0, "s"), &n);
	ok(s != NULL && n == 3 && memcmp(s, "x\ty", 3) == 0, "escapes decoded");
	ok(pf_json_first(&d, pf_json_get(&d, 0, "o")) < 0
	        && pf_json_get(&d, -1, "a") < 0
	        && pf_json_type(&d, -1) == PF_JSON_NONE
	        && pf_json_str(&d, a, &n) == NULL,
	    "missing values read as none");
	pf_json_fini(&d);
}

int
main(void)
{
	test_cases();
	test_depth();
	test_reads();
	test_mutations();
	return tap_done();
}
