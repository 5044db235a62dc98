/*
 * server.c -- the ingress HTTP server (libmicrohttpd): routes, auth,
 * request checks, and the client side of a relayed request.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/lane.h"
#include "common/limits.h"
#include "common/log.h"
#include "ingress/acl.h"
#include "ingress/apierr.h"
#include "ingress/auth.h"
#include "ingress/billing.h"
#include "ingress/body.h"
#include "ingress/guard.h"
#include "ingress/health.h"
#include "ingress/relay.h"
#include "ingress/router.h"
#include "ingress/server.h"

/* MHD reader block of a stream response: allocated with each response,
 * so paid per open stream.  A chunked answer (HTTP/1.1) is written
 * through the connection's pool and never touches the block: it gets the
 * least MHD takes.  An HTTP/1.0 client reads until close through the
 * block, STREAM_BLOCK bytes a read. */
#define STREAM_BLOCK 256u
#define STREAM_BLOCK_CHUNKED 1u
#define DISCARD_MAX_FACTOR 2u /* over-cap bytes we swallow, x body_max */

/* One HTTP daemon run by a loop of the caller's (ing_server_start_loops):
 * the access callback's argument, so a request knows its loop. */
struct loop_ctx {
	struct ing_server *srv;
	unsigned i;
	int quiesced; /* by its loop, on quiesce_ask */
	int resumed;  /* atomic: a connection resumed on the loop's thread */
};

/* the loop the calling thread runs (set by ing_server_loop_run) */
static _Thread_local struct loop_ctx *tl_loop;

struct ing_server {
	const pf_config *cfg;
	struct MHD_Daemon *mhd; /* with its own threads; NULL when looped */
	/* ing_server_start_loops: daemons run by the caller's loops */
	struct MHD_Daemon **loops;
	struct loop_ctx *lctx; /* n_loops, or 1 (not looped: srv only) */
	unsigned n_loops;
	unsigned fds_per_conn; /* 2 when the upstream side is ours too */
	int quiesce_ask;       /* atomic: each loop leaves the port */
	void (*waker)(void *arg, unsigned i); /* ends loop i's sleep */
	void *waker_arg;
	ing_router *router;
	ing_auth *auth;
	ing_relay *relay;
	ing_health *health;
	ing_guard *guard;
	ing_billing *billing;
	int draining;
	int stopped;
	int quiesced; /* listening socket closed by ing_server_drain_begin */
	unsigned port;
};

typedef enum route_kind {
	R_NOT_FOUND = 0,
	R_HEALTH,
	R_MODELS,
	R_MODEL_GET,
	R_RELAY,    /* chat/completions, completions, embeddings, responses */
	R_MESSAGES, /* Anthropic messages */
} route_kind;

/* per-request state, freed by the completed callback */
typedef struct conn_state {
	ing_server *srv;
	struct MHD_Connection *conn;
	struct loop_ctx *lc; /* the loop running its daemon, or NULL */
	route_kind route;
	int anthropic;   /* errors in Anthropic's shape */
	const char *url; /* MHD's, valid for the request */
	uint8_t id[PF_ID_LEN];
	char *body;
	size_t len, cap;
	int too_large;
	int queued; /* a response is queued */
	int http11; /* HTTP/1.1: a stream goes out chunked */
	size_t discarded;
	ing_flight *flight;
	int64_t started_ms;
	/* waiting for the key's lookup (ingress/auth.h) and for the
	 * accountant's grant (ingress/billing.h), parked: each allocated only
	 * when a call without it answered that it must wait (a cache hit or a
	 * covered admission allocates none) and freed once its call gives an
	 * answer, so a held stream does not carry them (~270 bytes) */
	ing_auth_wait *auth_wait;
	ing_bill_wait *wait;
} conn_state;

/* --- responses ---------------------------------------------------------
 */

/* add_id_headers names the request's id in r (hex; encoded here, not
 * kept in conn_state, which an open stream holds). */
static void
add_id_headers(struct MHD_Response *r, const conn_state *st)
{
	char id_hex[PF_ID_HEX_LEN + 1];

	pf_hex_encode(st->id, PF_ID_LEN, id_hex);
	MHD_add_response_header(r, "x-request-id", id_hex);
	if (st->anthropic) /* Anthropic's SDKs read request-id */
		MHD_add_response_header(r, "request-id", id_hex);
}

/* queue_take queues body (malloc'ed, taken even on failure). */
static enum MHD_Result
queue_take(struct MHD_Connection *conn, conn_state *st, unsigned status,
    char *body, size_t len, const char *ctype)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	add_id_headers(r, st);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	if (ret == MHD_YES)
		st->queued = 1;
	return ret;
}

static enum MHD_Result
queue_error(struct MHD_Connection *conn, conn_state *st, const ing_apierr *e,
    const char *message)
{
	size_t len = 0;
	char *body = st->anthropic ? ing_apierr_anthropic_json(e, message, &len)
	                           : ing_apierr_json(e, message, &len);

	if (body == NULL)
		return MHD_NO;
	return queue_take(conn, st, e->status, body, len, "application/json");
}

static enum MHD_Result
queue_json(
    struct MHD_Connection *conn, conn_state *st, unsigned status, json_t *j)
{
	char *body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(j);
	if (body == NULL)
		return queue_error(
		    conn, st, &ING_ERR_INTERNAL, "out of memory");
	return queue_take(
	    conn, st, status, body, strlen(body), "application/json");
}

/* --- authentication ----------------------------------------------------
 */

/* The handle a flight or a park is given for its connection is the
 * conn_state (so a resume knows the loop to wake). */
static void resume_cb(void *st);
static void suspend_cb(void *st);

/* auth_wait_drop frees st's key-lookup wait, if any. */
static void
auth_wait_drop(conn_state *st)
{
	if (st->auth_wait == NULL)
		return;
	ing_auth_wait_fini(st->srv->auth, st->auth_wait);
	free(st->auth_wait);
	st->auth_wait = NULL;
}

/* authenticate: MHD_YES with *ret_tok set, or an error response queued
 * (*ret_tok NULL), or (a cache miss) the connection parked until the
 * key's lookup ends (MHD_YES, *ret_tok NULL, nothing queued): the request
 * is taken up again when it is resumed. */
