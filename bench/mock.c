/*
 * mock.c -- the mock model's HTTP server (libmicrohttpd, epoll).
 *
 * Request flow: the access handler gathers the body (capped), parses it
 * once with jansson, records what it saw for GET /mock/stats, reads the
 * x-mock-* knobs and builds the response.  Non-stream bodies are written
 * in one go; streams are generated event by event in the content reader
 * from a small per-stream struct.  Delays never sleep: the connection is
 * suspended and the timer thread (mock_timer.c) resumes it.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "bench/mock.h"
#include "bench/mock_gen.h"
#include "bench/mock_timer.h"
#include "common/limits.h"
#include "common/log.h"

#define NO_LIMIT UINT32_MAX

enum route {
	R_NONE = 0,
	R_CHAT,
	R_COMPLETIONS,
	R_RESPONSES,
	R_MESSAGES,
	R_EMBEDDINGS,
	R_MODELS,
	R_MODEL,
	R_STATS,
	R_RESET,
	R_HEALTH,
	R_COUNT
};

static const struct {
	const char *path;
	const char *method;
	mock_api api;
} routes[R_COUNT] = {
	[R_CHAT] = { "/v1/chat/completions", "POST", MOCK_API_CHAT },
	[R_COMPLETIONS] = { "/v1/completions", "POST", MOCK_API_COMPLETIONS },
	[R_RESPONSES] = { "/v1/responses", "POST", MOCK_API_RESPONSES },
	[R_MESSAGES] = { "/v1/messages", "POST", MOCK_API_MESSAGES },
	[R_EMBEDDINGS] = { "/v1/embeddings", "POST", MOCK_API_EMBEDDINGS },
	[R_MODELS] = { "/v1/models", "GET", MOCK_API_CHAT },
	[R_MODEL] = { "/v1/models/", "GET", MOCK_API_CHAT },
	[R_STATS] = { "/mock/stats", "GET", MOCK_API_CHAT },
	[R_RESET] = { "/mock/reset", "POST", MOCK_API_CHAT },
	[R_HEALTH] = { "/health", "GET", MOCK_API_CHAT },
};

/* What the last /v1 request looked like (GET /mock/stats "last"). */
typedef struct mock_last {
	bool valid;
	char method[8];
	char path[256];
	char model[PF_MODEL_NAME_MAX + 1];
	bool has_model;
	int stream;         /* -1 absent, else 0/1 */
	int include_usage;  /* -1 absent, else 0/1 */
	int64_t max_tokens; /* -1 absent */
	char *headers;      /* "name\0value\0"..., names lower-cased */
	size_t headers_len;
	char *body;
	size_t body_len;   /* bytes kept */
	size_t body_bytes; /* bytes received */
} mock_last;

struct mock_server {
	struct MHD_Daemon *d;
	mock_timer *timer;
	mock_options opt;
	char *listen;
	char *models;
	unsigned port;

	atomic_uint_fast64_t requests; /* /v1 requests; also the id seq */
	atomic_uint_fast64_t by_route[R_COUNT];
	atomic_uint_fast64_t streams_started;
	atomic_uint_fast64_t streams_completed;
	atomic_uint_fast64_t streams_incomplete;
	atomic_uint_fast64_t chunks_sent;
	atomic_uint_fast64_t errors_injected;
	atomic_uint_fast64_t drops;
	atomic_uint_fast64_t hangs;
	atomic_uint_fast64_t bad_requests;
	atomic_uint_fast64_t error_seq; /* requests carrying an error rate */

	pthread_mutex_t last_mu;
	mock_last last;
};

/* The knobs of one request: server defaults overridden by headers. */
typedef struct knobs {
	uint32_t ttfb_ms;
	uint32_t chunks;
	uint32_t chunk_delay_ms;
	uint32_t chunk_bytes;
	uint32_t hang_ms;
	uint32_t hang_after; /* NO_LIMIT = never */
	uint32_t drop_after; /* NO_LIMIT = never */
	uint32_t status;     /* 0 = none */
	uint32_t error_rate; /* percent */
	bool rate_set;
	bool no_usage;
} knobs;

