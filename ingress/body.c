/*
 * body.c -- request body checks (common/json.h; jansson words the
 * message for a body that does not parse).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/json.h"
#include "common/tokest.h"
#include "ingress/body.h"

int
ing_json_depth_ok(const char *buf, size_t len, unsigned max_depth)
{
	unsigned depth = 0;
	int in_string = 0;
	int escaped = 0;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (c == '\\')
				escaped = 1;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_string = 1;
			break;
		case '[':
		case '{':
			depth++;
			if (depth > max_depth)
				return 0;
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return 1;
}

/* The message of a body pf_json refused: jansson's own words, as before
 * the fast parser (both refuse the same bodies). */
static void
parse_error(const char *buf, size_t len, char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, 0, &jerr);

	if (root != NULL) {
		/* unreachable while the two agree (tests/unit/common) */
		json_decref(root);
		snprintf(errbuf, errlen,
		    "We could not parse the JSON body of your request.");
		return;
	}
	snprintf(errbuf, errlen,
	    "We could not parse the JSON body of your request: %s "
	    "(line %d, column %d).",
	    jerr.text, jerr.line, jerr.column);
}

pf_err
ing_body_parse(const char *buf, size_t len, ing_body_info *ret_info,
    char *errbuf, size_t errlen)
{
	pf_json d;
	int v;
	const char *s;
	size_t n;
	ing_body_info info;
	pf_tokest est = { 0 };
	pf_err err;

	if (len == 0) {
		snprintf(errbuf, errlen,
		    "Request body is empty; expected a "
		    "JSON object.");
		return PF_EINVAL;
	}
	if (!ing_json_depth_ok(buf, len, PF_JSON_MAX_DEPTH)) {
		snprintf(errbuf, errlen,
		    "Request body is nested deeper than %u levels.",
		    PF_JSON_MAX_DEPTH);
		return PF_EINVAL;
	}
	pf_json_init(&d);
	err = pf_json_parse(&d, buf, len);
	if (err != PF_OK) {
		if (err == PF_EINVAL)
			parse_error(buf, len, errbuf, errlen);
		pf_json_fini(&d);
		return err;
	}
	err = PF_EINVAL;
	memset(&info, 0, sizeof(info));
	if (pf_json_type(&d, 0) != PF_JSON_OBJECT) {
		snprintf(
		    errbuf, errlen, "The request body must be a JSON object.");
		goto done;
	}
	v = pf_json_get(&d, 0, "model");
	if (v < 0) {
		snprintf(errbuf, errlen, "you must provide a model parameter");
		goto done;
	}
	s = pf_json_str(&d, v, &n);
	if (s == NULL || n == 0) {
		snprintf(errbuf, errlen, "'model' must be a non-empty string.");
		goto done;
	}
	if (n > PF_MODEL_NAME_MAX || memchr(s, '\0', n) != NULL) {
		snprintf(errbuf, errlen,
		    "'model' is longer than %u bytes or malformed.",
		    PF_MODEL_NAME_MAX);
		goto done;
	}
	memcpy(info.model, s, n);
	info.model[n] = '\0';
	v = pf_json_get(&d, 0, "stream");
	if (v >= 0 && pf_json_type(&d, v) != PF_JSON_NULL) {
		if (pf_json_type(&d, v) != PF_JSON_TRUE
		    && pf_json_type(&d, v) != PF_JSON_FALSE) {
			snprintf(errbuf, errlen, "'stream' must be a boolean.");
			goto done;
		}
		info.stream = pf_json_type(&d, v) == PF_JSON_TRUE;
	}
	v = pf_json_get(&d, 0, "stream_options");
	if (v >= 0 && pf_json_type(&d, v) != PF_JSON_NULL) {
		if (pf_json_type(&d, v) != PF_JSON_OBJECT) {
			snprintf(errbuf, errlen,
			    "'stream_options' must be an object.");
			goto done;
		}
		int u = pf_json_get(&d, v, "include_usage");
		enum pf_json_type ut = pf_json_type(&d, u);

		if (ut != PF_JSON_NONE && ut != PF_JSON_NULL
		    && ut != PF_JSON_TRUE && ut != PF_JSON_FALSE) {
			snprintf(errbuf, errlen,
			    "'stream_options.include_usage' must be a "
			    "boolean.");
			goto done;
		}
		info.client_usage = info.stream && ut == PF_JSON_TRUE;
	}
	info.max_tokens = -1;
	static const char *const max_keys[]
	    = { "max_tokens", "max_completion_tokens", "max_output_tokens" };
	for (size_t i = 0; i < sizeof(max_keys) / sizeof(max_keys[0]); i++) {
		v = pf_json_get(&d, 0, max_keys[i]);
		if (pf_json_type(&d, v) == PF_JSON_INTEGER
		    && pf_json_int(&d, v) >= 0
		    && pf_json_int(&d, v) > info.max_tokens)
			info.max_tokens = pf_json_int(&d, v);
	}
	pf_tokest_prompt_json(&est, &d);
	info.prompt_tokens = pf_tokest_tokens(&est);
	*ret_info = info;
	err = PF_OK;
done:
	pf_json_fini(&d);
	return err;
}