static enum MHD_Result
authenticate(struct MHD_Connection *conn, conn_state *st, ing_token **ret_tok)
{
	const char *h;
	const char *key = NULL;
	size_t len;
	ing_token *tok = NULL;
	pf_err err;

	*ret_tok = NULL;
	h = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0)
		key = h + 7;
	if (key == NULL)
		key = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, "x-api-key");
	if (key != NULL) {
		while (*key == ' ' || *key == '\t')
			key++;
	}
	if (key == NULL || key[0] == '\0')
		return queue_error(conn, st, &ING_ERR_INVALID_KEY,
		    "You didn't provide an API key. You need to provide your "
		    "API key in an Authorization header using Bearer auth "
		    "(i.e. Authorization: Bearer YOUR_KEY).");
	len = strlen(key);
	while (len > 0 && (key[len - 1] == ' ' || key[len - 1] == '\t'))
		len--;
	/* a cache hit (nearly every request) needs no wait: one is made
	 * only for a lookup that must wait */
	err = ing_auth_lookup(st->srv->auth, key, len, st->auth_wait, &tok);
	while (err == PF_EPENDING) {
		if (st->auth_wait == NULL) {
			st->auth_wait = malloc(sizeof(*st->auth_wait));
			if (st->auth_wait == NULL)
				return queue_error(conn, st, &ING_ERR_INTERNAL,
				    "out of memory");
			ing_auth_wait_init(st->auth_wait, st, resume_cb);
		} else if (ing_auth_wait_park(st->auth_wait, suspend_cb)) {
			return MHD_YES;
		}
		err = ing_auth_lookup(
		    st->srv->auth, key, len, st->auth_wait, &tok);
	}
	auth_wait_drop(st);
	if (err == PF_EDENIED)
		return queue_error(conn, st, &ING_ERR_INVALID_KEY,
		    "Incorrect API key provided.");
	if (err != PF_OK)
		return queue_error(conn, st, &ING_ERR_UNAVAILABLE,
		    "Authentication is temporarily unavailable; try again.");
	const union MHD_ConnectionInfo *ci
	    = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ing_acl_ip_allowed(
	        tok->allow_ips, ci != NULL ? ci->client_addr : NULL)) {
		ing_token_unref(tok);
		return queue_error(conn, st, &ING_ERR_IP_DENIED,
		    "This API key may not be used from your IP address.");
	}
	*ret_tok = tok;
	return MHD_YES;
}

/* --- GET /v1/models ----------------------------------------------------
 */

typedef struct models_ctx {
	json_t *data;
	const ing_token *tok;
	const char *only; /* GET /v1/models/{id} */
	json_t *found;
} models_ctx;

static json_t *
model_object(const char *model, const ing_channel *ch)
{
	return json_pack("{s:s, s:s, s:I, s:s}", "id", model, "object", "model",
	    "created", (json_int_t)ch->created_at, "owned_by",
	    ch->type == PF_API_ANTHROPIC ? "anthropic" : "openai");
}

static int
add_model_cb(const char *model, const ing_channel *ch, void *arg)
{
	models_ctx *mc = arg;
	json_t *o;

	if (!ing_acl_model_allowed(mc->tok->models, model))
		return 0;
	if (mc->only != NULL && strcmp(mc->only, model) != 0)
		return 0;
	o = model_object(model, ch);
	if (o == NULL)
		return -1;
	if (mc->only != NULL) {
		mc->found = o;
		return 1;
	}
	return json_array_append_new(mc->data, o) != 0 ? -1 : 0;
}

static enum MHD_Result
serve_models(struct MHD_Connection *conn, conn_state *st, const char *only)
{
	ing_token *tok;
	enum MHD_Result ret = authenticate(conn, st, &tok);
	ing_snapshot *snap;
	models_ctx mc = { 0 };
	int rc;

	if (tok == NULL)
		return ret;
	snap = ing_router_acquire(st->srv->router);
	mc.data = json_array();
	mc.tok = tok;
	mc.only = only;
	rc = mc.data != NULL
	    ? ing_snapshot_each_model(snap, tok->group, add_model_cb, &mc)
	    : -1;
	ing_snapshot_unref(snap);
	ing_token_unref(tok);
	if (rc < 0) {
		json_decref(mc.data);
		json_decref(mc.found);
		return queue_error(
		    conn, st, &ING_ERR_INTERNAL, "out of memory");
	}
	if (only != NULL) {
		json_decref(mc.data);
		if (mc.found == NULL) {
			char msg[PF_MODEL_NAME_MAX + 64];
			snprintf(msg, sizeof(msg),
			    "The model '%.*s' does not exist", 128, only);
			return queue_error(
			    conn, st, &ING_ERR_MODEL_NOT_FOUND, msg);
		}
		return queue_json(conn, st, MHD_HTTP_OK, mc.found);
	}
	json_t *root
	    = json_pack("{s:s, s:o}", "object", "list", "data", mc.data);
	if (root == NULL)
		return queue_error(
		    conn, st, &ING_ERR_INTERNAL, "out of memory");
	return queue_json(conn, st, MHD_HTTP_OK, root);
}

/* --- relayed requests --------------------------------------------------
 */

/* loop_kick makes the loop running lc's daemon call MHD_run soon: a
 * daemon that has no thread of its own is not woken by a resume. */
static void
loop_kick(struct loop_ctx *lc)
{
	ing_server *srv = lc->srv;

	/* the loop runs MHD only when its epoll set is readable or this
	 * flag (loop_timeout) says so: a resume shows in neither set */
	__atomic_store_n(&lc->resumed, 1, __ATOMIC_RELEASE);
	if (tl_loop != lc && srv->waker != NULL)
		srv->waker(srv->waker_arg, lc->i);
}

static void
resume_cb(void *arg)
{
	conn_state *st = arg;

	MHD_resume_connection(st->conn);
	if (st->lc != NULL)
		loop_kick(st->lc);
}

static void
suspend_cb(void *arg)
{
	conn_state *st = arg;

	MHD_suspend_connection(st->conn);
}