/* What the request body said. */
typedef struct req_fields {
	const char *model; /* in the jansson tree */
	int stream;
	int include_usage;
	int64_t max_tokens;
	uint64_t text_bytes;
	uint32_t embed_inputs;
	uint32_t embed_dims;
	bool embed_base64;
} req_fields;

enum phase {
	PHASE_NEW = 0,
	PHASE_WAIT, /* suspended; on resume queue resp, or close if NULL */
};

/* Per-request state (MHD's con_cls), freed by completed_cb. */
typedef struct mock_req {
	enum route route;
	enum phase phase;
	bool bad_method;
	bool too_big;
	char *body;
	size_t len, cap;
	struct MHD_Response *resp;
	unsigned status;
} mock_req;

/* Per-stream state, owned by the MHD response (freed by
 * stream_free_cb). */
typedef struct mock_stream {
	mock_server *m;
	struct MHD_Connection *conn;
	mock_reply r;
	uint32_t event, nevents, pre;
	size_t off; /* bytes of the current event already sent */
	uint32_t delay_ms, hang_after, drop_after, hang_ms;
	uint64_t due_ms; /* earliest time for the next content chunk */
	bool hung;
} mock_stream;

/* ---------------------------------------------------------------- */
/* responses */

static enum MHD_Result
queue_now(
    struct MHD_Connection *conn, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);

	MHD_destroy_response(resp);
	return ret;
}

/* deliver answers with resp (NULL = close the connection) after delay_ms;
 * takes resp. */
static enum MHD_Result
deliver(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    unsigned status, struct MHD_Response *resp, uint32_t delay_ms)
{
	pf_err err;

	if (delay_ms > 0) {
		q->resp = resp;
		q->status = status;
		q->phase = PHASE_WAIT;
		err = mock_timer_suspend(
		    m->timer, conn, mock_now_ms() + delay_ms);
		if (err == PF_OK)
			return MHD_YES;
		q->resp = NULL;
		q->phase = PHASE_NEW;
	}
	if (resp == NULL)
		return MHD_NO;
	return queue_now(conn, status, resp);
}

/* json_response makes a response from a body written by gen. */
static struct MHD_Response *
body_response(const char *content_type,
    void (*gen)(const void *arg, mock_out *o), const void *arg)
{
	char stackbuf[8192];
	struct MHD_Response *resp;
	mock_out o;
	char *heap;

	mock_out_init(&o, stackbuf, sizeof(stackbuf), 0);
	gen(arg, &o);
	if (mock_out_complete(&o)) {
		resp = MHD_create_response_from_buffer(
		    o.len, stackbuf, MHD_RESPMEM_MUST_COPY);
	} else {
		size_t n = o.total;

		if (n > PF_MOCK_BODY_MAX)
			return NULL;
		heap = malloc(n);
		if (heap == NULL)
			return NULL;
		mock_out_init(&o, heap, n, 0);
		gen(arg, &o);
		resp = MHD_create_response_from_buffer(
		    n, heap, MHD_RESPMEM_MUST_FREE);
		if (resp == NULL)
			free(heap);
	}
	if (resp != NULL)
		MHD_add_response_header(resp, "Content-Type", content_type);
	return resp;
}

typedef struct error_arg {
	mock_api api;
	unsigned status;
	const char *message;
} error_arg;

static void
gen_error(const void *arg, mock_out *o)
{
	const error_arg *e = arg;

	mock_error_body(e->api, e->status, e->message, o);
}

static void
gen_reply(const void *arg, mock_out *o)
{
	mock_body(arg, o);
}

static enum MHD_Result
reply_error(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    mock_api api, unsigned status, const char *message, uint32_t delay_ms)
{
	error_arg e = { api, status, message };
	struct MHD_Response *resp;

	resp = body_response("application/json", gen_error, &e);
	if (resp == NULL)
		return MHD_NO;
	return deliver(m, conn, q, status, resp, delay_ms);
}

