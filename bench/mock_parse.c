/*
 * mock_parse.c -- knob headers and request fields.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <microhttpd.h>

#include "bench/mock_parse.h"
#include "common/limits.h"

/* The numeric knobs: header name, field, cap.  A path knob's name is the
 * header's without "x-mock-". */
static const struct {
	const char *name;
	size_t off;
	uint32_t max;
} knob_defs[] = {
	{ "x-mock-ttfb-ms", offsetof(mock_knobs, ttfb_ms),
	    PF_MOCK_DELAY_MAX_MS },
	{ "x-mock-chunks", offsetof(mock_knobs, chunks), PF_MOCK_CHUNKS_MAX },
	{ "x-mock-chunk-delay-ms", offsetof(mock_knobs, chunk_delay_ms),
	    PF_MOCK_DELAY_MAX_MS },
	{ "x-mock-chunk-bytes", offsetof(mock_knobs, chunk_bytes),
	    PF_MOCK_CHUNK_BYTES_MAX },
	{ "x-mock-hang-ms", offsetof(mock_knobs, hang_ms),
	    PF_MOCK_DELAY_MAX_MS },
	{ "x-mock-hang-after", offsetof(mock_knobs, hang_after),
	    PF_MOCK_CHUNKS_MAX },
	{ "x-mock-drop-after", offsetof(mock_knobs, drop_after),
	    PF_MOCK_CHUNKS_MAX },
	{ "x-mock-status", offsetof(mock_knobs, status), 599 },
	{ "x-mock-error-rate", offsetof(mock_knobs, error_rate), 100 },
	{ "x-mock-fail-first", offsetof(mock_knobs, fail_first),
	    PF_MOCK_CHUNKS_MAX },
	{ "x-mock-coalesce", offsetof(mock_knobs, coalesce), 1 },
	{ "x-mock-no-usage", offsetof(mock_knobs, no_usage), 1 },
};

#define KNOB_PREFIX_LEN (sizeof("x-mock-") - 1)

/* parse_u32: 1 parsed into *val, -1 empty, not decimal or > max. */
static int
parse_u32(const char *s, size_t n, uint32_t max, uint32_t *val)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*val = (uint32_t)v;
	return 1;
}

/* set_knob stores v into knob i, noting what "is set" means. */
static void
set_knob(mock_knobs *k, size_t i, uint32_t v)
{
	uint32_t *field = (uint32_t *)((char *)k + knob_defs[i].off);

	*field = v;
	if (field == &k->error_rate)
		k->rate_set = true;
	if (field == &k->fail_first)
		k->fail_first_set = true;
	if (field == &k->coalesce)
		k->coalesce_set = true;
}

void
mock_knobs_defaults(const mock_options *opt, mock_knobs *k)
{
	memset(k, 0, sizeof(*k));
	k->ttfb_ms = opt->ttfb_ms;
	k->chunks = opt->chunks;
	k->chunk_delay_ms = opt->chunk_delay_ms;
	k->chunk_bytes = opt->chunk_bytes;
	k->hang_ms = opt->hang_ms;
	k->hang_after = MOCK_NO_LIMIT;
	k->drop_after = MOCK_NO_LIMIT;
	k->coalesce = opt->coalesce == MOCK_COALESCE_ON ? 1 : 0;
	k->coalesce_set = opt->coalesce != MOCK_COALESCE_AUTO;
}

pf_err
mock_knobs_path(const char *spec, size_t len, mock_knobs *k, const char **bad)
{
	size_t pos = 0;

	*bad = "path knobs";
	if (len > PF_MOCK_PATH_KNOBS_MAX)
		return PF_EINVAL;
	while (pos < len) {
		const char *item = spec + pos;
		const char *comma = memchr(item, ',', len - pos);
		size_t n = comma != NULL ? (size_t)(comma - item) : len - pos;
		const char *eq = memchr(item, '=', n);
		size_t name_len;
		size_t i;
		uint32_t v = 0;

		pos += n + (comma != NULL ? 1 : 0);
		if (n == 0)
			continue; /* "a=1,,b=2" or a trailing comma */
		if (eq == NULL)
			return PF_EINVAL;
		name_len = (size_t)(eq - item);
		for (i = 0; i < sizeof(knob_defs) / sizeof(knob_defs[0]); i++) {
			const char *kn = knob_defs[i].name + KNOB_PREFIX_LEN;

			if (strlen(kn) == name_len
			    && memcmp(kn, item, name_len) == 0)
				break;
		}
		if (i == sizeof(knob_defs) / sizeof(knob_defs[0]))
			return PF_EINVAL;
		if (parse_u32(eq + 1, n - name_len - 1, knob_defs[i].max, &v)
		        < 0
		    || (knob_defs[i].off == offsetof(mock_knobs, status)
		        && v != 0 && v < 100)) {
			*bad = knob_defs[i].name;
			return PF_EINVAL;
		}
		set_knob(k, i, v);
	}
	*bad = NULL;
	return PF_OK;
}