static ssize_t
stream_reader_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	ing_flight *f = cls;
	ssize_t n;

	(void)pos;
	pthread_mutex_lock(&f->mu);
	if (f->failed || f->client_gone) {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (f->len > f->off) {
		size_t take = f->len - f->off;
		if (take > max)
			take = max;
		memcpy(buf, f->buf + f->off, take);
		f->off += take;
		ing_flight_took_locked(f, take);
		n = (ssize_t)take;
	} else if (f->ended && !f->billing) {
		n = f->reason == PF_END_DONE
		    ? MHD_CONTENT_READER_END_OF_STREAM
		    : MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (f->conn != NULL) {
		/* nothing yet: park until the reply thread wakes us;
		 * returning 0 without this would busy-loop */
		f->suspended = 1;
		suspend_cb(f->conn);
		n = 0;
	} else {
		n = MHD_CONTENT_READER_END_WITH_ERROR;
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}

static void
stream_free_cb(void *cls)
{
	ing_flight_unref(cls);
}

/* flight_step runs on every call after the request went to a worker:
 * park until there is something to do, then answer. */
static enum MHD_Result
flight_step(struct MHD_Connection *conn, conn_state *st)
{
	ing_flight *f = st->flight;
	char *body = NULL;
	size_t len = 0;
	int status = 0;
	char ctype[PF_CTYPE_MAX + 1];
	const ing_apierr *e = NULL;
	char msg[ING_FLIGHT_ERROR_MAX + 1];
	int stream_now = 0;

	if (st->queued)
		return MHD_YES;
	pthread_mutex_lock(&f->mu);
	if (!ing_flight_ready_locked(f)) {
		f->suspended = 1;
		MHD_suspend_connection(conn);
		pthread_mutex_unlock(&f->mu);
		return MHD_YES;
	}
	if (f->client_gone) {
		/* close; the completed callback cancels the upstream */
		pthread_mutex_unlock(&f->mu);
		return MHD_NO;
	}
	if (f->stream && f->head && f->status >= 200 && f->status < 300
	    && !f->failed) {
		stream_now = 1;
		f->responded = 1;
		status = f->status;
	} else if (f->failed) {
		e = f->head && f->reason != PF_END_DONE
		    ? ing_apierr_for_end(f->reason)
		    : &ING_ERR_UPSTREAM;
		snprintf(msg, sizeof(msg), "%s",
		    f->error != NULL ? f->error : "upstream request failed");
	} else if (f->head
	    && (f->reason == PF_END_DONE
	        || f->reason == PF_END_UPSTREAM_ERROR)) {
		status = f->status;
		snprintf(ctype, sizeof(ctype), "%s",
		    pf_ctype_str(&f->content_type) != NULL
		        ? pf_ctype_str(&f->content_type)
		        : "application/json");
		body = (char *)f->buf;
		len = f->len - f->off;
		if (f->off > 0 && body != NULL)
			memmove(body, body + f->off, len);
		f->buf = NULL;
		f->len = f->off = f->cap = 0;
	} else {
		e = ing_apierr_for_failure(f->reason, f->upstream_status);
		snprintf(msg, sizeof(msg), "%s",
		    e == &ING_ERR_RATE_LIMITED
		        ? "upstream rate limit reached; retry later"
		        : f->error != NULL && f->error[0] != '\0'
		        ? f->error
		        : "upstream request failed");
	}
	pthread_mutex_unlock(&f->mu);

	if (e != NULL)
		return queue_error(conn, st, e, msg);
	if (!stream_now) {
		if (body == NULL) {
			body = malloc(1);
			if (body == NULL)
				return MHD_NO;
		}
		if (status < 100 || status > 599)
			status = MHD_HTTP_BAD_GATEWAY;
		return queue_take(conn, st, (unsigned)status, body, len, ctype);
	}
	struct MHD_Response *r = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, st->http11 ? STREAM_BLOCK_CHUNKED : STREAM_BLOCK,
	    stream_reader_cb, ing_flight_ref(f), stream_free_cb);
	if (r == NULL) {
		ing_flight_unref(f);
		return MHD_NO;
	}
	MHD_add_response_header(
	    r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	add_id_headers(r, st);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	if (ret == MHD_YES)
		st->queued = 1;
	return ret;
}

static void
fill_candidates(const ing_pick *pick, pf_candidate *c)
{
	for (unsigned i = 0; i < pick->n; i++) {
		const ing_channel *ch = pick->channel[i];
		c[i] = (pf_candidate) {
			.channel_id = ch->id,
			.type = ch->type,
			.base_url = { (const uint8_t *)ch->base_url,
			    strlen(ch->base_url) },
			.key = { (const uint8_t *)ch->key, strlen(ch->key) },
			.proxy
			= { (const uint8_t *)ch->proxy, strlen(ch->proxy) },
			.upstream_model
			= { (const uint8_t *)pick->upstream_model[i],
			    strlen(pick->upstream_model[i]) },
			.connect_timeout_ms = ch->connect_timeout_ms,
			.first_byte_timeout_ms = ch->first_byte_timeout_ms,
			.idle_timeout_ms = ch->idle_timeout_ms,
			.total_timeout_ms = ch->total_timeout_ms,
		};
	}
}

/* Client headers passed upstream: what the SDKs send to select API
 * versions and betas, and the mock model's knobs (so tests can drive its
 * faults through the gateway).  Never credentials. */
typedef struct fwd_headers {
	pf_header h[PF_RELAY_HEADERS_MAX];
	char names[PF_RELAY_HEADERS_MAX][PF_RELAY_HEADER_NAME_MAX + 1];
	uint32_t n;
	const char *bad; /* why the set was refused, or NULL */
} fwd_headers;

/* serve_relay's, used only during one call of it */
static _Thread_local fwd_headers tl_fwd;

static int
forwarded(const char *name)
{
	return strncasecmp(name, "anthropic-", 10) == 0
	    || strcasecmp(name, "openai-beta") == 0
	    || strncasecmp(name, "x-mock-", 7) == 0;
}

static enum MHD_Result
collect_header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
    size_t klen, const char *value, size_t value_size)
{
	fwd_headers *fh = cls;
	char *name;

	(void)kind;
	if (!forwarded(key))
		return MHD_YES;
	if (klen > PF_RELAY_HEADER_NAME_MAX
	    || value_size > PF_RELAY_HEADER_VALUE_MAX) {
		fh->bad = "a forwarded header (anthropic-*, openai-beta, "
		          "x-mock-*) is too long";
		return MHD_NO;
	}
	if (fh->n == PF_RELAY_HEADERS_MAX) {
		fh->bad = "too many forwarded headers (anthropic-*, "
		          "openai-beta, x-mock-*)";
		return MHD_NO;
	}
	name = fh->names[fh->n];
	for (size_t i = 0; i < klen; i++)
		name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32
		                                                : key[i]);
	name[klen] = '\0';
	fh->h[fh->n].name = (pf_bytes) { (const uint8_t *)name, klen };
	fh->h[fh->n].value = (pf_bytes) { (const uint8_t *)(value ? value : ""),
		value ? value_size : 0 };
	fh->n++;
	return MHD_YES;
}

static uint64_t
seed_from_id(const uint8_t id[PF_ID_LEN])
{
	uint64_t s;

	memcpy(&s, id + 8, sizeof(s));
	return s;
}

/* bill_wait_drop frees st's admission wait, if any. */
static void
bill_wait_drop(conn_state *st)
{
	if (st->wait == NULL)
		return;
	ing_bill_wait_fini(st->srv->billing, st->wait);
	free(st->wait);
	st->wait = NULL;
}

/* admit holds the request's estimated cost (docs/billing.md); on
 * failure an error response is queued and *ret_admitted stays 0.  When
 * the accountant must be asked, the connection is parked (MHD_YES, no
 * response, *ret_admitted 0) and the whole request is taken up again
 * when the answer (or the wait's end) resumes it. */
static enum MHD_Result
admit(struct MHD_Connection *conn, conn_state *st, const ing_token *tok,
    const ing_snapshot *snap, const ing_body_info *info, int64_t deadline_ms,
    int *ret_admitted)
{
	const pf_config *cfg = st->srv->cfg;
	const ing_prices *prices = ing_snapshot_prices(snap);
	ing_bill_ticket t = { 0 };
	int64_t cap = info->max_tokens;
	pf_err err;

	*ret_admitted = 0;
	memcpy(t.id, st->id, PF_ID_LEN);
	t.user_id = tok->user_id;
	t.token_id = tok->token_id;
	t.model = info->model;
	if (!ing_prices_model(prices, info->model, &t.price))
		memset(&t.price, 0, sizeof(t.price)); /* unpriced: free */
	t.ratio_ppm = ing_prices_group_ratio(prices, tok->group);
	/* billed when a worker is lost after output started: the input
	 * text only, like the worker's estimate; the hold stays on the
	 * whole body (an upper bound) */
	t.prompt_estimate = info->prompt_tokens;
	if (cap < 0)
		cap = strcmp(st->url, "/v1/embeddings") == 0
		    ? 0
		    : PF_BILLING_DEFAULT_COMPLETION;
	if (cap > PF_BILLING_COMPLETION_MAX)
		cap = PF_BILLING_COMPLETION_MAX;
	err = ing_billing_estimate(&t.price, t.ratio_ppm, cfg->quota_per_unit,
	    ing_billing_prompt_tokens(st->body, st->len), cap, &t.estimate);
	if (err != PF_OK)
		return queue_error(conn, st, &ING_ERR_INSUFFICIENT_QUOTA,
		    "The request's estimated cost is too large.");
	t.started_ms = st->started_ms;
	t.deadline_ms = deadline_ms;
	t.stream = info->stream;
	/* an admission the credit covers needs no wait: one is made only
	 * for an admission that must wait */
	err = ing_billing_admit(st->srv->billing, &t, st->wait);
	while (err == PF_EPENDING) {
		if (st->wait == NULL) {
			st->wait = malloc(sizeof(*st->wait));
			if (st->wait == NULL)
				return queue_error(conn, st, &ING_ERR_INTERNAL,
				    "out of memory");
			ing_bill_wait_init(st->wait, st, resume_cb);
		} else if (ing_bill_wait_park(st->wait, suspend_cb)) {
			return MHD_YES;
		}
		err = ing_billing_admit(st->srv->billing, &t, st->wait);
	}
	bill_wait_drop(st);
	if (err == PF_OK) {
		*ret_admitted = 1;
		return MHD_YES;
	}
	if (err == PF_EDENIED)
		return queue_error(conn, st, &ING_ERR_INSUFFICIENT_QUOTA,
		    "You exceeded your current quota, please check your plan "
		    "and billing details.");
	if (err == PF_EAGAIN || err == PF_ECLOSED)
		return queue_error(conn, st, &ING_ERR_UNAVAILABLE,
		    "Billing is temporarily unavailable; try again.");
	return queue_error(conn, st, &ING_ERR_INTERNAL, "out of memory");
}