static enum MHD_Result
reply_json_text(struct MHD_Connection *conn, unsigned status, char *text)
{
	struct MHD_Response *resp;

	if (text == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(
	    strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	return queue_now(conn, status, resp);
}

/* ---------------------------------------------------------------- */
/* streams */

static ssize_t
stream_pause(mock_stream *st, uint64_t due_ms)
{
	pf_err err = mock_timer_suspend(st->m->timer, st->conn, due_ms);

	/* closed: the server is stopping; ENOMEM: nothing better to do */
	if (err != PF_OK)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return 0;
}

static ssize_t
stream_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	mock_stream *st = cls;
	uint32_t end_of_content = st->pre + st->r.chunks;
	uint64_t now;
	mock_out o;

	(void)pos;
	if (st->event >= st->nevents)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* resumed after a hang: its time is up (or the server stops) */
	if (st->hung)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (st->off == 0 && st->event >= st->pre) {
		uint32_t sent = st->event < end_of_content ? st->event - st->pre
		                                           : st->r.chunks;

		if (sent >= st->drop_after) {
			atomic_fetch_add(&st->m->drops, 1);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		now = mock_now_ms();
		if (sent >= st->hang_after) {
			st->hung = true;
			atomic_fetch_add(&st->m->hangs, 1);
			return stream_pause(st, now + st->hang_ms);
		}
		if (st->event < end_of_content && now < st->due_ms)
			return stream_pause(st, st->due_ms);
	}
	mock_out_init(&o, buf, max, st->off);
	mock_stream_event(&st->r, st->event, &o);
	if (!mock_out_complete(&o)) {
		st->off += o.len;
		return (ssize_t)o.len;
	}
	if (st->event >= st->pre && st->event < end_of_content) {
		atomic_fetch_add(&st->m->chunks_sent, 1);
		if (st->delay_ms > 0)
			st->due_ms = mock_now_ms() + st->delay_ms;
	}
	st->event++;
	st->off = 0;
	return (ssize_t)o.len;
}

static void
stream_free_cb(void *cls)
{
	mock_stream *st = cls;

	if (st->event >= st->nevents)
		atomic_fetch_add(&st->m->streams_completed, 1);
	else
		atomic_fetch_add(&st->m->streams_incomplete, 1);
	free(st);
}

static struct MHD_Response *
stream_response(mock_server *m, struct MHD_Connection *conn,
    const mock_reply *r, const knobs *k)
{
	struct MHD_Response *resp;
	mock_stream *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->m = m;
	st->conn = conn;
	st->r = *r;
	st->nevents = mock_stream_events(r);
	st->pre = mock_stream_pre(r);
	st->delay_ms = k->chunk_delay_ms;
	st->hang_after = k->hang_after;
	st->drop_after = k->drop_after;
	st->hang_ms = k->hang_ms;
	resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, 16 * 1024, stream_read_cb, st, stream_free_cb);
	if (resp == NULL) {
		free(st);
		return NULL;
	}
	atomic_fetch_add(&m->streams_started, 1);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	return resp;
}

/* ---------------------------------------------------------------- */
/* knobs and request fields */

/* header_u32: 0 absent, 1 parsed into *val, -1 malformed or > max. */
static int
header_u32(
    struct MHD_Connection *conn, const char *name, uint32_t max, uint32_t *val)
{
	const char *s
	    = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
	uint64_t v = 0;

	if (s == NULL)
		return 0;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
	}
	*val = (uint32_t)v;
	return 1;
}

