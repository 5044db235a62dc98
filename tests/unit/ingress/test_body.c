/* test_body.c -- JSON depth pre-scan and request body checks. */
#include <string.h>

#include "ingress/body.h"
#include "tests/tap.h"

static pf_err
parse(const char *s, ing_body_info *info)
{
	char err[256];

	return ing_body_parse(s, strlen(s), info, err, sizeof(err));
}

int
main(void)
{
	char deep[200];
	ing_body_info info;

	ok(ing_json_depth_ok("{}", 2, 1), "depth 1 ok");
	ok(!ing_json_depth_ok("{\"a\":[]}", 8, 1), "depth 2 > 1");
	ok(ing_json_depth_ok("{\"a\":\"[[[[\"}", 11, 1),
	    "brackets in strings ignored");
	ok(ing_json_depth_ok("{\"a\":\"\\\"[[[[\"}", 13, 1),
	    "escaped quote keeps string open");
	memset(deep, '[', 65);
	ok(ing_json_depth_ok(deep, 64, 64), "64 levels ok");
	ok(!ing_json_depth_ok(deep, 65, 64), "65 levels refused");

	ok(parse("{\"model\":\"gpt-4o\",\"messages\":[]}", &info) == PF_OK
	        && strcmp(info.model, "gpt-4o") == 0 && !info.stream,
	    "minimal body");
	ok(parse("{\"model\":\"m\",\"stream\":true,"
	         "\"stream_options\":{\"include_usage\":true}}",
	       &info)
	            == PF_OK
	        && info.stream && info.client_usage,
	    "stream with usage");
	ok(parse("{\"model\":\"m\",\"stream\":false,"
	         "\"stream_options\":{\"include_usage\":true}}",
	       &info)
	            == PF_OK
	        && !info.client_usage,
	    "usage only counts on streams");
	ok(parse("{\"model\":\"m\",\"max_tokens\":50,\"messages\":[{"
	         "\"role\":\"user\",\"content\":\"hello world! hello "
	         "world!\"}]}",
	       &info)
	            == PF_OK
	        && info.prompt_tokens == 6,
	    "prompt estimate: the input text only (26 bytes: 6), not the "
	    "whole body");
	ok(parse("{\"model\":\"m\"", &info) == PF_EINVAL, "truncated JSON");
	ok(parse("[]", &info) == PF_EINVAL, "array body");
	ok(parse("{}", &info) == PF_EINVAL, "missing model");
	ok(parse("{\"model\":\"\"}", &info) == PF_EINVAL, "empty model");
	ok(parse("{\"model\":7}", &info) == PF_EINVAL, "numeric model");
	ok(parse("{\"model\":\"m\",\"stream\":\"yes\"}", &info) == PF_EINVAL,
	    "stream not boolean");
	ok(parse("{\"model\":\"m\",\"stream_options\":1}", &info) == PF_EINVAL,
	    "stream_options not object");
	ok(parse("{\"model\":\"\xc3\x28\"}", &info) == PF_EINVAL,
	    "invalid UTF-8 refused");
	ok(parse("", &info) == PF_EINVAL, "empty body");

	char longm[PF_MODEL_NAME_MAX + 32];
	memset(longm, 0, sizeof(longm));
	memcpy(longm, "{\"model\":\"", 10);
	memset(longm + 10, 'x', PF_MODEL_NAME_MAX + 1);
	memcpy(longm + 10 + PF_MODEL_NAME_MAX + 1, "\"}", 2);
	ok(parse(longm, &info) == PF_EINVAL, "model name over the cap");

	char nested[400];
	size_t n = 0;
	n += (size_t)snprintf(
	    nested, sizeof(nested), "{\"model\":\"m\",\"x\":");
	for (int i = 0; i < 70; i++)
		nested[n++] = '[';
	for (int i = 0; i < 70; i++)
		nested[n++] = ']';
	nested[n++] = '}';
	nested[n] = '\0';
	ok(parse(nested, &info) == PF_EINVAL, "deep nesting refused");
	return tap_done();
}