static enum MHD_Result
serve_relay(struct MHD_Connection *conn, conn_state *st)
{
	const pf_config *cfg = st->srv->cfg;
	ing_token *tok;
	enum MHD_Result ret = authenticate(conn, st, &tok);
	ing_body_info info;
	char msg[512];
	ing_snapshot *snap;
	ing_pick pick;
	pf_candidate cands[PF_RELAY_MAX_CANDIDATES];
	uint64_t rng;
	pf_err err;

	if (tok == NULL)
		return ret;
	if (__atomic_load_n(&st->srv->draining, __ATOMIC_ACQUIRE)) {
		ing_token_unref(tok);
		return queue_error(
		    conn, st, &ING_ERR_UNAVAILABLE, "server shutting down");
	}
	err = ing_body_parse(st->body, st->len, &info, msg, sizeof(msg));
	if (err != PF_OK) {
		ing_token_unref(tok);
		if (err != PF_EINVAL)
			return queue_error(
			    conn, st, &ING_ERR_INTERNAL, "out of memory");
		return queue_error(conn, st, &ING_ERR_BAD_REQUEST, msg);
	}
	if (!ing_acl_model_allowed(tok->models, info.model)) {
		ing_token_unref(tok);
		snprintf(msg, sizeof(msg),
		    "This API key is not allowed to use the model '%s'.",
		    info.model);
		return queue_error(conn, st, &ING_ERR_MODEL_DENIED, msg);
	}
	snap = ing_router_acquire(st->srv->router);
	rng = seed_from_id(st->id);
	err = ing_snapshot_pick(snap, tok->group, info.model, &rng, &pick);
	if (err != PF_OK) {
		ing_token_unref(tok);
		ing_snapshot_unref(snap);
		if (err == PF_EAGAIN) {
			snprintf(msg, sizeof(msg),
			    "No channel is available for the model '%s' right "
			    "now (all of its channels are disabled); try again "
			    "later.",
			    info.model);
			return queue_error(conn, st, &ING_ERR_NO_CHANNEL, msg);
		}
		if (err != PF_ENOTFOUND)
			return queue_error(
			    conn, st, &ING_ERR_INTERNAL, "out of memory");
		snprintf(msg, sizeof(msg),
		    "The model '%s' does not exist or you do not have access "
		    "to it.",
		    info.model);
		return queue_error(conn, st, &ING_ERR_MODEL_NOT_FOUND, msg);
	}
	fill_candidates(&pick, cands);
	/* the thread's (~19 KiB: too big for the stack, and a malloc and
	 * free of it per request went through the allocator's slow path);
	 * the send below copies what it needs */
	fwd_headers *fh = &tl_fwd;
	fh->n = 0;
	fh->bad = NULL;
	MHD_get_connection_values_n(
	    conn, MHD_HEADER_KIND, collect_header_cb, fh);
	if (fh->bad != NULL) {
		snprintf(msg, sizeof(msg), "%s", fh->bad);
		ing_token_unref(tok);
		ing_snapshot_unref(snap);
		return queue_error(conn, st, &ING_ERR_BAD_REQUEST, msg);
	}

	int64_t deadline = pf_clock_ms() + (int64_t)cfg->total_timeout_ms;
	int admitted = 0;
	ret = admit(conn, st, tok, snap, &info, deadline, &admitted);
	ing_token_unref(tok);
	if (!admitted) {
		ing_snapshot_unref(snap);
		return ret;
	}
	pf_msg m = { .kind = PF_MSG_RELAY_REQUEST };
	pf_relay_request *rq = &m.u.relay_request;
	memcpy(rq->id, st->id, PF_ID_LEN);
	rq->reply_addr = (pf_bytes) { (const uint8_t *)cfg->reply_url,
		strlen(cfg->reply_url) };
	rq->deadline_ms = deadline;
	rq->method = (pf_bytes) { (const uint8_t *)"POST", 4 };
	rq->path
	    = (pf_bytes) { (const uint8_t *)st->url + 3, strlen(st->url) - 3 };
	rq->stream = (uint8_t)info.stream;
	rq->client_usage = (uint8_t)info.client_usage;
	rq->client_api = st->anthropic ? PF_API_ANTHROPIC : PF_API_OPENAI;
	rq->body = (pf_bytes) { (const uint8_t *)st->body, st->len };
	rq->n_candidates = pick.n;
	rq->candidates = cands;
	rq->credit = info.stream ? PF_STREAM_CREDIT_WINDOW : 0;
	rq->n_headers = fh->n;
	rq->headers = fh->n > 0 ? fh->h : NULL;

	st->flight
	    = ing_flight_new(st->id, info.stream, deadline, st, resume_cb);
	if (st->flight == NULL) {
		ing_billing_abort(st->srv->billing, st->id);
		ing_snapshot_unref(snap);
		return queue_error(
		    conn, st, &ING_ERR_INTERNAL, "out of memory");
	}
	const union MHD_ConnectionInfo *ci
	    = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL)
		st->flight->fd = ci->connect_fd;
	/* the client sees the end once its usage event is durable */
	st->flight->billing
	    = ing_billing_track(st->srv->billing, st->id, st->flight);
	err = ing_relay_send(st->srv->relay, st->flight, &m);
	ing_snapshot_unref(snap);
	if (err != PF_OK) {
		ing_billing_abort(st->srv->billing, st->id);
		ing_flight_unref(st->flight);
		st->flight = NULL;
		if (err == PF_EAGAIN)
			return queue_error(conn, st, &ING_ERR_NO_WORKER,
			    "no worker available");
		if (err == PF_ECLOSED)
			return queue_error(conn, st, &ING_ERR_UNAVAILABLE,
			    "server shutting down");
		if (err == PF_ETOOBIG)
			return queue_error(
			    conn, st, &ING_ERR_TOO_LARGE, "request too large");
		return queue_error(
		    conn, st, &ING_ERR_INTERNAL, "could not relay request");
	}
	/* the body went out; keep no copy */
	free(st->body);
	st->body = NULL;
	st->len = st->cap = 0;
	return flight_step(conn, st);
}

