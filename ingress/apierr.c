/*
 * apierr.c -- OpenAI-style error bodies.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/msg.h"
#include "ingress/apierr.h"

const ing_apierr ING_ERR_BAD_REQUEST = { 400, "invalid_request_error", NULL };
const ing_apierr ING_ERR_INVALID_KEY
    = { 401, "invalid_request_error", "invalid_api_key" };
const ing_apierr ING_ERR_MODEL_DENIED
    = { 403, "invalid_request_error", "model_not_allowed" };
const ing_apierr ING_ERR_IP_DENIED
    = { 403, "invalid_request_error", "ip_not_allowed" };
const ing_apierr ING_ERR_NOT_FOUND
    = { 404, "invalid_request_error", "unknown_url" };
const ing_apierr ING_ERR_MODEL_NOT_FOUND
    = { 404, "invalid_request_error", "model_not_found" };
const ing_apierr ING_ERR_TOO_LARGE
    = { 413, "invalid_request_error", "request_too_large" };
const ing_apierr ING_ERR_HEADERS_TOO_LARGE
    = { 431, "invalid_request_error", "request_header_fields_too_large" };
const ing_apierr ING_ERR_RATE_LIMITED
    = { 429, "requests", "rate_limit_exceeded" };
const ing_apierr ING_ERR_INSUFFICIENT_QUOTA
    = { 429, "insufficient_quota", "insufficient_quota" };
const ing_apierr ING_ERR_INTERNAL = { 500, "server_error", "internal_error" };
const ing_apierr ING_ERR_UPSTREAM = { 502, "upstream_error", "upstream_error" };
const ing_apierr ING_ERR_NO_CHANNEL
    = { 503, "server_error", "no_channel_available" };
const ing_apierr ING_ERR_NO_WORKER
    = { 503, "server_error", "no_worker_available" };
const ing_apierr ING_ERR_UNAVAILABLE
    = { 503, "server_error", "service_unavailable" };
const ing_apierr ING_ERR_TIMEOUT = { 504, "upstream_error", "timeout" };
const ing_apierr ING_ERR_WORKER_LOST = { 504, "server_error", "worker_lost" };

/* fallback when even building the JSON fails: static, always valid */
static const char oom_body[]
    = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
      "\"param\":null,\"code\":\"internal_error\"}}";

static json_t *
string_lossy(const char *s)
{
	json_t *j = json_string(s);

	if (j != NULL)
		return j;
	/* not UTF-8: keep the ASCII bytes, replace the rest */
	size_t n = strlen(s);
	char *copy = malloc(n + 1);
	if (copy == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		copy[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	copy[n] = '\0';
	j = json_string(copy);
	free(copy);
	return j;
}

char *
ing_apierr_json(const ing_apierr *e, const char *message, size_t *ret_len)
{
	json_t *inner = json_object();
	json_t *root = json_object();
	char *out = NULL;

	if (inner == NULL || root == NULL)
		goto done;
	if (json_object_set_new(
	        inner, "message", string_lossy(message != NULL ? message : ""))
	    != 0)
		goto done;
	if (json_object_set_new(inner, "type", json_string(e->type)) != 0)
		goto done;
	if (json_object_set_new(inner, "param", json_null()) != 0)
		goto done;
	if (json_object_set_new(inner, "code",
	        e->code != NULL ? json_string(e->code) : json_null())
	    != 0)
		goto done;
	if (json_object_set(root, "error", inner) != 0)
		goto done;
	out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
	json_decref(inner);
	json_decref(root);
	if (out == NULL)
		out = strdup(oom_body);
	if (out != NULL)
		*ret_len = strlen(out);
	return out;
}

static const char *
anthropic_type(unsigned status)
{
	switch (status) {
	case 400:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 503:
	case 529:
		return "overloaded_error";
	default:
		return "api_error";
	}
}

char *
ing_apierr_anthropic_json(
    const ing_apierr *e, const char *message, size_t *ret_len)
{
	json_t *root = json_pack("{s:s, s:{s:s, s:o}}", "type", "error",
	    "error", "type", anthropic_type(e->status), "message",
	    string_lossy(message != NULL ? message : ""));
	char *out = NULL;

	if (root != NULL)
		out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (out == NULL)
		out = strdup(oom_body);
	if (out != NULL)
		*ret_len = strlen(out);
	return out;
}

const ing_apierr *
ing_apierr_for_end(int reason)
{
	switch (reason) {
	case PF_END_TIMEOUT:
		return &ING_ERR_TIMEOUT;
	case PF_END_WORKER_LOST:
		return &ING_ERR_WORKER_LOST;
	case PF_END_NO_CHANNEL:
		return &ING_ERR_NO_CHANNEL;
	case PF_END_UPSTREAM_ERROR:
	default:
		return &ING_ERR_UPSTREAM;
	}
}

const ing_apierr *
ing_apierr_for_failure(int reason, int upstream_status)
{
	if (reason == PF_END_UPSTREAM_ERROR && upstream_status == 429)
		return &ING_ERR_RATE_LIMITED;
	return ing_apierr_for_end(reason);
}
