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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "bench/mock.h"
#include "bench/mock_gen.h"
#include "bench/mock_parse.h"
#include "bench/mock_stats.h"
#include "bench/mock_timer.h"
#include "common/limits.h"
#include "common/log.h"

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
	R_KNOBS,
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
	[R_KNOBS] = { "/mock/knobs", "POST", MOCK_API_CHAT },
	[R_HEALTH] = { "/health", "GET", MOCK_API_CHAT },
};

/* labels of the counted routes in GET /mock/stats "by_path" */
static const char *const stats_names[R_COUNT] = {
	[R_CHAT] = "/v1/chat/completions",
	[R_COMPLETIONS] = "/v1/completions",
	[R_RESPONSES] = "/v1/responses",
	[R_MESSAGES] = "/v1/messages",
	[R_EMBEDDINGS] = "/v1/embeddings",
	[R_MODELS] = "/v1/models",
	[R_MODEL] = "/v1/models/{id}",
};

struct mock_server {
	struct MHD_Daemon *d;
	mock_timer *timer;
	mock_stats *stats;
	mock_options opt;
	char *listen;
	char *models;
	unsigned port;
	atomic_uint_fast64_t error_seq; /* requests carrying an error rate */
	atomic_uint_fast64_t fail_seq;  /* requests carrying fail-first */
	pthread_mutex_t knobs_mu;       /* guards knobs */
	char knobs[PF_MOCK_PATH_KNOBS_MAX + 1]; /* POST /mock/knobs spec */
};

/* The path knob prefix: /mock/knobs/SPEC/v1/... */
#define KNOBS_PREFIX "/mock/knobs/"

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
	bool knobs_bad;  /* the path knob spec is too long or unterminated */
	size_t path_off; /* the URL after the path knob prefix */
	char knobs[PF_MOCK_PATH_KNOBS_MAX + 1]; /* path knob spec */
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
	bool coalesce;
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

/*
 * cut_connection shuts the connection's socket down (FIN to the client)
 * before the caller makes libmicrohttpd close it.  libmicrohttpd 0.9.75
 * with MHD_USE_TURBO does not shut the socket down itself when a reader or
 * handler fails, and in epoll mode it releases (closes) such a connection
 * only from its timeout scan, which stops at the oldest connection that is
 * still open: with an idle keep-alive connection older than the failed
 * one, the client would wait for the next request.  The shutdown also
 * makes the socket readable, so the event loop visits and releases it.
 */
static void
cut_connection(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci
	    = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (ci != NULL && ci->connect_fd != MHD_INVALID_SOCKET)
		(void)shutdown(ci->connect_fd, SHUT_RDWR);
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
	if (resp == NULL) {
		cut_connection(conn);
		return MHD_NO;
	}
	return queue_now(conn, status, resp);
}

typedef void (*gen_fn)(const void *arg, mock_out *o);

/* body_response makes a JSON response from the body gen writes: small
 * bodies in one pass through a stack buffer, large ones counted first. */
static struct MHD_Response *
body_response(gen_fn gen, const void *arg)
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
		MHD_add_response_header(
		    resp, "Content-Type", "application/json");
	return resp;
}

typedef struct error_arg {
	mock_api api;
	unsigned status;
	const char *code;
	const char *message;
} error_arg;

static void
gen_error(const void *arg, mock_out *o)
{
	const error_arg *e = arg;

	mock_error_body(e->api, e->status, e->code, e->message, o);
}

static void
gen_reply(const void *arg, mock_out *o)
{
	mock_body(arg, o);
}

static void
gen_models(const void *arg, mock_out *o)
{
	mock_models_body(arg, NULL, o);
}

static void
gen_model(const void *arg, mock_out *o)
{
	mock_models_body(NULL, arg, o);
}

static enum MHD_Result
reply_error(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const error_arg *e, uint32_t delay_ms)
{
	struct MHD_Response *resp = body_response(gen_error, e);

	if (resp == NULL)
		return MHD_NO;
	return deliver(m, conn, q, e->status, resp, delay_ms);
}

