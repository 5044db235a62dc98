#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"

#include "workers/curlfn.h"
#include "workers/provider.h"

void
wrk_body_fini(wrk_body *b)
{
	free(b->_owned);
	b->_owned = NULL;
	b->ptr = NULL;
	b->len = 0;
}

pf_err
wrk_body_for_candidate(const pf_relay_request *rq, const pf_candidate *c,
    int force_usage, wrk_body *ret)
{
	if (rq->body.len == 0) {
		ret->_owned = NULL;
		ret->ptr = rq->body.ptr;
		ret->len = 0;
		return PF_OK;
	}
	return wrk_rewrite_body(rq->body.ptr, rq->body.len,
	    (const char *)c->upstream_model.ptr, c->upstream_model.len,
	    force_usage, ret);
}

json_t *
wrk_json_object_load(const void *p, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(p, len, 0, &jerr);

	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

const wrk_provider *
wrk_provider_for(int32_t type)
{
	switch (type) {
	case PF_API_OPENAI:
		return &wrk_provider_openai;
	case PF_API_ANTHROPIC:
		return &wrk_provider_anthropic;
	default:
		return NULL;
	}
}

const pf_header *
wrk_header_get(const pf_relay_request *rq, const char *name)
{
	size_t n = strlen(name);

	for (uint32_t i = 0; i < rq->n_headers; i++) {
		const pf_header *h = &rq->headers[i];

		if (h->name.len == n && memcmp(h->name.ptr, name, n) == 0)
			return h;
	}
	return NULL;
}

static int
starts(pf_bytes b, const char *prefix)
{
	size_t n = strlen(prefix);

	return b.len >= n && memcmp(b.ptr, prefix, n) == 0;
}

static int
header_suits(pf_bytes name, int32_t type)
{
	if (name.len == 0 || name.len > PF_RELAY_HEADER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < name.len; i++) {
		uint8_t ch = name.ptr[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
		        || ch == '-'))
			return 0;
	}
	if (starts(name, "x-mock-"))
		return 1;
	if (type == PF_API_ANTHROPIC)
		return starts(name, "anthropic-");
	return name.len == 11 && starts(name, "openai-beta");
}

static int
value_safe(pf_bytes v)
{
	if (v.len > PF_RELAY_HEADER_VALUE_MAX)
		return 0;
	for (size_t i = 0; i < v.len; i++)
		if ((v.ptr[i] < 0x20 && v.ptr[i] != '\t') || v.ptr[i] == 0x7f)
			return 0;
	return 1;
}

pf_err
wrk_client_headers(
    const pf_relay_request *rq, const pf_candidate *c, struct curl_slist **list)
{
	char line[PF_RELAY_HEADER_NAME_MAX + PF_RELAY_HEADER_VALUE_MAX + 4];

	for (uint32_t i = 0; i < rq->n_headers; i++) {
		const pf_header *h = &rq->headers[i];
		struct curl_slist *n;
		size_t k;

		if (!header_suits(h->name, c->type) || !value_safe(h->value))
			continue;
		memcpy(line, h->name.ptr, h->name.len);
		k = h->name.len;
		/* "name;" is curl's way to send a header with no value */
		if (h->value.len == 0) {
			line[k++] = ';';
		} else {
			line[k++] = ':';
			line[k++] = ' ';
			memcpy(line + k, h->value.ptr, h->value.len);
			k += h->value.len;
		}
		line[k] = 0;
		n = wrk_slist_append(*list, line);
		if (n == NULL)
			return PF_ENOMEM;
		*list = n;
	}
	return PF_OK;
}

pf_err
wrk_headers_add(struct curl_slist **list, const char *key_name, pf_bytes key,
    const char *const *lines, size_t n)
{
	char line[PF_RELAY_HEADER_NAME_MAX + PF_SECRET_MAX + 4];
	size_t k = strlen(key_name);
	struct curl_slist *next;

	if (key.len > PF_SECRET_MAX || k > PF_RELAY_HEADER_NAME_MAX + 2)
		return PF_EINVAL;
	for (size_t i = 0; i < key.len; i++)
		if (key.ptr[i] < 0x20 || key.ptr[i] == 0x7f)
			return PF_EINVAL;
	if (key.len > 0) {
		memcpy(line, key_name, k);
		memcpy(line + k, key.ptr, key.len);
		line[k + key.len] = 0;
		next = wrk_slist_append(*list, line);
		/* only the bytes written held the key */
		explicit_bzero(line, k + key.len + 1);
		if (next == NULL)
			return PF_ENOMEM;
		*list = next;
	}
	for (size_t i = 0; i < n; i++) {
		next = wrk_slist_append(*list, lines[i]);
		if (next == NULL)
			return PF_ENOMEM;
		*list = next;
	}
	return PF_OK;
}

/* Does any real in v need 17 significant digits to survive a round
 * trip?  Then the dump uses 17, else 16 (0.7 stays "0.7"). */
static int
needs_17_digits(const json_t *v, unsigned depth)
{
	const char *key;
	const json_t *m;
	size_t i;
	char tmp[40];

	if (depth > PF_JSON_MAX_DEPTH * 4)
		return 1;
	if (json_is_real(v)) {
		double d = json_real_value(v);

		snprintf(tmp, sizeof tmp, "%.16g", d);
		return strtod(tmp, NULL) != d;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, m)
		{
			if (needs_17_digits(m, depth + 1))
				return 1;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, m)
		{
			if (needs_17_digits(m, depth + 1))
				return 1;
		}
	}
	return 0;
}

char *
wrk_json_dumps(const json_t *v)
{
	int prec = needs_17_digits(v, 0) ? 17 : 16;

	return json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(prec));
}