/* --- MHD callbacks -----------------------------------------------------
 */

static route_kind
classify(const char *method, const char *url, int *wrong_method)
{
	int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	route_kind k = R_NOT_FOUND;
	int want_post = 0;

	if (strcmp(url, "/health") == 0) {
		k = R_HEALTH;
	} else if (strcmp(url, "/v1/models") == 0) {
		k = R_MODELS;
	} else if (strncmp(url, "/v1/models/", 11) == 0 && url[11] != '\0') {
		k = R_MODEL_GET;
	} else if (strcmp(url, "/v1/chat/completions") == 0
	    || strcmp(url, "/v1/completions") == 0
	    || strcmp(url, "/v1/embeddings") == 0
	    || strcmp(url, "/v1/responses") == 0) {
		k = R_RELAY;
		want_post = 1;
	} else if (strcmp(url, "/v1/messages") == 0) {
		k = R_MESSAGES;
		want_post = 1;
	}
	*wrong_method = k != R_NOT_FOUND && (want_post ? !post : !get);
	return k;
}

static enum MHD_Result too_large(struct MHD_Connection *conn, conn_state *st);

/* first_cap sizes a request's first body buffer: its declared
 * Content-Length when that holds need and is within max (most bodies
 * are far below 4 KiB, and every request waiting for its key's lookup
 * or its admission holds its buffer: many at once while thousands of
 * streams open), else 4096. */
static size_t
first_cap(struct MHD_Connection *conn, size_t need, size_t max)
{
	const char *cl = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long v;
	char *end;

	if (cl == NULL)
		return 4096;
	errno = 0;
	v = strtoull(cl, &end, 10);
	if (errno != 0 || end == cl || v < need || v > max)
		return 4096;
	return (size_t)v;
}

static enum MHD_Result
body_piece(
    struct MHD_Connection *conn, conn_state *st, const char *data, size_t n)
{
	size_t max = st->srv->cfg->body_max;

	if (st->queued)
		return MHD_YES;
	if (st->too_large) {
		st->discarded += n;
		/* an endless body: stop reading, close */
		return st->discarded > (size_t)max * DISCARD_MAX_FACTOR
		    ? MHD_NO
		    : MHD_YES;
	}
	if (st->len + n > max) {
		st->too_large = 1;
		free(st->body);
		st->body = NULL;
		st->len = st->cap = 0;
		/* answer at once if MHD lets us queue mid-body; otherwise the
		 * rest is swallowed (up to a cap) and the 413 follows */
		(void)too_large(conn, st);
		return MHD_YES;
	}
	if (st->len + n > st->cap) {
		size_t want
		    = st->cap > 0 ? st->cap : first_cap(conn, st->len + n, max);
		while (want < st->len + n)
			want *= 2;
		if (want > max)
			want = max;
		char *b = realloc(st->body, want);
		if (b == NULL)
			return MHD_NO;
		st->body = b;
		st->cap = want;
	}
	memcpy(st->body + st->len, data, n);
	st->len += n;
	return MHD_YES;
}

static enum MHD_Result
too_large(struct MHD_Connection *conn, conn_state *st)
{
	char msg[128];

	snprintf(msg, sizeof(msg),
	    "Request body too large: the limit is %u bytes.",
	    st->srv->cfg->body_max);
	return queue_error(conn, st, &ING_ERR_TOO_LARGE, msg);
}

/* guard_busy tells the slow-client guard whether conn is inside a
 * request (its header block is complete) or waiting for the next one. */
static void
guard_busy(ing_server *srv, struct MHD_Connection *conn, int busy)
{
	const union MHD_ConnectionInfo *ci
	    = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	if (ci != NULL)
		ing_guard_busy(srv->guard, ci->socket_context, busy);
}

static void
notify_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	ing_server *srv = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		    conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		*socket_context = ci != NULL
		    ? ing_guard_add(srv->guard, ci->connect_fd)
		    : NULL;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		ing_guard_remove(srv->guard, *socket_context);
		*socket_context = NULL;
	}
}

/* --- request heads that leave no room for the answer -----------------
 *
 * libmicrohttpd 0.9.75 keeps the request line and headers (their bytes
 * and a record per header) in the connection's pool until the answer is
 * out, takes a head as long as it fits the pool at all, and builds the
 * answer's head in what is left (connection.c build_header_response):
 * when that is too little it closes the connection without a word.  Its
 * own 431 comes only for heads that do not fit at all.  So the gateway
 * refuses, at the request's first call, a head that leaves less than
 * PF_HTTP_REPLY_RESERVE of the pool (common/limits.h). */

/* head_fits: whether the request head leaves PF_HTTP_REPLY_RESERVE of the
 * pool (more for Anthropic's shape), as MHD lays it out: the head's bytes
 * (rounded to MHD's 16-byte alignment), a record per header, cookie and
 * query argument, and the copy of a Cookie header it parses.  (Blank
 * lines before the request line, which MHD skips but keeps, are not
 * seen.) */
static int
head_fits(const ing_server *srv, struct MHD_Connection *conn, int anthropic)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
	    conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	const char *cookie = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
	int n = MHD_get_connection_values(conn,
	    MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND, NULL,
	    NULL);
	size_t used;

	if (ci == NULL || n < 0)
		return 1;
	used = (ci->header_size + 15) / 16 * 16
	    + (size_t)n * PF_MHD_HEADER_RECORD;
	if (cookie != NULL)
		used += (strlen(cookie) + 1 + 15) / 16 * 16;
	return used + PF_HTTP_REPLY_RESERVE
	    + (anthropic ? PF_HTTP_REPLY_RESERVE_ANTHROPIC : 0)
	    <= srv->cfg->http_conn_memory;
}

/* refuse_head answers 431 (the API's JSON error) to a request whose head
 * head_fits refused, written to the socket here: MHD could not build even
 * that answer's head in what is left of the pool.  The connection is the
 * request's alone and nothing has been written for it (MHD reads a
 * request only once the previous answer is out), and a few hundred bytes
 * fit any socket's send buffer.  Returns MHD_NO: MHD closes it. */