pf_err
mock_knobs_headers(struct MHD_Connection *conn, mock_knobs *k, const char **bad)
{
	for (size_t i = 0; i < sizeof(knob_defs) / sizeof(knob_defs[0]); i++) {
		const char *s = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, knob_defs[i].name);
		uint32_t v = 0;

		if (s == NULL)
			continue;
		if (knob_defs[i].off == offsetof(mock_knobs, no_usage)) {
			/* historical spelling: "1" or "true", anything else
			 * means no */
			set_knob(k, i,
			    strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0);
			continue;
		}
		if (parse_u32(s, strlen(s), knob_defs[i].max, &v) < 0) {
			*bad = knob_defs[i].name;
			return PF_EINVAL;
		}
		set_knob(k, i, v);
	}
	if (k->status != 0 && k->status < 100) {
		*bad = "x-mock-status";
		return PF_EINVAL;
	}
	return PF_OK;
}

pf_err
mock_knobs_read(struct MHD_Connection *conn, const mock_options *opt,
    mock_knobs *k, const char **bad)
{
	mock_knobs_defaults(opt, k);
	return mock_knobs_headers(conn, k, bad);
}

/* text_bytes sums the bytes of the text a request carries (the prompt
 * token rule in docs/mock-model.md): strings count their bytes, integers
 * (token ids) 4, arrays their elements, objects their "text" and
 * "content" members. */
static uint64_t
text_bytes(const json_t *v, unsigned depth)
{
	uint64_t n = 0;
	const json_t *e;
	size_t i;

	if (v == NULL || depth > PF_JSON_MAX_DEPTH)
		return 0;
	if (json_is_string(v))
		return json_string_length(v);
	if (json_is_integer(v))
		return 4;
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			n += text_bytes(e, depth + 1);
		}
		return n;
	}
	if (json_is_object(v)) {
		e = json_object_get(v, "text");
		if (json_is_string(e))
			n += json_string_length(e);
		n += text_bytes(json_object_get(v, "content"), depth + 1);
	}
	return n;
}

static int
json_bool3(const json_t *v)
{
	if (v == NULL)
		return -1;
	return json_is_true(v) ? 1 : 0;
}

static pf_err
read_embeddings(const json_t *root, mock_fields *f, const char **bad)
{
	const json_t *v = json_object_get(root, "input");

	if (json_is_string(v)) {
		f->embed_inputs = 1;
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		f->embed_inputs = json_is_integer(json_array_get(v, 0))
		    ? 1
		    : (uint32_t)json_array_size(v);
	} else {
		*bad = "input must be a string or a non-empty array";
		return PF_EINVAL;
	}
	if (json_array_size(v) > PF_MOCK_EMBED_INPUTS_MAX) {
		*bad = "too many inputs";
		return PF_EINVAL;
	}
	f->embed_dims = PF_MOCK_EMBED_DIMS_DEFAULT;
	v = json_object_get(root, "dimensions");
	if (v != NULL) {
		json_int_t d = json_is_integer(v) ? json_integer_value(v) : 0;

		if (d < 1 || d > (json_int_t)PF_MOCK_EMBED_DIMS_MAX) {
			*bad = "dimensions out of range";
			return PF_EINVAL;
		}
		f->embed_dims = (uint32_t)d;
	}
	v = json_object_get(root, "encoding_format");
	f->embed_base64
	    = json_is_string(v) && strcmp(json_string_value(v), "base64") == 0;
	return PF_OK;
}

pf_err
mock_fields_read(
    const json_t *root, bool embeddings, mock_fields *f, const char **bad)
{
	static const char *const text_keys[]
	    = { "messages", "system", "prompt", "input", "instructions" };
	static const char *const max_keys[]
	    = { "max_tokens", "max_completion_tokens", "max_output_tokens" };
	const json_t *v;

	memset(f, 0, sizeof(*f));
	f->max_tokens = -1;
	f->include_usage = -1;
	v = json_object_get(root, "model");
	if (json_is_string(v))
		f->model = json_string_value(v);
	f->stream = json_bool3(json_object_get(root, "stream"));
	v = json_object_get(root, "stream_options");
	if (json_is_object(v))
		f->include_usage
		    = json_bool3(json_object_get(v, "include_usage"));
	for (size_t i = 0; i < sizeof(max_keys) / sizeof(max_keys[0]); i++) {
		v = json_object_get(root, max_keys[i]);
		if (json_is_integer(v)) {
			f->max_tokens = json_integer_value(v);
			break;
		}
	}
	for (size_t i = 0; i < sizeof(text_keys) / sizeof(text_keys[0]); i++)
		f->text_bytes
		    += text_bytes(json_object_get(root, text_keys[i]), 0);

	if (f->model == NULL) {
		*bad = "you must provide a model parameter (a string)";
		return PF_EINVAL;
	}
	if (strlen(f->model) > PF_MODEL_NAME_MAX) {
		*bad = "model name too long";
		return PF_EINVAL;
	}
	if (embeddings)
		return read_embeddings(root, f, bad);
	return PF_OK;
}
