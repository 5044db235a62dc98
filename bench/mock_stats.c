/*
 * mock_stats.c -- counters and the last request, rendered with jansson
 * only when someone asks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "bench/mock_stats.h"
#include "common/limits.h"

typedef struct mock_last {
	bool valid;
	char method[8];
	char path[256];
	char model[PF_MODEL_NAME_MAX + 1];
	bool has_model;
	int stream;
	int include_usage;
	int64_t max_tokens;
	char *headers; /* "name\0value\0"..., names lower-cased */
	size_t headers_len;
	char *body;
	size_t body_len;   /* bytes kept */
	size_t body_bytes; /* bytes received */
} mock_last;

struct mock_stats {
	const char *const *names;
	unsigned nroutes;
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t *by_route;
	atomic_uint_fast64_t counters[MOCK_COUNTER_COUNT];
	pthread_mutex_t mu;
	mock_last last;
};

static const char *const counter_names[MOCK_COUNTER_COUNT] = {
	[MOCK_CHUNKS_SENT] = "chunks_sent",
	[MOCK_ERRORS_INJECTED] = "errors_injected",
	[MOCK_DROPS] = "drops",
	[MOCK_HANGS] = "hangs",
	[MOCK_BAD_REQUESTS] = "bad_requests",
};

pf_err
mock_stats_new(const char *const *names, unsigned nroutes, mock_stats **ret)
{
	mock_stats *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return PF_ENOMEM;
	s->names = names;
	s->nroutes = nroutes;
	s->by_route = calloc(nroutes, sizeof(*s->by_route));
	s->last.headers = malloc(PF_MOCK_STATS_HEADERS_MAX);
	s->last.body = malloc(PF_MOCK_STATS_BODY_MAX);
	if (s->by_route == NULL || s->last.headers == NULL
	    || s->last.body == NULL) {
		free(s->by_route);
		free(s->last.headers);
		free(s->last.body);
		free(s);
		return PF_ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	*ret = s;
	return PF_OK;
}

void
mock_stats_free(mock_stats *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->by_route);
	free(s->last.headers);
	free(s->last.body);
	free(s);
}

void
mock_stats_add(mock_stats *s, mock_counter c)
{
	atomic_fetch_add_explicit(&s->counters[c], 1, memory_order_relaxed);
}

typedef struct header_sink {
	char *buf;
	size_t len, cap;
} header_sink;