static enum MHD_Result
refuse_head(struct MHD_Connection *conn, conn_state *st)
{
	const union MHD_ConnectionInfo *ci
	    = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char msg[160];
	char id_hex[PF_ID_HEX_LEN + 1];
	char date[64];
	char head[512];
	size_t len = 0;
	char *body;
	struct tm tm;
	time_t now = time(NULL);
	int hl;

	snprintf(msg, sizeof(msg),
	    "Request header fields too large: the request line and headers "
	    "must leave %u of the %u bytes of PF_HTTP_CONN_MEMORY.",
	    PF_HTTP_REPLY_RESERVE
	        + (st->anthropic ? PF_HTTP_REPLY_RESERVE_ANTHROPIC : 0),
	    st->srv->cfg->http_conn_memory);
	body = st->anthropic
	    ? ing_apierr_anthropic_json(&ING_ERR_HEADERS_TOO_LARGE, msg, &len)
	    : ing_apierr_json(&ING_ERR_HEADERS_TOO_LARGE, msg, &len);
	if (body == NULL || ci == NULL) {
		free(body);
		return MHD_NO;
	}
	pf_hex_encode(st->id, PF_ID_LEN, id_hex);
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	hl = snprintf(head, sizeof(head),
	    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
	    "Date: %s\r\nConnection: close\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "x-request-id: %s\r\n%s%s%s\r\n",
	    date, len, id_hex, st->anthropic ? "request-id: " : "",
	    st->anthropic ? id_hex : "", st->anthropic ? "\r\n" : "");
	if (hl > 0 && (size_t)hl < sizeof(head)) {
		struct iovec iov[2] = { { head, (size_t)hl }, { body, len } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t w
		    = sendmsg(ci->connect_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w != (ssize_t)((size_t)hl + len))
			pf_debug("PF-HTTP-431", "msg=\"short write\" n=%zd", w);
	}
	free(body);
	pf_debug("PF-HTTP-431",
	    "msg=\"request head leaves too little of "
	    "the connection's memory\"");
	return MHD_NO;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct loop_ctx *lc = cls;
	ing_server *srv = lc->srv;
	conn_state *st = *con_cls;

	if (st == NULL) {
		int wrong_method = 0;
		st = pf_zalloc(sizeof(*st));
		if (st == NULL)
			return MHD_NO;
		*con_cls = st;
		st->srv = srv;
		st->conn = conn;
		st->http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
		st->lc = srv->n_loops > 0 ? lc : NULL;
		st->url = url;
		st->started_ms = pf_clock_ms();
		guard_busy(srv, conn, ING_GUARD_BODY);
		if (pf_id_new(st->id) != PF_OK)
			return MHD_NO;
		st->route = classify(method, url, &wrong_method);
		if (wrong_method)
			st->route = R_NOT_FOUND;
		st->anthropic = st->route == R_MESSAGES;
		if (!head_fits(srv, conn, st->anthropic))
			return refuse_head(conn, st);
		const char *cl = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > srv->cfg->body_max) {
			st->too_large = 1;
			/* a client that is not waiting for 100-continue is
			 * already sending: answering before its body is in
			 * makes it fail writing (EPIPE) and never see the 413.
			 * Swallow a body up to the discard cap, answer after;
			 * answer a larger one (or a waiting client) at once */
			const char *expect = MHD_lookup_connection_value(
			    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
			if (expect != NULL
			    || strtoull(cl, NULL, 10)
			        > (unsigned long long)srv->cfg->body_max
			            * DISCARD_MAX_FACTOR)
				return too_large(conn, st);
			return MHD_YES;
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		return body_piece(conn, st, upload_data, n);
	}
	guard_busy(srv, conn, ING_GUARD_RUNNING); /* the request is in */
	if (st->flight != NULL)
		return flight_step(conn, st);
	if (st->queued)
		return MHD_YES;
	if (st->too_large)
		return too_large(conn, st);
	switch (st->route) {
	case R_HEALTH:
		if (__atomic_load_n(&srv->draining, __ATOMIC_ACQUIRE)) {
			char *b = strdup("{\"status\":\"draining\"}");
			return b != NULL ? queue_take(conn, st, 503, b,
			           strlen(b), "application/json")
			                 : MHD_NO;
		} else {
			char *b = strdup("{\"status\":\"ok\"}");
			return b != NULL ? queue_take(conn, st, 200, b,
			           strlen(b), "application/json")
			                 : MHD_NO;
		}
	case R_MODELS:
		return serve_models(conn, st, NULL);
	case R_MODEL_GET:
		return serve_models(conn, st, url + 11);
	case R_RELAY:
	case R_MESSAGES:
		return serve_relay(conn, st);
	case R_NOT_FOUND:
	default:
		break;
	}
	char msg[256];
	snprintf(msg, sizeof(msg), "Invalid URL (%.16s %.200s)", method, url);
	return queue_error(conn, st, &ING_ERR_NOT_FOUND, msg);
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	ing_server *srv = cls;
	conn_state *st = *con_cls;

	(void)toe;
	guard_busy(srv, conn, ING_GUARD_HEADERS);
	if (st == NULL)
		return;
	if (st->flight != NULL) {
		ing_flight *f = st->flight;
		int unfinished;
		ing_relay_forget(srv->relay, f);
		pthread_mutex_lock(&f->mu);
		f->conn = NULL;
		f->suspended = 0;
		unfinished = !f->ended;
		pthread_mutex_unlock(&f->mu);
		/* the client left (or was cut off) before the worker finished:
		 * stop the upstream transfer */
		if (unfinished)
			ing_relay_cancel(srv->relay, f);
		ing_flight_unref(f);
	}
	bill_wait_drop(st);
	auth_wait_drop(st);
	free(st->body);
	free(st);
	*con_cls = NULL;
}

static void
mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\r\n")] = '\0';
	pf_debug("PF-HTTP-MHD", "msg=\"%s\"", line);
}

/* --- lifecycle ---------------------------------------------------------
 */

/* split_listen parses "host:port" / "[v6]:port" into host and port. */
static pf_err
split_listen(
    const char *listen, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	const char *h = listen;
	size_t hl;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (close == NULL || close[1] != ':')
			return PF_ECONFIG;
		h = listen + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			return PF_ECONFIG;
		hl = (size_t)(colon - listen);
	}
	if (hl >= hostlen || strlen(colon + 1) >= portlen || colon[1] == '\0')
		return PF_ECONFIG;
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return PF_OK;
}

/*
 * open_listener creates the HTTP listening socket for ai, bound and
 * listening.  SO_REUSEADDR is always set, so a restart is not held up by
 * connections of the previous process in TIME_WAIT; SO_REUSEPORT only when
 * reuseport is set (PF_LISTEN_REUSEPORT=1), since with it a second process
 * binds the same port without an error and the kernel splits new
 * connections between the two.  (libmicrohttpd 0.9.75 sets SO_REUSEADDR
 * itself only when MHD_OPTION_LISTENING_ADDRESS_REUSE is absent; given as
 * 0 it sets neither option on Linux.  Binding here also tells us errno.)
 * Returns the socket, or -1 with errno set.
 */
static int
open_listener(const struct addrinfo *ai, int reuseport)
{
	int one = 1;
	int fd, saved;

	fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto fail;
	if (reuseport
	    && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	/* as libmicrohttpd does for MHD_USE_IPv6 without MHD_USE_DUAL_STACK */
	if (ai->ai_family == AF_INET6
	    && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))
	        != 0)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		goto fail;
	if (listen(fd, SOMAXCONN) != 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* bound_port returns the local TCP port of the listening socket fd. */
static unsigned
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* start_daemon starts one daemon on fd (taken: MHD_stop_daemon closes
 * it) for loop context lc: pool > 0 threads of its own, or none (0: run
 * by a loop of the caller's).  NULL on failure (whether libmicrohttpd
 * closed fd then is not documented; the process is about to exit). */
static struct MHD_Daemon *
start_daemon(ing_server *srv, int fd, unsigned flags, struct loop_ctx *lc,
    unsigned pool, unsigned max_conns)
{
	const pf_config *cfg = srv->cfg;

	return MHD_start_daemon(
	    flags | (pool > 0 ? MHD_USE_EPOLL_INTERNAL_THREAD : MHD_USE_EPOLL),
	    0, NULL, NULL, access_cb, lc, MHD_OPTION_EXTERNAL_LOGGER,
	    mhd_log_cb, srv, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)cfg->client_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
	    max_conns, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)cfg->http_conn_memory, MHD_OPTION_NOTIFY_COMPLETED,
	    completed_cb, srv, MHD_OPTION_NOTIFY_CONNECTION, notify_cb, srv,
	    MHD_OPTION_END);
}

