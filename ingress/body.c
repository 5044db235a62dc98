/*
 * body.c -- request body checks (jansson).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

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

pf_err
ing_body_parse(const char *buf, size_t len, ing_body_info *ret_info,
    char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	json_t *v;
	ing_body_info info;
	pf_err err = PF_EINVAL;

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
	root = json_loadb(buf, len, 0, &jerr);
	if (root == NULL) {
		snprintf(errbuf, errlen,
		    "We could not parse the JSON body of your request: %s "
		    "(line %d, column %d).",
		    jerr.text, jerr.line, jerr.column);
		return PF_EINVAL;
	}
	memset(&info, 0, sizeof(info));
	if (!json_is_object(root)) {
		snprintf(
		    errbuf, errlen, "The request body must be a JSON object.");
		goto done;
	}
	v = json_object_get(root, "model");
	if (v == NULL) {
		snprintf(errbuf, errlen, "you must provide a model parameter");
		goto done;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(errbuf, errlen, "'model' must be a non-empty string.");
		goto done;
	}
	if (json_string_length(v) > PF_MODEL_NAME_MAX
	    || memchr(json_string_value(v), '\0', json_string_length(v))
	        != NULL) {
		snprintf(errbuf, errlen,
		    "'model' is longer than %u bytes or malformed.",
		    PF_MODEL_NAME_MAX);
		goto done;
	}
	memcpy(info.model, json_string_value(v), json_string_length(v));
	info.model[json_string_length(v)] = '\0';
	v = json_object_get(root, "stream");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			snprintf(errbuf, errlen, "'stream' must be a boolean.");
			goto done;
		}
		info.stream = json_is_true(v);
	}
	v = json_object_get(root, "stream_options");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_object(v)) {
			snprintf(errbuf, errlen,
			    "'stream_options' must be an object.");
			goto done;
		}
		json_t *u = json_object_get(v, "include_usage");
		if (u != NULL && !json_is_null(u) && !json_is_boolean(u)) {
			snprintf(errbuf, errlen,
			    "'stream_options.include_usage' must be a "
			    "boolean.");
			goto done;
		}
		info.client_usage = info.stream && json_is_true(u);
	}
	info.max_tokens = -1;
	static const char *const max_keys[]
	    = { "max_tokens", "max_completion_tokens", "max_output_tokens" };
	for (size_t i = 0; i < sizeof(max_keys) / sizeof(max_keys[0]); i++) {
		v = json_object_get(root, max_keys[i]);
		if (json_is_integer(v) && json_integer_value(v) >= 0
		    && json_integer_value(v) > info.max_tokens)
			info.max_tokens = (int64_t)json_integer_value(v);
	}
	*ret_info = info;
	err = PF_OK;
done:
	json_decref(root);
	return err;
}