static pf_err
read_knobs(
    mock_server *m, struct MHD_Connection *conn, knobs *k, const char **bad)
{
	static const struct {
		const char *name;
		size_t off;
		uint32_t max;
	} defs[] = {
		{ "x-mock-ttfb-ms", offsetof(knobs, ttfb_ms),
		    PF_MOCK_DELAY_MAX_MS },
		{ "x-mock-chunks", offsetof(knobs, chunks),
		    PF_MOCK_CHUNKS_MAX },
		{ "x-mock-chunk-delay-ms", offsetof(knobs, chunk_delay_ms),
		    PF_MOCK_DELAY_MAX_MS },
		{ "x-mock-chunk-bytes", offsetof(knobs, chunk_bytes),
		    PF_MOCK_CHUNK_BYTES_MAX },
		{ "x-mock-hang-ms", offsetof(knobs, hang_ms),
		    PF_MOCK_DELAY_MAX_MS },
		{ "x-mock-hang-after", offsetof(knobs, hang_after),
		    PF_MOCK_CHUNKS_MAX },
		{ "x-mock-drop-after", offsetof(knobs, drop_after),
		    PF_MOCK_CHUNKS_MAX },
		{ "x-mock-status", offsetof(knobs, status), 599 },
		{ "x-mock-error-rate", offsetof(knobs, error_rate), 100 },
	};
	const char *nu;

	k->ttfb_ms = m->opt.ttfb_ms;
	k->chunks = m->opt.chunks;
	k->chunk_delay_ms = m->opt.chunk_delay_ms;
	k->chunk_bytes = m->opt.chunk_bytes;
	k->hang_ms = m->opt.hang_ms;
	k->hang_after = NO_LIMIT;
	k->drop_after = NO_LIMIT;
	k->status = 0;
	k->error_rate = 0;
	k->rate_set = false;
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		uint32_t *field = (uint32_t *)((char *)k + defs[i].off);
		int rc = header_u32(conn, defs[i].name, defs[i].max, field);

		if (rc < 0) {
			*bad = defs[i].name;
			return PF_EINVAL;
		}
		if (rc > 0 && strcmp(defs[i].name, "x-mock-error-rate") == 0)
			k->rate_set = true;
	}
	if (k->status != 0 && k->status < 100) {
		*bad = "x-mock-status";
		return PF_EINVAL;
	}
	nu = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, "x-mock-no-usage");
	k->no_usage = nu != NULL
	    && (strcmp(nu, "1") == 0 || strcasecmp(nu, "true") == 0);
	return PF_OK;
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

/* read_fields extracts what the mock uses; *bad names the problem. */
static pf_err
read_fields(
    const json_t *root, enum route route, req_fields *f, const char **bad)
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
	if (route != R_EMBEDDINGS)
		return PF_OK;

	v = json_object_get(root, "input");
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

/* ---------------------------------------------------------------- */
/* stats */

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

/* record keeps the request for GET /mock/stats; returns its seq. */
static uint64_t
record(mock_server *m, struct MHD_Connection *conn, const mock_req *q,
    const char *method, const char *url, const req_fields *f)
{
	mock_last *l = &m->last;
	header_sink hs;
	uint64_t seq = atomic_fetch_add(&m->requests, 1) + 1;

	atomic_fetch_add(&m->by_route[q->route], 1);
	pthread_mutex_lock(&m->last_mu);
	l->valid = true;
	copy_str(l->method, sizeof(l->method), method);
	copy_str(l->path, sizeof(l->path), url);
	l->has_model = f != NULL && f->model != NULL;
	if (l->has_model)
		copy_str(l->model, sizeof(l->model), f->model);
	l->stream = f != NULL ? f->stream : -1;
	l->include_usage = f != NULL ? f->include_usage : -1;
	l->max_tokens = f != NULL ? f->max_tokens : -1;
	hs.buf = l->headers;
	hs.len = 0;
	hs.cap = PF_MOCK_STATS_HEADERS_MAX;
	MHD_get_connection_values(conn, MHD_HEADER_KIND, header_cb, &hs);
	l->headers_len = hs.len;
	l->body_bytes = q->too_big ? 0 : q->len;
	l->body_len
	    = q->len < PF_MOCK_STATS_BODY_MAX ? q->len : PF_MOCK_STATS_BODY_MAX;
	if (q->too_big)
		l->body_len = 0;
	if (l->body_len > 0)
		memcpy(l->body, q->body, l->body_len);
	pthread_mutex_unlock(&m->last_mu);
	return seq;
}

static json_t *
tri_json(int v)
{
	return v < 0 ? json_null() : json_boolean(v);
}

static json_t *
last_json(const mock_last *l)
{
	json_t *o, *h;
	const char *auth, *xkey;

	if (!l->valid)
		return json_null();
	h = json_object();
	auth = NULL;
	xkey = NULL;
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
	    o, "model", l->has_model ? json_string(l->model) : json_null());
	json_object_set_new(o, "stream", tri_json(l->stream));
	json_object_set_new(o, "include_usage", tri_json(l->include_usage));
	json_object_set_new(o, "max_tokens",
	    l->max_tokens < 0 ? json_null() : json_integer(l->max_tokens));
	json_object_set_new(
	    o, "authorization", auth != NULL ? json_string(auth) : json_null());
	json_object_set_new(
	    o, "x_api_key", xkey != NULL ? json_string(xkey) : json_null());
	json_object_set_new(o, "headers", h);
	json_object_set_new(
	    o, "body_bytes", json_integer((json_int_t)l->body_bytes));
	json_object_set_new(
	    o, "body_truncated", json_boolean(l->body_len < l->body_bytes));
	json_object_set_new(o, "body", json_stringn(l->body, l->body_len));
	return o;
}

