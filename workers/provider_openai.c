/*
 * provider_openai.c -- OpenAI-compatible channels (OpenAI, DeepSeek,
 * OpenRouter, vLLM, Gemini's OpenAI endpoint, ...).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/limits.h"
#include "workers/provider.h"
#include "workers/sse.h"

static pf_err
openai_headers(
    const pf_relay_request *rq, const pf_candidate *c, struct curl_slist **list)
{
	/* no Expect: 100-continue round trip for large bodies */
	static const char *const fixed[] = {
		"Content-Type: application/json",
		"Expect:",
	};

	(void)rq;
	return wrk_headers_add(list, "Authorization: Bearer ", c->key, fixed,
	    sizeof fixed / sizeof fixed[0]);
}

int
wrk_openai_wants_usage(const uint8_t *path, size_t len)
{
	static const char chat[] = "/chat/completions";
	static const char legacy[] = "/completions";

	return (len == sizeof chat - 1 && memcmp(path, chat, len) == 0)
	    || (len == sizeof legacy - 1 && memcmp(path, legacy, len) == 0);
}

/* Would wrk_rewrite_body change body?  Most requests keep their bytes,
 * and this read costs a fraction of building jansson's tree. */
static int
rewrite_needed(const uint8_t *body, size_t len, const char *model, size_t mlen,
    int force_usage)
{
	pf_json d;
	int so, need = 0;

	if (mlen == 0 && !force_usage)
		return 0;
	pf_json_init(&d);
	/* not JSON (or no memory to read it): sent as it is */
	if (pf_json_parse(&d, body, len) != PF_OK
	    || pf_json_type(&d, 0) != PF_JSON_OBJECT)
		goto done;
	if (mlen > 0
	    && !pf_json_str_eq(&d, pf_json_get(&d, 0, "model"), model, mlen))
		need = 1;
	so = pf_json_get(&d, 0, "stream_options");
	if (force_usage
	    && pf_json_type(&d, pf_json_get(&d, so, "include_usage"))
	        != PF_JSON_TRUE)
		need = 1;
done:
	pf_json_fini(&d);
	return need;
}

pf_err
wrk_rewrite_body(const uint8_t *body, size_t len, const char *model,
    size_t mlen, int force_usage, wrk_body *ret)
{
	json_t *root, *cur, *so, *v;
	json_error_t jerr;
	int changed = 0;
	char *out;
	pf_err err = PF_OK;

	ret->_owned = NULL;
	ret->ptr = body;
	ret->len = len;
	if (!rewrite_needed(body, len, model, mlen, force_usage))
		return PF_OK;
	root = json_loadb((const char *)body, len, 0, &jerr);
	if (!json_is_object(root))
		goto done;
	cur = json_object_get(root, "model");
	if (mlen > 0
	    && !(json_is_string(cur) && json_string_length(cur) == mlen
	        && memcmp(json_string_value(cur), model, mlen) == 0)) {
		v = json_stringn(model, mlen);
		if (v == NULL) {
			err = PF_EINVAL;
			goto done;
		}
		if (json_object_set_new(root, "model", v) != 0) {
			err = PF_ENOMEM;
			goto done;
		}
		changed = 1;
	}
	if (force_usage) {
		so = json_object_get(root, "stream_options");
		if (!json_is_object(so)) {
			so = json_object();
			if (so == NULL
			    || json_object_set_new(root, "stream_options", so)
			        != 0) {
				err = PF_ENOMEM;
				goto done;
			}
		}
		if (!json_is_true(json_object_get(so, "include_usage"))) {
			if (json_object_set_new(
			        so, "include_usage", json_true())
			    != 0) {
				err = PF_ENOMEM;
				goto done;
			}
			changed = 1;
		}
	}
	if (!changed)
		goto done;
	out = wrk_json_dumps(root);
	if (out == NULL) {
		err = PF_ENOMEM;
		goto done;
	}
	ret->_owned = out;
	ret->ptr = (const uint8_t *)out;
	ret->len = strlen(out);
done:
	json_decref(root);
	return err;
}

static pf_err
openai_body(const pf_relay_request *rq, const pf_candidate *c, wrk_body *ret)
{
	int force
	    = rq->stream && wrk_openai_wants_usage(rq->path.ptr, rq->path.len);

	return wrk_body_for_candidate(rq, c, force, ret);
}

/* Usage and delivered text of a chunk or a whole answer. */
static void
openai_read(pf_json *d, wrk_usage *u)
{
	pf_usage_tokens t;

	wrk_usage_openai_content(d, &u->completion);
	if (wrk_usage_openai_read(d, &t)) {
		u->reported = t;
		u->found = 1;
	}
}

/* Parses p[0..len) into d: 1 when it is a JSON object. */
static int
load_object(pf_json *d, const void *p, size_t len)
{
	return pf_json_parse(d, p, len) == PF_OK
	    && pf_json_type(d, 0) == PF_JSON_OBJECT;
}

static void
openai_stream_event(const pf_relay_request *rq, wrk_usage *u, wrk_buf *scratch,
    const uint8_t *ev, size_t len, int *ret_drop)
{
	pf_json d;
	int has;

	*ret_drop = 0;
	has = wrk_sse_data(ev, len, scratch);
	if (has <= 0 || strcmp((const char *)scratch->data, "[DONE]") == 0)
		return;
	pf_json_init(&d);
	if (load_object(&d, scratch->data, scratch->len)) {
		openai_read(&d, u);
		if (wrk_usage_openai_is_usage_chunk(&d) && !rq->client_usage)
			*ret_drop = 1;
	}
	pf_json_fini(&d);
}

static void
openai_response(
    const pf_relay_request *rq, wrk_usage *u, const uint8_t *body, size_t len)
{
	pf_json d;

	(void)rq;
	pf_json_init(&d);
	if (load_object(&d, body, len))
		openai_read(&d, u);
	pf_json_fini(&d);
}

const wrk_provider wrk_provider_openai = {
	.name = "openai",
	.headers = openai_headers,
	.body = openai_body,
	.stream_event = openai_stream_event,
	.response = openai_response,
};

int
wrk_error_well_formed(const uint8_t *body, size_t len)
{
	pf_json d;
	int ok;

	pf_json_init(&d);
	ok = load_object(&d, body, len) && pf_json_get(&d, 0, "error") >= 0;
	pf_json_fini(&d);
	return ok;
}

pf_err
wrk_openai_error(long status, wrk_buf *out)
{
	char msg[96];
	json_t *e;
	char *dump;
	pf_err err;

	snprintf(msg, sizeof msg, "upstream answered status %ld", status);
	e = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg, "type",
	    "upstream_error", "param", "code");
	dump = e != NULL ? wrk_json_dumps(e) : NULL;
	json_decref(e);
	if (dump == NULL)
		return PF_ENOMEM;
	out->len = 0;
	err = wrk_buf_append(out, dump, strlen(dump), PF_ERROR_BODY_MAX);
	free(dump);
	return err;
}