/*
 * conn_limit is how many client connections srv accepts at once: the
 * descriptors this process may open (RLIMIT_NOFILE, whose soft limit
 * pf_cli_tune_process raised to the hard one) less PF_FD_RESERVE for its
 * own files and sockets (spool and event-log segments, database, Redis,
 * NNG, the syncer's descriptor), divided by the descriptors a client
 * connection costs (its socket, and its upstream socket when the
 * transfers run in this process), and at most PF_HTTP_MAX_CONNS.  Past
 * it libmicrohttpd accepts no more: further clients wait in the listen
 * backlog instead of taking the descriptors the spool needs to stay
 * durable.
 */
static unsigned
conn_limit(const ing_server *srv)
{
	struct rlimit rl;
	uint64_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return PF_HTTP_MAX_CONNS;
	n = rl.rlim_cur > PF_FD_RESERVE + srv->fds_per_conn
	    ? (rl.rlim_cur - PF_FD_RESERVE) / srv->fds_per_conn
	    : 1;
	if (n >= PF_HTTP_MAX_CONNS)
		return PF_HTTP_MAX_CONNS;
	pf_warn("PF-HTTP-CONN-LIMIT",
	    "conns=%llu nofile=%llu per_conn=%u reserve=%u "
	    "msg=\"the open-file limit caps the client connections below "
	    "%u; raise it (ulimit -n, LimitNOFILE=) for more\"",
	    (unsigned long long)n, (unsigned long long)rl.rlim_cur,
	    srv->fds_per_conn, PF_FD_RESERVE, PF_HTTP_MAX_CONNS);
	return (unsigned)n;
}

/* start_daemons starts srv->n_loops daemons in external epoll mode on fd
 * (each on a dup of its own), or one with a thread pool when n_loops is 0.
 * fd is taken. */
static pf_err
start_daemons(ing_server *srv, int fd, unsigned flags)
{
	unsigned threads
	    = srv->cfg->http_threads > 0 ? srv->cfg->http_threads : 1;
	unsigned max_conns = conn_limit(srv);

	if (srv->n_loops == 0) {
		srv->mhd = start_daemon(
		    srv, fd, flags, &srv->lctx[0], threads, max_conns);
		return srv->mhd != NULL ? PF_OK : PF_EIO;
	}
	/* every loop's daemon accepts from the one listening socket (a dup
	 * each, since each daemon closes its own); the kernel wakes the
	 * loops that wait and one accept wins */
	for (unsigned i = 0; i < srv->n_loops; i++) {
		int dfd = i == 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (dfd < 0)
			return PF_EIO;
		srv->loops[i] = start_daemon(srv, dfd, flags, &srv->lctx[i], 0,
		    max_conns / srv->n_loops > 0 ? max_conns / srv->n_loops
		                                 : 1);
		if (srv->loops[i] == NULL)
			return PF_EIO;
	}
	return PF_OK;
}