static char *
stats_text(mock_server *m)
{
	json_t *o = json_object(), *paths = json_object(), *streams;
	uint64_t started, done, incomplete;
	char *text;

	for (int r = R_CHAT; r <= R_MODEL; r++)
		json_object_set_new(paths, routes[r].path,
		    json_integer((json_int_t)atomic_load(&m->by_route[r])));
	started = atomic_load(&m->streams_started);
	done = atomic_load(&m->streams_completed);
	incomplete = atomic_load(&m->streams_incomplete);
	streams = json_pack("{sIsIsIsI}", "started", (json_int_t)started,
	    "completed", (json_int_t)done, "incomplete", (json_int_t)incomplete,
	    "open", (json_int_t)(started - done - incomplete));
	json_object_set_new(
	    o, "requests", json_integer((json_int_t)atomic_load(&m->requests)));
	json_object_set_new(o, "by_path", paths);
	json_object_set_new(o, "streams", streams);
	json_object_set_new(o, "chunks_sent",
	    json_integer((json_int_t)atomic_load(&m->chunks_sent)));
	json_object_set_new(o, "errors_injected",
	    json_integer((json_int_t)atomic_load(&m->errors_injected)));
	json_object_set_new(
	    o, "drops", json_integer((json_int_t)atomic_load(&m->drops)));
	json_object_set_new(
	    o, "hangs", json_integer((json_int_t)atomic_load(&m->hangs)));
	json_object_set_new(o, "bad_requests",
	    json_integer((json_int_t)atomic_load(&m->bad_requests)));
	json_object_set_new(o, "suspended",
	    json_integer((json_int_t)mock_timer_pending(m->timer)));
	pthread_mutex_lock(&m->last_mu);
	json_object_set_new(o, "last", last_json(&m->last));
	pthread_mutex_unlock(&m->last_mu);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static void
stats_reset(mock_server *m)
{
	atomic_store(&m->requests, 0);
	for (int r = 0; r < R_COUNT; r++)
		atomic_store(&m->by_route[r], 0);
	/* streams_* stay: "open" must keep counting streams in flight */
	atomic_store(&m->chunks_sent, 0);
	atomic_store(&m->errors_injected, 0);
	atomic_store(&m->drops, 0);
	atomic_store(&m->hangs, 0);
	atomic_store(&m->bad_requests, 0);
	atomic_store(&m->error_seq, 0);
	pthread_mutex_lock(&m->last_mu);
	m->last.valid = false;
	pthread_mutex_unlock(&m->last_mu);
}

/* ---------------------------------------------------------------- */
/* request handling */

static enum route
route_of(const char *url)
{
	for (int r = R_CHAT; r < R_COUNT; r++) {
		if (r == R_MODEL) {
			size_t n = strlen(routes[r].path);

			if (strncmp(url, routes[r].path, n) == 0
			    && url[n] != '\0')
				return R_MODEL;
			continue;
		}
		if (strcmp(url, routes[r].path) == 0)
			return (enum route)r;
	}
	return R_NONE;
}

/* error_due decides whether this request gets the injected status. */
static unsigned
error_due(mock_server *m, const knobs *k)
{
	if (k->rate_set) {
		uint64_t n = atomic_fetch_add(&m->error_seq, 1);

		/* exactly PCT of every 100 such requests, spread evenly */
		if ((n + 1) * k->error_rate / 100 == n * k->error_rate / 100)
			return 0;
		return k->status != 0 ? k->status : 500;
	}
	return k->status;
}

static void
fill_reply(mock_reply *r, mock_api api, uint64_t seq, const req_fields *f,
    const knobs *k)
{
	memset(r, 0, sizeof(*r));
	r->api = api;
	copy_str(r->model, sizeof(r->model), f->model);
	r->seq = seq;
	r->created = (int64_t)time(NULL);
	r->chunks = k->chunks;
	if (f->max_tokens > 0 && (uint64_t)f->max_tokens < r->chunks) {
		r->chunks = (uint32_t)f->max_tokens;
		r->length_stop = true;
	}
	r->chunk_bytes = k->chunk_bytes;
	r->prompt_tokens = mock_tokens_of_bytes(f->text_bytes);
	r->include_usage = f->include_usage == 1;
	r->no_usage = k->no_usage;
	r->embed_inputs = f->embed_inputs;
	r->embed_dims = f->embed_dims;
	r->embed_base64 = f->embed_base64;
}

static enum MHD_Result
answer_api(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const char *method, const char *url)
{
	mock_api api = routes[q->route].api;
	json_t *root = NULL;
	json_error_t jerr;
	req_fields f;
	knobs k;
	mock_reply r;
	const char *bad = NULL;
	char msg[256];
	struct MHD_Response *resp;
	enum MHD_Result ret;
	uint64_t seq;
	unsigned status;
	bool has_body = q->route != R_MODELS && q->route != R_MODEL;

	memset(&f, 0, sizeof(f));
	if (has_body && !q->too_big) {
		root = json_loadb(
		    q->body != NULL ? q->body : "", q->len, 0, &jerr);
		if (root != NULL && !json_is_object(root)) {
			json_decref(root);
			root = NULL;
			copy_str(jerr.text, sizeof(jerr.text),
			    "body is not a JSON object");
		}
		if (root != NULL
		    && read_fields(root, q->route, &f, &bad) != PF_OK)
			snprintf(msg, sizeof(msg), "%s", bad);
	}
	seq = record(m, conn, q, method, url, root != NULL ? &f : NULL);
	if (has_body && q->too_big) {
		atomic_fetch_add(&m->bad_requests, 1);
		ret = reply_error(
		    m, conn, q, api, 413, "request body too large", 0);
		goto out;
	}
	if (has_body && root == NULL) {
		snprintf(msg, sizeof(msg),
		    "We could not parse the JSON body of your request: %s",
		    jerr.text);
		bad = msg;
	}
	if (bad == NULL && read_knobs(m, conn, &k, &bad) != PF_OK) {
		snprintf(msg, sizeof(msg), "invalid %s header", bad);
		bad = msg;
	}
	if (bad != NULL) {
		atomic_fetch_add(&m->bad_requests, 1);
		ret = reply_error(m, conn, q, api, 400, bad, 0);
		goto out;
	}

	status = error_due(m, &k);
	if (status != 0 && status != 200) {
		atomic_fetch_add(&m->errors_injected, 1);
		snprintf(msg, sizeof(msg), "mock error: status %u", status);
		ret = reply_error(m, conn, q, api, status, msg, k.ttfb_ms);
		goto out;
	}
	if (!has_body) {
		resp = NULL;
		if (q->route == R_MODEL) {
			const char *id = url + strlen(routes[R_MODEL].path);
			mock_out o;
			char buf[512];

			mock_out_init(&o, buf, sizeof(buf), 0);
			mock_models_body(NULL, id, &o);
			if (mock_out_complete(&o))
				resp = MHD_create_response_from_buffer(
				    o.len, buf, MHD_RESPMEM_MUST_COPY);
		} else {
			mock_out o;

			mock_out_init(&o, NULL, 0, 0);
			mock_models_body(m->models, NULL, &o);
			char *buf = malloc(o.total);

			if (buf != NULL) {
				mock_out_init(&o, buf, o.total, 0);
				mock_models_body(m->models, NULL, &o);
				resp = MHD_create_response_from_buffer(
				    o.len, buf, MHD_RESPMEM_MUST_FREE);
				if (resp == NULL)
					free(buf);
			}
		}
		if (resp == NULL) {
			ret = MHD_NO;
			goto out;
		}
		MHD_add_response_header(
		    resp, "Content-Type", "application/json");
		ret = deliver(m, conn, q, 200, resp, k.ttfb_ms);
		goto out;
	}

	fill_reply(&r, api, seq, &f, &k);
	if (f.stream == 1 && api != MOCK_API_EMBEDDINGS) {
		/* a stream hangs or drops mid-way, in the reader */
		resp = stream_response(m, conn, &r, &k);
		if (resp == NULL) {
			ret = MHD_NO;
			goto out;
		}
		ret = deliver(m, conn, q, 200, resp, k.ttfb_ms);
		goto out;
	}
	if (k.hang_after != NO_LIMIT) {
		/* a non-stream hang sends nothing, then closes */
		atomic_fetch_add(&m->hangs, 1);
		ret = deliver(m, conn, q, 0, NULL, k.hang_ms);
		goto out;
	}
	if (k.drop_after != NO_LIMIT) {
		atomic_fetch_add(&m->drops, 1);
		ret = deliver(m, conn, q, 0, NULL, k.ttfb_ms);
		goto out;
	}
	resp = body_response("application/json", gen_reply, &r);
	if (resp == NULL) {
		ret = reply_error(m, conn, q, api, 400,
		    "the response would exceed the mock's size cap", 0);
		goto out;
	}
	ret = deliver(m, conn, q, 200, resp, k.ttfb_ms);
out:
	json_decref(root);
	return ret;
}

static enum MHD_Result
handle(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const char *method, const char *url)
{
	if (q->route == R_NONE) {
		atomic_fetch_add(&m->bad_requests, 1);
		return reply_error(
		    m, conn, q, MOCK_API_CHAT, 404, "unknown path", 0);
	}
	if (q->bad_method) {
		atomic_fetch_add(&m->bad_requests, 1);
		return reply_error(m, conn, q, routes[q->route].api, 405,
		    "method not allowed", 0);
	}
	switch (q->route) {
	case R_HEALTH:
		return reply_json_text(
		    conn, 200, strdup("{\"status\":\"ok\"}"));
	case R_STATS:
		return reply_json_text(conn, 200, stats_text(m));
	case R_RESET:
		stats_reset(m);
		return reply_json_text(conn, 200, strdup("{\"reset\":true}"));
	default:
		return answer_api(m, conn, q, method, url);
	}
}

static void
append_body(mock_req *q, const char *data, size_t n)
{
	if (q->too_big)
		return;
	if (n > PF_BODY_MAX_CEILING - q->len) {
		q->too_big = true;
		free(q->body);
		q->body = NULL;
		q->len = q->cap = 0;
		return;
	}
	if (q->len + n > q->cap) {
		size_t cap = q->cap != 0 ? q->cap : 1024;
		char *b;

		while (cap < q->len + n)
			cap *= 2;
		b = realloc(q->body, cap);
		if (b == NULL) {
			/* treat as too big: the client gets an answer */
			q->too_big = true;
			free(q->body);
			q->body = NULL;
			q->len = q->cap = 0;
			return;
		}
		q->body = b;
		q->cap = cap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	mock_server *m = cls;
	mock_req *q = *con_cls;
	struct MHD_Response *resp;

	(void)version;
	if (q == NULL) {
		q = calloc(1, sizeof(*q));
		if (q == NULL)
			return MHD_NO;
		q->route = route_of(url);
		q->bad_method = q->route != R_NONE
		    && strcmp(method, routes[q->route].method) != 0;
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		append_body(q, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->phase == PHASE_WAIT) {
		resp = q->resp;
		q->resp = NULL;
		q->phase = PHASE_NEW;
		if (resp == NULL)
			return MHD_NO;
		return queue_now(conn, q->status, resp);
	}
	return handle(m, conn, q, method, url);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	mock_req *q = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (q == NULL)
		return;
	if (q->resp != NULL)
		MHD_destroy_response(q->resp);
	free(q->body);
	free(q);
	*con_cls = NULL;
}

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	if (!pf_log_enabled(PF_LOG_DEBUG))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	pf_debug("PF-MOCK-MHD", "msg=\"%s\"", line);
}

/* ---------------------------------------------------------------- */
/* lifecycle */

void
mock_options_defaults(mock_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->listen = "127.0.0.1:9000";
	opt->chunks = 16;
	opt->hang_ms = 300000;
	opt->models = "mock-model";
}

/* parse_listen resolves "HOST:PORT" / "[V6]:PORT" (numeric or names). */
static pf_err
parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hl;
	struct addrinfo hints, *res = NULL;
	int rc;

	if (colon == NULL || colon[1] == '\0')
		return PF_EINVAL;
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return PF_EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = AF_UNSPEC;
	if (hl == 0 || strcmp(host, "*") == 0) {
		hints.ai_family = AF_INET;
		rc = getaddrinfo(NULL, colon + 1, &hints, &res);
	} else {
		rc = getaddrinfo(host, colon + 1, &hints, &res);
	}
	if (rc != 0 || res == NULL)
		return PF_EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return PF_OK;
}

static pf_err
check_options(const mock_options *opt)
{
	if (opt->listen == NULL || opt->chunks > PF_MOCK_CHUNKS_MAX
	    || opt->chunk_bytes > PF_MOCK_CHUNK_BYTES_MAX
	    || opt->ttfb_ms > PF_MOCK_DELAY_MAX_MS
	    || opt->chunk_delay_ms > PF_MOCK_DELAY_MAX_MS
	    || opt->hang_ms > PF_MOCK_DELAY_MAX_MS
	    || opt->threads > PF_MOCK_THREADS_MAX)
		return PF_EINVAL;
	return PF_OK;
}

pf_err
mock_server_start(const mock_options *opt, mock_server **ret)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct MHD_OptionItem ops[12];
	size_t nops = 0;
	unsigned threads;
	unsigned flags;
	const union MHD_DaemonInfo *info;
	mock_server *m;
	pf_err err;

	err = check_options(opt);
	if (err != PF_OK)
		return err;
	err = parse_listen(opt->listen, &ss, &sslen);
	if (err != PF_OK)
		return err;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return PF_ENOMEM;
	pthread_mutex_init(&m->last_mu, NULL);
	m->opt = *opt;
	m->listen = strdup(opt->listen);
	m->models = strdup(opt->models != NULL ? opt->models : "mock-model");
	m->last.headers = malloc(PF_MOCK_STATS_HEADERS_MAX);
	m->last.body = malloc(PF_MOCK_STATS_BODY_MAX);
	if (m->listen == NULL || m->models == NULL || m->last.headers == NULL
	    || m->last.body == NULL) {
		err = PF_ENOMEM;
		goto fail;
	}
	m->opt.listen = m->listen;
	m->opt.models = m->models;
	err = mock_timer_new(&m->timer);
	if (err != PF_OK)
		goto fail;

	threads = opt->threads;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads
		    = n > 0 && n <= (long)PF_MOCK_THREADS_MAX ? (unsigned)n : 1;
	}
	m->opt.threads = threads;
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_SOCK_ADDR, 0, &ss };
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_NOTIFY_COMPLETED,
		(intptr_t)completed_cb, NULL };
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_TIMEOUT,
		PF_HTTP_CONN_TIMEOUT_S, NULL };
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_LIMIT,
		PF_HTTP_MAX_CONNS, NULL };
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_LISTEN_BACKLOG_SIZE,
		4096, NULL };
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_EXTERNAL_LOGGER,
		(intptr_t)mhd_log_cb, NULL };
	if (threads > 1)
		ops[nops++]
		    = (struct MHD_OptionItem) { MHD_OPTION_THREAD_POOL_SIZE,
			      (intptr_t)threads, NULL };
	ops[nops++] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };

	flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME
	    | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, m,
	    MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
	if (m->d == NULL) {
		err = PF_EIO;
		goto fail;
	}
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info != NULL ? info->port : 0;
	*ret = m;
	return PF_OK;
fail:
	mock_server_free(m);
	return err;
}

unsigned
mock_server_port(const mock_server *m)
{
	return m->port;
}

void
mock_server_free(mock_server *m)
{
	if (m == NULL)
		return;
	/* resume everything first: MHD_stop_daemon refuses suspended
	 * connections */
	if (m->timer != NULL)
		mock_timer_close(m->timer);
	if (m->d != NULL)
		MHD_stop_daemon(m->d);
	mock_timer_free(m->timer);
	free(m->last.headers);
	free(m->last.body);
	free(m->listen);
	free(m->models);
	pthread_mutex_destroy(&m->last_mu);
	free(m);
}