static enum MHD_Result
header_cb(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	header_sink *s = cls;
	size_t kl = strlen(key), vl = value != NULL ? strlen(value) : 0;

	(void)kind;
	if (s->len + kl + vl + 2 > s->cap)
		return MHD_NO;
	for (size_t i = 0; i < kl; i++) {
		char c = key[i];

		s->buf[s->len + i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	s->buf[s->len + kl] = '\0';
	if (vl > 0)
		memcpy(s->buf + s->len + kl + 1, value, vl);
	s->buf[s->len + kl + 1 + vl] = '\0';
	s->len += kl + vl + 2;
	return MHD_YES;
}

static void
copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

uint64_t
mock_stats_record(mock_stats *s, unsigned route, struct MHD_Connection *conn,
    const mock_seen *seen)
{
	mock_last *l = &s->last;
	header_sink hs;
	uint64_t seq = atomic_fetch_add(&s->requests, 1) + 1;

	if (route < s->nroutes)
		atomic_fetch_add(&s->by_route[route], 1);
	pthread_mutex_lock(&s->mu);
	l->valid = true;
	copy_str(l->method, sizeof(l->method), seen->method);
	copy_str(l->path, sizeof(l->path), seen->path);
	l->has_model = seen->model != NULL;
	if (l->has_model)
		copy_str(l->model, sizeof(l->model), seen->model);
	l->stream = seen->stream;
	l->include_usage = seen->include_usage;
	l->max_tokens = seen->max_tokens;
	hs.buf = l->headers;
	hs.len = 0;
	hs.cap = PF_MOCK_STATS_HEADERS_MAX;
	MHD_get_connection_values(conn, MHD_HEADER_KIND, header_cb, &hs);
	l->headers_len = hs.len;
	l->body_bytes = seen->body_too_big ? 0 : seen->body_len;
	l->body_len = l->body_bytes < PF_MOCK_STATS_BODY_MAX
	    ? l->body_bytes
	    : PF_MOCK_STATS_BODY_MAX;
	if (l->body_len > 0)
		memcpy(l->body, seen->body, l->body_len);
	pthread_mutex_unlock(&s->mu);
	return seq;
}

static json_t *
tri_json(int v)
{
	return v < 0 ? json_null() : json_boolean(v);
}

static json_t *
str_or_null(const char *v)
{
	return v != NULL ? json_string(v) : json_null();
}

static json_t *
last_json(const mock_last *l)
{
	json_t *o, *h;
	const char *auth = NULL, *xkey = NULL;

	if (!l->valid)
		return json_null();
	h = json_object();
	for (size_t i = 0; i < l->headers_len;) {
		const char *k = l->headers + i;
		const char *v = k + strlen(k) + 1;

		json_object_set_new(h, k, json_string(v));
		if (strcmp(k, "authorization") == 0)
			auth = v;
		if (strcmp(k, "x-api-key") == 0)
			xkey = v;
		i = (size_t)(v - l->headers) + strlen(v) + 1;
	}
	o = json_object();
	json_object_set_new(o, "method", json_string(l->method));
	json_object_set_new(o, "path", json_string(l->path));
	json_object_set_new(
	    o, "model", str_or_null(l->has_model ? l->model : NULL));
	json_object_set_new(o, "stream", tri_json(l->stream));
	json_object_set_new(o, "include_usage", tri_json(l->include_usage));
	json_object_set_new(o, "max_tokens",
	    l->max_tokens < 0 ? json_null() : json_integer(l->max_tokens));
	json_object_set_new(o, "authorization", str_or_null(auth));
	json_object_set_new(o, "x_api_key", str_or_null(xkey));
	json_object_set_new(o, "headers", h);
	json_object_set_new(
	    o, "body_bytes", json_integer((json_int_t)l->body_bytes));
	json_object_set_new(
	    o, "body_truncated", json_boolean(l->body_len < l->body_bytes));
	/* NULL (-> JSON null) when the kept prefix is not valid UTF-8 */
	json_object_set_new(o, "body", json_stringn(l->body, l->body_len));
	return o;
}

static json_t *
count_json(atomic_uint_fast64_t *c)
{
	return json_integer((json_int_t)atomic_load(c));
}

char *
mock_stats_json(mock_stats *s, uint64_t suspended)
{
	json_t *o = json_object(), *paths = json_object(), *streams;
	uint64_t started, done, incomplete;
	char *text;

	for (unsigned r = 0; r < s->nroutes; r++)
		if (s->names[r] != NULL)
			json_object_set_new(
			    paths, s->names[r], count_json(&s->by_route[r]));
	started = atomic_load(&s->counters[MOCK_STREAMS_STARTED]);
	done = atomic_load(&s->counters[MOCK_STREAMS_COMPLETED]);
	incomplete = atomic_load(&s->counters[MOCK_STREAMS_INCOMPLETE]);
	streams = json_pack("{sIsIsIsI}", "started", (json_int_t)started,
	    "completed", (json_int_t)done, "incomplete", (json_int_t)incomplete,
	    "open", (json_int_t)(started - done - incomplete));
	json_object_set_new(o, "requests", count_json(&s->requests));
	json_object_set_new(o, "by_path", paths);
	json_object_set_new(o, "streams", streams);
	for (int c = 0; c < MOCK_COUNTER_COUNT; c++)
		if (counter_names[c] != NULL)
			json_object_set_new(
			    o, counter_names[c], count_json(&s->counters[c]));
	json_object_set_new(
	    o, "suspended", json_integer((json_int_t)suspended));
	pthread_mutex_lock(&s->mu);
	json_object_set_new(o, "last", last_json(&s->last));
	pthread_mutex_unlock(&s->mu);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

void
mock_stats_reset(mock_stats *s)
{
	atomic_store(&s->requests, 0);
	for (unsigned r = 0; r < s->nroutes; r++)
		atomic_store(&s->by_route[r], 0);
	for (int c = 0; c < MOCK_COUNTER_COUNT; c++)
		if (c != MOCK_STREAMS_STARTED && c != MOCK_STREAMS_COMPLETED
		    && c != MOCK_STREAMS_INCOMPLETE)
			atomic_store(&s->counters[c], 0);
	pthread_mutex_lock(&s->mu);
	s->last.valid = false;
	pthread_mutex_unlock(&s->mu);
}