static pf_err
start_http(ing_server *srv, char *errbuf, size_t errlen)
{
	const pf_config *cfg = srv->cfg;
	char host[256], port[16];
	struct addrinfo hints = { 0 };
	struct addrinfo *ai = NULL;
	unsigned flags = MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	int fd, gai;
	pf_err err;

	err = split_listen(cfg->listen, host, sizeof(host), port, sizeof(port));
	if (err != PF_OK) {
		snprintf(
		    errbuf, errlen, "PF_LISTEN %s: not host:port", cfg->listen);
		return err;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	gai = getaddrinfo(
	    host[0] != '\0' && strcmp(host, "*") != 0 ? host : NULL, port,
	    &hints, &ai);
	if (gai != 0) {
		snprintf(errbuf, errlen, "PF_LISTEN %s: %s", cfg->listen,
		    gai_strerror(gai));
		return PF_ECONFIG;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	fd = open_listener(ai, cfg->listen_reuseport != 0);
	freeaddrinfo(ai);
	if (fd < 0) {
		if (errno == EADDRINUSE)
			snprintf(errbuf, errlen,
			    "PF_LISTEN %s: address already in use (another "
			    "gateway? set PF_LISTEN_REUSEPORT=1 on both for a "
			    "handover)",
			    cfg->listen);
		else
			snprintf(errbuf, errlen, "PF_LISTEN %s: %s",
			    cfg->listen, strerror(errno));
		return PF_EIO;
	}
	srv->port = bound_port(fd);
	if (start_daemons(srv, fd, flags) != PF_OK) {
		snprintf(errbuf, errlen,
		    "PF_LISTEN %s: the HTTP daemon did not start "
		    "(PF_LOG_LEVEL=debug shows libmicrohttpd's reason)",
		    cfg->listen);
		return PF_EIO;
	}
	return PF_OK;
}

/* end_hook_cb gives every relay.end to channel health and billing
 * (neither blocks). */
static void
end_hook_cb(void *arg, const pf_relay_end *e)
{
	ing_server *srv = arg;

	ing_health_end_cb(srv->health, e);
	/* the flush hook wakes billing once per batch of replies */
	ing_billing_end_later(srv->billing, e);
}

/* end_flush_cb follows a batch of end_hook_cb calls. */
static void
end_flush_cb(void *arg)
{
	ing_server *srv = arg;

	/* serve's HTTP loop (the worker's turn ended on it) spools all of
	 * them; an NNG callback (split) leaves a larger batch to the billing
	 * thread */
	if (tl_loop != NULL)
		ing_billing_end_spool(srv->billing);
	else
		ing_billing_end_flush(srv->billing);
}

pf_err
ing_server_start(const pf_config *cfg, ing_server **ret)
{
	return ing_server_start_lane(cfg, NULL, ret);
}

pf_err
ing_server_start_lane(
    const pf_config *cfg, struct pf_lane *lane, ing_server **ret)
{
	return ing_server_start_loops(cfg, lane, 0, ret);
}

pf_err
ing_server_start_loops(const pf_config *cfg, struct pf_lane *lane,
    unsigned n_loops, ing_server **ret)
{
	ing_server *srv = calloc(1, sizeof(*srv));
	pf_err err;

	if (srv == NULL)
		return PF_ENOMEM;
	srv->cfg = cfg;
	srv->loops = calloc(n_loops > 0 ? n_loops : 1, sizeof(*srv->loops));
	srv->lctx = calloc(n_loops > 0 ? n_loops : 1, sizeof(*srv->lctx));
	if (srv->loops == NULL || srv->lctx == NULL) {
		free(srv->loops);
		free(srv->lctx);
		free(srv);
		return PF_ENOMEM;
	}
	srv->n_loops = n_loops;
	srv->fds_per_conn = lane != NULL || n_loops > 0 ? 2 : 1;
	for (unsigned i = 0; i < (n_loops > 0 ? n_loops : 1); i++) {
		srv->lctx[i].srv = srv;
		srv->lctx[i].i = i;
	}
	if (cfg->database_url[0] == '\0') {
		err = PF_ECONFIG;
		goto fail;
	}
	err = ing_router_start(cfg, &srv->router);
	if (err != PF_OK)
		goto fail;
	err = ing_auth_new(cfg, &srv->auth);
	if (err != PF_OK)
		goto fail;
	char errbuf[PF_CONFIG_STR + 256];
	err = ing_billing_start(cfg, &srv->billing, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		pf_error("PF-BILL-START", "err=\"%s\" msg=\"%s\"",
		    pf_strerror(err), errbuf);
		goto fail;
	}
	err = ing_relay_start_lane(cfg, lane, &srv->relay);
	if (err != PF_OK)
		goto fail;
	err = ing_health_new(cfg, &srv->health);
	if (err != PF_OK)
		goto fail;
	ing_relay_set_end_hook(srv->relay, end_hook_cb, end_flush_cb, srv);
	err = ing_health_start(srv->health, srv->relay, srv->router);
	if (err != PF_OK)
		goto fail;
	/* the whole header block within the client timeout (slowloris), a
	 * body within that plus the time a full one takes at the slowest
	 * rate we wait for */
	err = ing_guard_start(cfg->client_timeout_s * 1000u,
	    cfg->client_timeout_s * 1000u
	        + (uint32_t)((uint64_t)cfg->body_max * 1000u
	            / PF_HTTP_BODY_MIN_RATE),
	    &srv->guard);
	if (err != PF_OK)
		goto fail;
	err = start_http(srv, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		pf_error("PF-HTTP-LISTEN", "err=\"%s\" msg=\"%s\"",
		    pf_strerror(err), errbuf);
		goto fail;
	}
	*ret = srv;
	return PF_OK;
fail:
	srv->stopped = 1;
	ing_server_free(srv);
	return err;
}

unsigned
ing_server_port(const ing_server *srv)
{
	return srv->port;
}

void
ing_server_drain_begin(ing_server *srv)
{
	__atomic_store_n(&srv->draining, 1, __ATOMIC_RELEASE);
	ing_health_quiesce(srv->health);
	/* A handover (PF_LISTEN_REUSEPORT=1): leave the port's SO_REUSEPORT
	 * group, so the kernel gives new connections to the gateway that
	 * goes on instead of to us (they would get 503 for the whole drain).
	 * Connections still in our accept queue are reset. */
	if (!srv->cfg->listen_reuseport || srv->quiesced)
		return;
	srv->quiesced = 1;
	if (srv->mhd != NULL) {
		MHD_socket fd = MHD_quiesce_daemon(srv->mhd);

		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	} else if (srv->n_loops > 0) {
		/* a daemon is quiesced by the loop that runs it */
		__atomic_store_n(&srv->quiesce_ask, 1, __ATOMIC_RELEASE);
		for (unsigned i = 0; i < srv->n_loops && srv->waker != NULL;
		     i++)
			srv->waker(srv->waker_arg, i);
	}
}

/* loop_fd, loop_run, loop_timeout, loop_attach: the loop hook
 * (ing_server_loop_hook) that runs daemon i in a loop of the caller's. */
static int
loop_fd(void *arg, unsigned i)
{
	ing_server *srv = arg;
	const union MHD_DaemonInfo *di
	    = MHD_get_daemon_info(srv->loops[i], MHD_DAEMON_INFO_EPOLL_FD);

	return di != NULL ? di->epoll_fd : -1;
}

static void
loop_run(void *arg, unsigned i)
{
	ing_server *srv = arg;
	struct MHD_Daemon *d = srv->loops[i];
	struct loop_ctx *lc = &srv->lctx[i];

	tl_loop = lc;
	if (__atomic_load_n(&srv->quiesce_ask, __ATOMIC_ACQUIRE)
	    && !lc->quiesced) {
		MHD_socket fd = MHD_quiesce_daemon(d);

		lc->quiesced = 1;
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	__atomic_store_n(&lc->resumed, 0, __ATOMIC_RELAXED);
	MHD_run(d);
}

static int64_t
loop_timeout(void *arg, unsigned i)
{
	ing_server *srv = arg;
	MHD_UNSIGNED_LONG_LONG ms;

	if (__atomic_load_n(&srv->lctx[i].resumed, __ATOMIC_ACQUIRE))
		return 0;
	if (__atomic_load_n(&srv->quiesce_ask, __ATOMIC_ACQUIRE)
	    && !srv->lctx[i].quiesced)
		return 0;
	if (MHD_get_timeout(srv->loops[i], &ms) != MHD_YES)
		return -1;
	return ms > (MHD_UNSIGNED_LONG_LONG)INT32_MAX ? INT32_MAX : (int64_t)ms;
}

/* loop_attach keeps how to wake loop i (before any request comes in). */
static void
loop_attach(void *arg, void (*wake)(void *wake_arg, unsigned i), void *wake_arg)
{
	ing_server *srv = arg;

	srv->waker = wake;
	srv->waker_arg = wake_arg;
}

void
ing_server_loop_hook(ing_server *srv, pf_loop_hook *ret)
{
	ret->arg = srv;
	ret->n = srv->n_loops;
	ret->fd = loop_fd;
	ret->run = loop_run;
	ret->timeout_ms = loop_timeout;
	ret->attach = loop_attach;
}

size_t
ing_server_inflight(ing_server *srv)
{
	return srv->relay != NULL ? ing_relay_inflight(srv->relay) : 0;
}

/* stop_daemons stops every HTTP daemon (the loops running them must
 * have stopped). */
static void
stop_daemons(ing_server *srv)
{
	if (srv->mhd != NULL)
		MHD_stop_daemon(srv->mhd);
	srv->mhd = NULL;
	for (unsigned i = 0; i < srv->n_loops; i++) {
		if (srv->loops[i] != NULL)
			MHD_stop_daemon(srv->loops[i]);
		srv->loops[i] = NULL;
	}
}

void
ing_server_stop(ing_server *srv)
{
	if (srv == NULL || srv->stopped)
		return;
	srv->stopped = 1;
	__atomic_store_n(&srv->draining, 1, __ATOMIC_RELEASE);
	/* every parked connection must be resumed before the daemon stops */
	if (srv->relay != NULL)
		ing_relay_close_all(srv->relay);
	if (srv->billing != NULL)
		ing_billing_close_waits(srv->billing);
	if (srv->auth != NULL)
		ing_auth_close_waits(srv->auth);
	stop_daemons(srv);
}

void
ing_server_free(ing_server *srv)
{
	if (srv == NULL)
		return;
	ing_server_stop(srv);
	stop_daemons(srv);
	free(srv->loops);
	free(srv->lctx);
	/* before the relay, whose reply thread calls into it; its probes
	 * use the relay */
	ing_guard_free(srv->guard); /* after MHD: it removes its records */
	srv->guard = NULL;
	ing_relay_set_end_hook(srv->relay, NULL, NULL, NULL);
	ing_health_free(srv->health);
	srv->health = NULL;
	ing_relay_free(srv->relay);
	/* after the relay: no more ends; settles what is left and flushes
	 * the spool */
	ing_billing_stop(srv->billing);
	ing_auth_free(srv->auth);
	ing_router_free(srv->router);
	free(srv);
}