/* bad_request answers a request the mock refuses, at once. */
static enum MHD_Result
bad_request(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    unsigned status, const char *code, const char *message)
{
	error_arg e = { routes[q->route].api, status, code, message };

	mock_stats_add(m->stats, MOCK_BAD_REQUESTS);
	return reply_error(m, conn, q, &e, 0);
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

enum gate {
	GATE_GO,
	GATE_WAIT, /* the chunk delay has not passed */
	GATE_HANG,
	GATE_DROP,
};

/* stream_gate says whether the next event may go out now. */
static enum gate
stream_gate(const mock_stream *st, uint64_t now)
{
	uint32_t end_of_content = st->pre + st->r.chunks;
	uint32_t sent;

	if (st->event < st->pre)
		return GATE_GO;
	sent = st->event < end_of_content ? st->event - st->pre : st->r.chunks;
	if (sent >= st->drop_after)
		return GATE_DROP;
	if (sent >= st->hang_after)
		return GATE_HANG;
	if (st->event < end_of_content && now < st->due_ms)
		return GATE_WAIT;
	return GATE_GO;
}

static void
stream_advance(mock_stream *st)
{
	if (st->event >= st->pre && st->event < st->pre + st->r.chunks) {
		mock_stats_add(st->m->stats, MOCK_CHUNKS_SENT);
		if (st->delay_ms > 0)
			st->due_ms = mock_now_ms() + st->delay_ms;
	}
	st->event++;
	st->off = 0;
}

static ssize_t
stream_pause(mock_stream *st, uint64_t due_ms)
{
	pf_err err = mock_timer_suspend(st->m->timer, st->conn, due_ms);

	/* closed: the server is stopping; ENOMEM: nothing better to do */
	if (err != PF_OK)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return 0;
}

/* stream_cut ends a stream abruptly: no end of the chunked body. */
static ssize_t
stream_cut(mock_stream *st)
{
	cut_connection(st->conn);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/*
 * stream_read_cb writes the next event (or the rest of a large one), each
 * in its own write; with coalescing, as many further whole events as fit
 * and are due.  Returning 0 is only allowed after suspending: in
 * internal-polling mode a bare 0 busy-loops.
 */
static ssize_t
stream_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	mock_stream *st = cls;
	uint64_t now = 0;
	size_t len;
	mock_out o;

	(void)pos;
	if (st->event >= st->nevents)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* resumed after a hang: its time is up (or the server stops) */
	if (st->hung)
		return stream_cut(st);
	if (st->off == 0) {
		if (st->delay_ms > 0 || st->hang_after != MOCK_NO_LIMIT)
			now = mock_now_ms();
		switch (stream_gate(st, now)) {
		case GATE_GO:
			break;
		case GATE_WAIT:
			return stream_pause(st, st->due_ms);
		case GATE_HANG:
			st->hung = true;
			mock_stats_add(st->m->stats, MOCK_HANGS);
			return stream_pause(st, now + st->hang_ms);
		case GATE_DROP:
			mock_stats_add(st->m->stats, MOCK_DROPS);
			return stream_cut(st);
		}
	}
	mock_out_init(&o, buf, max, st->off);
	mock_stream_event(&st->r, st->event, &o);
	if (!mock_out_complete(&o)) {
		st->off += o.len;
		return (ssize_t)o.len;
	}
	len = o.len;
	stream_advance(st);
	while (st->coalesce && st->event < st->nevents && len < max
	    && stream_gate(st, now) == GATE_GO) {
		mock_out_init(&o, buf + len, max - len, 0);
		mock_stream_event(&st->r, st->event, &o);
		if (!mock_out_complete(&o))
			break;
		len += o.len;
		stream_advance(st);
	}
	return (ssize_t)len;
}

static void
stream_free_cb(void *cls)
{
	mock_stream *st = cls;

	mock_stats_add(st->m->stats,
	    st->event >= st->nevents ? MOCK_STREAMS_COMPLETED
	                             : MOCK_STREAMS_INCOMPLETE);
	free(st);
}

static struct MHD_Response *
stream_response(mock_server *m, struct MHD_Connection *conn,
    const mock_reply *r, const mock_knobs *k)
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
	/* an instant stream in one write (a write per event costs a system
	 * call per token on both ends); with a chunk delay the events are
	 * not due together anyway */
	st->coalesce
	    = k->coalesce_set ? k->coalesce != 0 : k->chunk_delay_ms == 0;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
	    PF_MOCK_CONN_MEMORY / 2, stream_read_cb, st, stream_free_cb);
	if (resp == NULL) {
		free(st);
		return NULL;
	}
	mock_stats_add(m->stats, MOCK_STREAMS_STARTED);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	return resp;
}

/* ---------------------------------------------------------------- */
/* request handling */

static enum route
route_of(const char *url)
{
	size_t n = strlen(routes[R_MODEL].path);

	if (strncmp(url, routes[R_MODEL].path, n) == 0 && url[n] != '\0')
		return R_MODEL;
	for (int r = R_CHAT; r < R_COUNT; r++)
		if (r != R_MODEL && strcmp(url, routes[r].path) == 0)
			return (enum route)r;
	return R_NONE;
}

