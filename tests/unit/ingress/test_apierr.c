/* test_apierr.c -- OpenAI error JSON shapes. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/msg.h"
#include "ingress/apierr.h"
#include "tests/tap.h"

static json_t *
parse(const ing_apierr *e, const char *msg)
{
	size_t len = 0;
	char *s = ing_apierr_json(e, msg, &len);
	json_t *j = NULL;

	ok(s != NULL && len == strlen(s), "body built for %u", e->status);
	if (s != NULL)
		j = json_loadb(s, len, 0, NULL);
	free(s);
	return j;
}

/* anthropic_type_is says whether e's Anthropic body has error.type want. */
static int
anthropic_type_is(const ing_apierr *e, const char *msg, const char *want)
{
	size_t alen = 0;
	char *a = ing_apierr_anthropic_json(e, msg, &alen);
	json_t *j = a != NULL ? json_loadb(a, alen, 0, NULL) : NULL;
	const char *t = json_string_value(
	    json_object_get(json_object_get(j, "error"), "type"));
	int same = t != NULL && strcmp(t, want) == 0;

	free(a);
	json_decref(j);
	return same;
}

static const struct {
	const ing_apierr *e;
	const char *msg, *type, *name;
} anthropic_types[] = {
	{ &ING_ERR_MODEL_NOT_FOUND, "m", "not_found_error",
	    "anthropic: 404 is not_found_error" },
	{ &ING_ERR_RATE_LIMITED, "slow", "rate_limit_error",
	    "anthropic: 429 is rate_limit_error" },
};

static const struct {
	pf_end_reason reason;
	unsigned status;
	const char *name;
} end_statuses[] = {
	{ PF_END_UPSTREAM_ERROR, 502, "upstream error -> 502" },
	{ PF_END_TIMEOUT, 504, "timeout -> 504" },
	{ PF_END_WORKER_LOST, 504, "worker lost -> 504" },
	{ PF_END_NO_CHANNEL, 503, "no channel -> 503" },
};

int
main(void)
{
	json_t *j = parse(&ING_ERR_INVALID_KEY, "Incorrect API key \"x\"");
	json_t *err = json_object_get(j, "error");

	ok(json_is_object(err), "top-level error object");
	ok(json_object_size(j) == 1, "only the error key");
	ok(strcmp(json_string_value(json_object_get(err, "message")),
	       "Incorrect API key \"x\"")
	        == 0,
	    "message escaped and round-trips");
	ok(strcmp(json_string_value(json_object_get(err, "type")),
	       "invalid_request_error")
	        == 0,
	    "401 type");
	ok(strcmp(json_string_value(json_object_get(err, "code")),
	       "invalid_api_key")
	        == 0,
	    "401 code");
	ok(json_is_null(json_object_get(err, "param")), "param is null");
	json_decref(j);

	j = parse(&ING_ERR_BAD_REQUEST, "bad");
	err = json_object_get(j, "error");
	ok(json_is_null(json_object_get(err, "code")), "400 code is null");
	json_decref(j);

	j = parse(&ING_ERR_TOO_LARGE, "\xff\xfe not utf8");
	err = json_object_get(j, "error");
	ok(j != NULL, "invalid UTF-8 message still gives valid JSON");
	ok(strcmp(json_string_value(json_object_get(err, "code")),
	       "request_too_large")
	        == 0,
	    "413 code");
	json_decref(j);

	j = parse(&ING_ERR_MODEL_NOT_FOUND, "nope");
	err = json_object_get(j, "error");
	ok(strcmp(json_string_value(json_object_get(err, "code")),
	       "model_not_found")
	        == 0,
	    "404 model code");
	json_decref(j);

	size_t alen = 0;
	char *a = ing_apierr_anthropic_json(&ING_ERR_INVALID_KEY, "no", &alen);
	j = a != NULL ? json_loadb(a, alen, 0, NULL) : NULL;
	free(a);
	err = json_object_get(j, "error");
	ok(j != NULL
	        && strcmp(
	               json_string_value(json_object_get(j, "type")), "error")
	            == 0,
	    "anthropic: type error");
	ok(err != NULL
	        && strcmp(json_string_value(json_object_get(err, "type")),
	               "authentication_error")
	            == 0
	        && strcmp(
	               json_string_value(json_object_get(err, "message")), "no")
	            == 0,
	    "anthropic: 401 is authentication_error with the message");
	json_decref(j);
	for (size_t i = 0;
	     i < sizeof anthropic_types / sizeof anthropic_types[0]; i++)
		ok(anthropic_type_is(anthropic_types[i].e,
		       anthropic_types[i].msg, anthropic_types[i].type),
		    "%s", anthropic_types[i].name);

	for (size_t i = 0; i < sizeof end_statuses / sizeof end_statuses[0];
	     i++)
		ok(ing_apierr_for_end(end_statuses[i].reason)->status
		        == end_statuses[i].status,
		    "%s", end_statuses[i].name);
	ok(ing_apierr_for_failure(PF_END_UPSTREAM_ERROR, 429)->status == 429
	        && strcmp(
	               ing_apierr_for_failure(PF_END_UPSTREAM_ERROR, 429)->code,
	               "rate_limit_exceeded")
	            == 0,
	    "every channel rate-limited (last status 429) -> 429");
	ok(ing_apierr_for_failure(PF_END_UPSTREAM_ERROR, 500)->status == 502
	        && ing_apierr_for_failure(PF_END_TIMEOUT, 429)->status == 504,
	    "other failures keep their class");
	return tap_done();
}