/* error_due returns the status to inject into this request (0 = none). */
static unsigned
error_due(mock_server *m, const mock_knobs *k)
{
	if (k->fail_first_set) {
		uint64_t n = atomic_fetch_add(&m->fail_seq, 1);

		if (n >= k->fail_first)
			return 0;
		return k->status != 0 ? k->status : 500;
	}
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
fill_reply(mock_reply *r, mock_api api, uint64_t seq, const mock_fields *f,
    const mock_knobs *k)
{
	size_t n = strlen(f->model);

	memset(r, 0, sizeof(*r));
	r->api = api;
	memcpy(r->model, f->model, n + 1); /* checked <= PF_MODEL_NAME_MAX */
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
	r->no_usage = k->no_usage != 0;
	r->embed_inputs = f->embed_inputs;
	r->embed_dims = f->embed_dims;
	r->embed_base64 = f->embed_base64;
}

/* answer_models serves GET /v1/models and /v1/models/{id}. */
static enum MHD_Result
answer_models(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const char *url, const mock_knobs *k)
{
	struct MHD_Response *resp;

	if (q->route == R_MODEL)
		resp = body_response(
		    gen_model, url + strlen(routes[R_MODEL].path));
	else
		resp = body_response(gen_models, m->models);
	if (resp == NULL)
		return MHD_NO;
	return deliver(m, conn, q, 200, resp, k->ttfb_ms);
}

/* answer_generated serves the generating endpoints once the request is
 * known to be good. */
static enum MHD_Result
answer_generated(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const mock_reply *r, bool stream, const mock_knobs *k)
{
	struct MHD_Response *resp;

	if (stream) {
		/* a stream hangs or drops mid-way, in the reader */
		resp = stream_response(m, conn, r, k);
		if (resp == NULL)
			return MHD_NO;
		return deliver(m, conn, q, 200, resp, k->ttfb_ms);
	}
	if (k->hang_after != MOCK_NO_LIMIT) {
		/* a non-stream hang sends nothing, then closes */
		mock_stats_add(m->stats, MOCK_HANGS);
		return deliver(m, conn, q, 0, NULL, k->hang_ms);
	}
	if (k->drop_after != MOCK_NO_LIMIT) {
		mock_stats_add(m->stats, MOCK_DROPS);
		return deliver(m, conn, q, 0, NULL, k->ttfb_ms);
	}
	resp = body_response(gen_reply, r);
	if (resp == NULL)
		return bad_request(m, conn, q, 400, NULL,
		    "the response would exceed the mock's size cap");
	return deliver(m, conn, q, 200, resp, k->ttfb_ms);
}

/* read_knobs fills k: options, then POST /mock/knobs, then the path
 * knobs, then the headers.  Returns NULL, or a message for a 400 (in msg
 * or static). */
static const char *
read_knobs(mock_server *m, struct MHD_Connection *conn, const mock_req *q,
    mock_knobs *k, char *msg, size_t cap)
{
	char server[PF_MOCK_PATH_KNOBS_MAX + 1];
	const char *bad = NULL;

	mock_knobs_defaults(&m->opt, k);
	pthread_mutex_lock(&m->knobs_mu);
	memcpy(server, m->knobs, sizeof(server));
	pthread_mutex_unlock(&m->knobs_mu);
	/* checked when it was set */
	if (mock_knobs_path(server, strlen(server), k, &bad) != PF_OK)
		return "invalid server knobs";
	if (q->knobs_bad)
		return "invalid path knobs (too long, or no / after them)";
	if (mock_knobs_path(q->knobs, strlen(q->knobs), k, &bad) != PF_OK) {
		snprintf(msg, cap, "invalid path knob (%s)", bad);
		return msg;
	}
	if (mock_knobs_headers(conn, k, &bad) != PF_OK) {
		snprintf(msg, cap, "invalid %s header", bad);
		return msg;
	}
	return NULL;
}

/* set_server_knobs serves POST /mock/knobs: the body (a path knob spec;
 * empty clears) becomes every request's defaults. */
static enum MHD_Result
set_server_knobs(mock_server *m, struct MHD_Connection *conn, mock_req *q)
{
	char spec[PF_MOCK_PATH_KNOBS_MAX + 1];
	const char *bad = NULL;
	mock_knobs k;

	if (q->too_big || q->len > PF_MOCK_PATH_KNOBS_MAX)
		return bad_request(m, conn, q, 413, NULL, "knob list too long");
	if (q->len > 0)
		memcpy(spec, q->body, q->len);
	spec[q->len] = '\0';
	while (q->len > 0
	    && (spec[q->len - 1] == '\n' || spec[q->len - 1] == '\r'))
		spec[--q->len] = '\0';
	mock_knobs_defaults(&m->opt, &k);
	if (strlen(spec) != q->len
	    || mock_knobs_path(spec, q->len, &k, &bad) != PF_OK)
		return bad_request(m, conn, q, 400, NULL, "invalid knob list");
	pthread_mutex_lock(&m->knobs_mu);
	memcpy(m->knobs, spec, q->len + 1);
	pthread_mutex_unlock(&m->knobs_mu);
	return reply_json_text(conn, 200, strdup("{\"knobs\":true}"));
}

static enum MHD_Result
answer_api(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const char *method, const char *url)
{
	mock_api api = routes[q->route].api;
	bool has_body = q->route != R_MODELS && q->route != R_MODEL;
	json_t *root = NULL;
	json_error_t jerr;
	mock_fields f;
	mock_seen seen;
	mock_knobs k;
	mock_reply r;
	const char *bad = NULL;
	char msg[256];
	enum MHD_Result ret;
	uint64_t seq;
	unsigned status;

	memset(&f, 0, sizeof(f));
	f.stream = f.include_usage = -1;
	f.max_tokens = -1;
	if (has_body && !q->too_big) {
		root = json_loadb(
		    q->body != NULL ? q->body : "", q->len, 0, &jerr);
		if (root == NULL) {
			snprintf(msg, sizeof(msg),
			    "We could not parse the JSON body of your "
			    "request: %s",
			    jerr.text);
			bad = msg;
		} else if (!json_is_object(root)) {
			bad = "the request body must be a JSON object";
		} else {
			pf_err ferr = mock_fields_read(
			    root, q->route == R_EMBEDDINGS, &f, &bad);

			if (ferr != PF_OK && bad == NULL)
				bad = "invalid request body";
		}
	}
	seen = (mock_seen) { method, url, f.model, f.stream, f.include_usage,
		f.max_tokens, q->body, q->len, q->too_big };
	seq = mock_stats_record(m->stats, (unsigned)q->route, conn, &seen);
	if (has_body && q->too_big) {
		ret = bad_request(
		    m, conn, q, 413, NULL, "request body too large");
		goto out;
	}
	if (bad == NULL)
		bad = read_knobs(m, conn, q, &k, msg, sizeof(msg));
	if (bad != NULL) {
		ret = bad_request(m, conn, q, 400, NULL, bad);
		goto out;
	}

	status = error_due(m, &k);
	if (status != 0 && status != 200) {
		error_arg e = { api, status, NULL, msg };

		mock_stats_add(m->stats, MOCK_ERRORS_INJECTED);
		snprintf(msg, sizeof(msg), "mock error: status %u", status);
		ret = reply_error(m, conn, q, &e, k.ttfb_ms);
		goto out;
	}
	if (!has_body) {
		ret = answer_models(m, conn, q, url, &k);
		goto out;
	}
	fill_reply(&r, api, seq, &f, &k);
	ret = answer_generated(
	    m, conn, q, &r, f.stream == 1 && api != MOCK_API_EMBEDDINGS, &k);
out:
	json_decref(root);
	return ret;
}

static enum MHD_Result
handle(mock_server *m, struct MHD_Connection *conn, mock_req *q,
    const char *method, const char *url)
{
	if (q->route == R_NONE)
		return bad_request(m, conn, q, 404, "unknown_url",
		    "unknown path (the mock serves /v1/...)");
	if (q->bad_method)
		return bad_request(m, conn, q, 405, NULL, "method not allowed");
	switch (q->route) {
	case R_HEALTH:
		return reply_json_text(
		    conn, 200, strdup("{\"status\":\"ok\"}"));
	case R_STATS:
		return reply_json_text(conn, 200,
		    mock_stats_json(m->stats, mock_timer_pending(m->timer)));
	case R_RESET:
		mock_stats_reset(m->stats);
		atomic_store(&m->error_seq, 0);
		atomic_store(&m->fail_seq, 0);
		return reply_json_text(conn, 200, strdup("{\"reset\":true}"));
	case R_KNOBS:
		return set_server_knobs(m, conn, q);
	default:
		return answer_api(m, conn, q, method, url);
	}
}

static void
drop_body(mock_req *q)
{
	q->too_big = true;
	free(q->body);
	q->body = NULL;
	q->len = q->cap = 0;
}

static void
append_body(mock_req *q, const char *data, size_t n)
{
	if (q->too_big)
		return;
	if (n > PF_BODY_MAX_CEILING - q->len) {
		drop_body(q);
		return;
	}
	if (q->len + n > q->cap) {
		size_t cap = q->cap != 0 ? q->cap : 1024;
		char *b;

		while (cap < q->len + n)
			cap *= 2;
		b = realloc(q->body, cap);
		if (b == NULL) {
			/* answered like an oversized body: 413 */
			drop_body(q);
			return;
		}
		q->body = b;
		q->cap = cap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
}

/* strip_knobs takes /mock/knobs/SPEC off the front of url into q. */
static void
strip_knobs(mock_req *q, const char *url)
{
	size_t pl = strlen(KNOBS_PREFIX);
	const char *spec = url + pl;
	const char *end;
	size_t n;

	if (strncmp(url, KNOBS_PREFIX, pl) != 0)
		return;
	end = strchr(spec, '/');
	n = end != NULL ? (size_t)(end - spec) : strlen(spec);
	if (end == NULL || n > PF_MOCK_PATH_KNOBS_MAX) {
		q->knobs_bad = true;
		/* route the rest as unknown: 404 unless it is /v1/... */
		q->path_off = end != NULL ? (size_t)(end - url) : strlen(url);
		return;
	}
	memcpy(q->knobs, spec, n);
	q->knobs[n] = '\0';
	q->path_off = (size_t)(end - url);
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
		strip_knobs(q, url);
		url += q->path_off;
		q->route = route_of(url);
		q->bad_method = q->route != R_NONE
		    && strcmp(method, routes[q->route].method) != 0;
		*con_cls = q;
		return MHD_YES;
	}
	url += q->path_off;
	if (*upload_data_size != 0) {
		append_body(q, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->phase == PHASE_WAIT) {
		resp = q->resp;
		q->resp = NULL;
		q->phase = PHASE_NEW;
		if (resp == NULL) {
			cut_connection(conn);
			return MHD_NO;
		}
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

/* MHD's own complaints (mostly clients going away) are debug noise. */
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

/* parse_listen resolves "HOST:PORT" / "[V6]:PORT" ("*" or "" = any). */
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

static unsigned
thread_count(uint32_t asked)
{
	long n;

	if (asked != 0)
		return asked;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n <= (long)PF_MOCK_THREADS_MAX ? (unsigned)n : 1;
}

static pf_err
start_daemon(mock_server *m, const struct sockaddr_storage *ss)
{
	struct MHD_OptionItem ops[10];
	size_t n = 0;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD
	    | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	const union MHD_DaemonInfo *info;

	ops[n++]
	    = (struct MHD_OptionItem) { MHD_OPTION_SOCK_ADDR, 0, (void *)ss };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_NOTIFY_COMPLETED,
		(intptr_t)completed_cb, NULL };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_TIMEOUT,
		PF_HTTP_CONN_TIMEOUT_S, NULL };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_LIMIT,
		PF_HTTP_MAX_CONNS, NULL };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		PF_MOCK_CONN_MEMORY, NULL };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_LISTEN_BACKLOG_SIZE,
		4096, NULL };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_EXTERNAL_LOGGER,
		(intptr_t)mhd_log_cb, NULL };
	if (m->opt.threads > 1)
		ops[n++]
		    = (struct MHD_OptionItem) { MHD_OPTION_THREAD_POOL_SIZE,
			      (intptr_t)m->opt.threads, NULL };
	ops[n++] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, m,
	    MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
	if (m->d == NULL)
		return PF_EIO;
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info != NULL ? info->port : 0;
	return PF_OK;
}

pf_err
mock_server_start(const mock_options *opt, mock_server **ret)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
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
	pthread_mutex_init(&m->knobs_mu, NULL);
	m->opt = *opt;
	m->opt.threads = thread_count(opt->threads);
	m->listen = strdup(opt->listen);
	m->models = strdup(opt->models != NULL ? opt->models : "mock-model");
	if (m->listen == NULL || m->models == NULL) {
		err = PF_ENOMEM;
		goto fail;
	}
	m->opt.listen = m->listen;
	m->opt.models = m->models;
	err = mock_stats_new(stats_names, R_COUNT, &m->stats);
	if (err != PF_OK)
		goto fail;
	err = mock_timer_new(&m->timer);
	if (err != PF_OK)
		goto fail;
	err = start_daemon(m, &ss);
	if (err != PF_OK)
		goto fail;
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

unsigned
mock_server_threads(const mock_server *m)
{
	return m->opt.threads;
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
	mock_stats_free(m->stats);
	pthread_mutex_destroy(&m->knobs_mu);
	free(m->listen);
	free(m->models);
	free(m);
}
