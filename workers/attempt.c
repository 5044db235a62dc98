/*
 * attempt.c -- one upstream attempt of a relay: curl easy setup and
 * callbacks, failover, and what a finished transfer becomes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/limits.h"
#include "common/log.h"
#include "workers/cloop.h"
#include "workers/curlfn.h"
#include "workers/h1.h"
#include "workers/xfer_impl.h"

/* curl's receive buffer for a stream (CURLOPT_BUFFERSIZE; curl's default
 * is 16 KiB, its least 1 KiB).  Held by every open stream for its whole
 * life.  1 KiB saved ~3 KiB per stream but a burst of events (4.7 KB)
 * then cost 41 syscalls per stream instead of 28: each smaller read
 * reaches the client as a write of its own (bench/results/
 * 2026-11-26-vm-mem-before-after.md).  Other answers keep the default:
 * they are short-lived. */
#define STREAM_RECV_BUFFER 4096L

/* ---- busy HTTP/1.x upstreams ---------------------------------------------
 * Before it opens a connection curl looks for one to reuse in every
 * connection it holds to the host (ConnectionExists in curl 7.88): with
 * thousands of streams open to one HTTP/1.1 upstream each new transfer
 * walked thousands of busy connections, and holding 10,000 streams spent
 * most of the thread there.  When the last transfer to a channel found no
 * connection to reuse (CURLINFO_NUM_CONNECTS > 0) on HTTP/1.x and many
 * run, new transfers skip the search (CURLOPT_FRESH_CONNECT; the
 * connection still goes to the cache afterwards); every FRESH_PROBE_EVERY
 * one searches again, so idle connections are found once streams end.
 * HTTP/2 upstreams multiplex (one connection serves many): never busy. */
#define HOSTS_MAX 64u         /* channels tracked per thread */
#define FRESH_MIN_LIVE 128u   /* transfers running to the channel */
#define FRESH_PROBE_EVERY 32u /* one start in this many searches */

static struct wrk_host *
host_for(wrk_env *env, int64_t channel_id)
{
	struct wrk_host *h;

	if (env->_hosts == NULL) {
		env->_hosts = calloc(HOSTS_MAX, sizeof *env->_hosts);
		if (env->_hosts == NULL)
			return NULL;
	}
	for (size_t i = 0; i < HOSTS_MAX; i++)
		if (env->_hosts[i].channel_id == channel_id)
			return &env->_hosts[i];
	for (size_t i = 0; i < HOSTS_MAX; i++) {
		h = &env->_hosts[i];
		if (h->live == 0 && !h->busy) { /* unused, or forgettable */
			memset(h, 0, sizeof *h);
			h->channel_id = channel_id;
			return h;
		}
	}
	return NULL; /* every slot in use: no shortcut */
}

/* Whether the next transfer to h should skip curl's connection search. */
static int
start_fresh(struct wrk_host *h)
{
	if (h == NULL || !h->busy || h->live < FRESH_MIN_LIVE)
		return 0;
	return ++h->starts % FRESH_PROBE_EVERY != 0;
}

/* At the first byte of a transfer that searched: note what it found. */
static void
note_search(wrk_xfer *x)
{
	long conns = 0, ver = 0;

	if (x->host == NULL || x->fresh || x->easy == NULL)
		return;
	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &ver);
	x->host->busy = conns > 0
	    && (ver == CURL_HTTP_VERSION_1_0 || ver == CURL_HTTP_VERSION_1_1);
}

/* ---- curl callbacks ----------------------------------------------------- */

static size_t
header_cb(char *p, size_t size, size_t nitems, void *arg)
{
	wrk_xfer *x = arg;
	size_t n = size * nitems;

	(void)p;
	x->header_bytes += n;
	if (x->header_bytes > PF_UPSTREAM_HEADER_MAX) {
		x->abort_why = ABORT_HEADERS_BIG;
		return 0;
	}
	return n;
}

/* Whether the transfer sent all of the upstream body. */
static int
upload_done(wrk_xfer *x)
{
	curl_off_t sent = 0;

	if (x->h1 != NULL)
		return wrk_h1_sent(x->h1);
	return x->easy != NULL
	    && curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &sent)
	    == CURLE_OK
	    && sent >= (curl_off_t)x->body.len;
}

/* release_upload frees the rewritten upstream body of a stream once it
 * was sent: a stream holds its transfer for minutes and a body (the
 * whole conversation) is often tens of KiB, while no retry can follow a
 * 2xx stream (a new attempt builds its body again). */
static void
release_upload(wrk_xfer *x)
{
	if (x->body._owned == NULL || !upload_done(x))
		return;
	wrk_body_fini(&x->body);
}

/* A stream's request body at least this long goes back to the allocator
 * at the stream's 2xx head (drop_request_body). */
#define BODY_DROP_MIN 4096u

/* drop_request_body gives a stream's request body back once curl sent
 * it.  The decoded relay.request kept the body (the whole conversation,
 * often tens of KiB) for the stream's life, but after a 2xx stream head
 * no attempt follows; the body was needed only for the prompt estimate
 * of an answer without reported usage, which is taken now.  The rest of
 * the request (id, candidates, headers) is cloned without it, so nothing
 * keeps pointing into the old message.  Best effort: on any failure the
 * body stays. */
static void
drop_request_body(wrk_xfer *x)
{
	const pf_relay_request *rq = x->rq;
	pf_msg lean, *copy = NULL;

	if (rq->body.len < BODY_DROP_MIN)
		return;
	if (x->body._owned == NULL && x->body.len > 0 && !upload_done(x))
		return; /* sent straight from it, and not all yet */
	lean = *x->msg;
	lean.u.relay_request.body = (pf_bytes) { (const uint8_t *)"", 0 };
	if (pf_msg_clone(&lean, &copy) == PF_OK) {
		x->usage.prompt_estimate
		    = pf_tokest_prompt_body(rq->body.ptr, rq->body.len);
		x->usage.has_prompt_estimate = 1;
		if (x->body._owned == NULL) {
			x->body.ptr = NULL;
			x->body.len = 0;
		}
		pf_msg_free(x->msg);
		x->msg = copy;
		x->rq = &copy->u.relay_request;
	}
}

/* At the answer's first body byte (or its end): status and content
 * type decide how the body is handled. */
static void
decide_mode(wrk_xfer *x)
{
	const char *ct = NULL;

	if (x->h1 != NULL) {
		const wrk_h1resp *r = wrk_h1_resp(x->h1);

		x->status = r->status;
		ct = r->has_ctype ? r->ctype : NULL;
	} else {
		char *cct = NULL;

		note_search(x);
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &cct);
		ct = cct;
	}
	x->ctype[0] = 0;
	if (ct != NULL && strlen(ct) < sizeof x->ctype)
		memcpy(x->ctype, ct, strlen(ct) + 1);
	if (x->status >= 200 && x->status < 300) {
		if (x->rq->stream && ct != NULL
		    && strcasestr(ct, "text/event-stream") != NULL) {
			x->mode = MODE_SSE;
			release_upload(x);
			drop_request_body(x);
		} else {
			x->mode = MODE_BODY;
		}
	} else {
		x->mode = MODE_ERRBODY;
	}
}

/* A translated event (Anthropic client on an OpenAI channel). */
static pf_err
conv_emit_cb(void *arg, const uint8_t *ev, size_t len)
{
	wrk_xfer *x = arg;
	pf_err err;

	if (!x->head_sent) {
		snprintf(x->ctype, sizeof x->ctype, "text/event-stream");
		err = wrk_xfer_send_head(x);
		if (err != PF_OK)
			return err;
	}
	return wrk_xfer_send_data(x, ev, len);
}

static pf_err
event_cb(void *arg, const uint8_t *ev, size_t len)
{
	wrk_xfer *x = arg;
	int drop = 0;
	pf_err err;

	x->prov->stream_event(
	    x->rq, &x->usage, &x->env->scratch, ev, len, &drop);
	if (x->conv) {
		wrk_buf *d = &x->env->scratch;

		if (wrk_sse_data(ev, len, d) <= 0)
			return PF_OK;
		return wrk_conv_stream_event(
		    x->cv, (const char *)d->data, d->len, conv_emit_cb, x);
	}
	if (drop)
		return PF_OK;
	if (!x->head_sent) {
		err = wrk_xfer_send_head(x);
		if (err != PF_OK)
			return err;
	}
	return wrk_xfer_send_data(x, ev, len);
}

static enum abort_why
abort_for(pf_err err)
{
	switch (err) {
	case PF_ETOOBIG:
		return ABORT_EVENT_BIG;
	case PF_ENOMEM:
		return ABORT_NOMEM;
	default:
		return ABORT_REPLY;
	}
}

/* body_in takes n answer bytes (a wrk_h1_body_cb): 1 taken, 0 paused
 * (none taken), -1 abort (x->abort_why says why). */
static int
body_in(void *arg, const uint8_t *p, size_t n)
{
	wrk_xfer *x = arg;
	size_t room;
	pf_err err;

	if (x->q.n > 0 || (x->mode == MODE_SSE && wrk_xfer_starved(x))) {
		/* the ingress (or its client) is behind: stop reading
		 * upstream until the queue drains or credit comes */
		x->paused = 1;
		return 0;
	}
	x->t_last = wrk_now_ms();
	if (!x->got_byte) {
		x->got_byte = 1;
		decide_mode(x);
		/* the idle deadline may come before the first-byte one */
		wrk_xfer_scan_by(x->env, x->t_last + x->idle_ms);
	}
	switch (x->mode) {
	case MODE_SSE:
		err = wrk_sse_feed(&x->sse, p, n, event_cb, x);
		if (err != PF_OK) {
			x->abort_why = abort_for(err);
			return -1;
		}
		return 1;
	case MODE_BODY:
		err = wrk_buf_append(&x->resp, p, n, PF_RESPONSE_MAX);
		if (err != PF_OK) {
			x->abort_why
			    = err == PF_ETOOBIG ? ABORT_BODY_BIG : ABORT_NOMEM;
			return -1;
		}
		return 1;
	default:
		room = PF_ERROR_BODY_MAX - x->resp.len;
		if (n < room)
			room = n;
		if (wrk_buf_append(&x->resp, p, room, PF_ERROR_BODY_MAX)
		    != PF_OK) {
			x->abort_why = ABORT_NOMEM;
			return -1;
		}
		return 1;
	}
}

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	size_t n = size * nmemb;

	switch (body_in(arg, (const uint8_t *)p, n)) {
	case 1:
		return n;
	case 0:
		return CURL_WRITEFUNC_PAUSE;
	default:
		return 0;
	}
}

/* ---- attempts ------------------------------------------------------------ */

pf_err
wrk_env_curl(wrk_env *env)
{
	CURLM *m;

	if (env->multi != NULL)
		return PF_OK;
	/* never unloaded: other threads' transfers may still run when one
	 * worker stops, and the process ends soon after */
	if (wrk_curl_load() != PF_OK)
		return PF_EIO;
	m = curl_multi_init();
	if (m == NULL)
		return PF_ENOMEM;
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	if (env->loop != NULL)
		wrk_cloop_attach(env->loop, m);
	env->multi = m;
	return PF_OK;
}

/* easy_get returns a handle for a transfer (stream: with the stream
 * receive buffer): a reset one from the pool, or a new one.  Reuse skips
 * curl's per-handle allocations; the pools are per kind because curl
 * 7.88 keeps a handle's receive buffer across curl_easy_reset and sizes
 * it only when it allocates it. */
static CURL *
easy_get(wrk_env *env, int stream)
{
	size_t *n = &env->_n_easy[stream != 0];

	if (*n > 0)
		return env->_easy[stream != 0][--*n];
	return curl_easy_init();
}

/* easy_put takes back a handle no multi holds: reset into the pool, or
 * freed when the pool is full. */
static void
easy_put(wrk_env *env, CURL *easy, int stream)
{
	size_t *n = &env->_n_easy[stream != 0];

	if (*n >= WRK_EASY_POOL) {
		curl_easy_cleanup(easy);
		return;
	}
	curl_easy_reset(easy);
	env->_easy[stream != 0][(*n)++] = easy;
}

void
wrk_easy_pool_fini(wrk_env *env)
{
	for (int k = 0; k < 2; k++) {
		while (env->_n_easy[k] > 0)
			curl_easy_cleanup(env->_easy[k][--env->_n_easy[k]]);
	}
}

/* Release the current transfer, if any. */
void
wrk_xfer_attempt_end(wrk_xfer *x)
{
	if (x->h1 != NULL) {
		wrk_h1_release(x->h1);
		x->h1 = NULL;
	}
	if (x->easy != NULL) {
		curl_multi_remove_handle(x->env->multi, x->easy);
		easy_put(x->env, x->easy, x->easy_stream);
		x->easy = NULL;
	}
	if (x->host != NULL) {
		x->host->live--;
		x->host = NULL;
	}
	wrk_slist_free_all(x->headers);
	x->headers = NULL;
	wrk_body_fini(&x->body);
	wrk_sse_fini(&x->sse);
}

static int
text_safe(pf_bytes v)
{
	for (size_t i = 0; i < v.len; i++)
		if (v.ptr[i] <= 0x20 || v.ptr[i] == 0x7f)
			return 0;
	return 1;
}

/* An HTTP method is upper-case letters only. */
static int
method_ok(pf_bytes m)
{
	for (size_t i = 0; i < m.len; i++)
		if (m.ptr[i] < 'A' || m.ptr[i] > 'Z')
			return 0;
	return 1;
}

static uint32_t
pick(uint32_t channel_value, uint32_t dflt)
{
	return channel_value != 0 ? channel_value : dflt;
}

#define SETOPT(opt, val)                                                       \
	do {                                                                   \
		if (curl_easy_setopt(x->easy, opt, val) != CURLE_OK)           \
			goto fail;                                             \
	} while (0)

/* curl's socket, opened here to keep socket()'s errno: curl 7.88 reports
 * a socket() that found no descriptor as "Couldn't connect" with OS
 * errno 0, the same as an upstream that refused (measured). */
static curl_socket_t
open_socket_cb(
    void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	wrk_xfer *x = clientp;
	curl_socket_t fd;

	(void)purpose;
	fd = socket(address->family, address->socktype | SOCK_CLOEXEC,
	    address->protocol);
	if (fd < 0)
		x->sock_errno = errno;
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* Start candidate i.  Returns a short reason on failure (nothing left
 * running), NULL on success. */
static const char *
attempt_start(wrk_xfer *x, uint32_t i)
{
	const pf_relay_request *rq = x->rq;
	const pf_candidate *c = &rq->candidates[i];
	const pf_config *cfg = x->env->cfg;
	char url[PF_URL_MAX + 1], proxy[PF_URL_MAX + 1], method[16];
	size_t blen = c->base_url.len;
	const char *why = "cannot start transfer";
	pf_bytes path = rq->path;
	struct wrk_host *host;
	wrk_h1_target tgt;
	pf_err err;

	x->cand = i;
	x->prov = wrk_provider_for(c->type);
	if (x->prov == NULL)
		return "unsupported channel type";
	x->conv
	    = rq->client_api == PF_API_ANTHROPIC && c->type == PF_API_OPENAI;
	if (x->conv) {
		if (path.len != 9 || memcmp(path.ptr, "/messages", 9) != 0)
			return "no conversion for this path";
		path.ptr = (const uint8_t *)"/chat/completions";
		path.len = 17;
	} else if (rq->client_api != 0 && rq->client_api != c->type) {
		return "no conversion for this channel type";
	}
	while (blen > 0 && c->base_url.ptr[blen - 1] == '/')
		blen--;
	if (blen == 0 || blen + path.len > PF_URL_MAX || !text_safe(c->base_url)
	    || !text_safe(path) || c->proxy.len > PF_URL_MAX
	    || !text_safe(c->proxy))
		return "bad channel url";
	memcpy(url, c->base_url.ptr, blen);
	memcpy(url + blen, path.ptr, path.len);
	url[blen + path.len] = 0;
	memcpy(proxy, c->proxy.ptr, c->proxy.len);
	proxy[c->proxy.len] = 0;
	if (rq->method.len >= sizeof method || !method_ok(rq->method))
		return "bad method";
	memcpy(method, rq->method.ptr, rq->method.len);
	method[rq->method.len] = 0;

	x->mode = MODE_NONE;
	x->abort_why = ABORT_NONE;
	x->sock_errno = 0;
	x->status = 0;
	x->header_bytes = 0;
	x->got_byte = 0;
	x->paused = 0;
	x->ctype[0] = 0;
	x->resp.len = 0;
	memset(&x->usage, 0, sizeof x->usage);
	wrk_sse_init(&x->sse, PF_SSE_EVENT_MAX);
	x->body._owned = NULL;
	x->body.ptr = NULL;
	x->body.len = 0;

	if (x->prov->headers(rq, c, &x->headers) != PF_OK) {
		why = "bad channel key";
		goto fail;
	}
	if (wrk_client_headers(rq, c, &x->headers) != PF_OK)
		goto fail;
	if (x->conv) {
		if (x->cv == NULL)
			x->cv = malloc(sizeof *x->cv);
		if (x->cv == NULL)
			goto fail;
		wrk_conv_init(
		    x->cv, pf_tokest_prompt_body(rq->body.ptr, rq->body.len));
	}
	if (x->conv)
		err = wrk_conv_request(rq->body.ptr, rq->body.len,
		    (const char *)c->upstream_model.ptr, c->upstream_model.len,
		    &x->body);
	else
		err = x->prov->body(rq, c, &x->body);
	if (err != PF_OK) {
		why = "cannot build upstream body";
		goto fail;
	}
	if (x->env->h1 != NULL && cfg->upstream_own_client && proxy[0] == 0
	    && wrk_h1_parse_url(url, &tgt) == 0) {
		wrk_h1_req req;

		memset(&req, 0, sizeof req);
		req.method = method[0] != 0 ? method : "POST";
		req.headers = x->headers;
		req.body = x->body.ptr;
		req.body_len = x->body.len;
		req.send_length = strcmp(req.method, "GET") != 0;
		if (wrk_h1_start(x->env->h1, &tgt, &req, body_in, x, &x->h1)
		    != PF_OK)
			goto fail;
		goto started;
	}
	if (wrk_env_curl(x->env) != PF_OK)
		goto fail;
	x->easy_stream = rq->stream != 0;
	x->easy = easy_get(x->env, x->easy_stream);
	if (x->easy == NULL)
		goto fail;
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_PROXY, proxy); /* "" = none, *_proxy ignored */
	SETOPT(CURLOPT_PRIVATE, (void *)x);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
	SETOPT(CURLOPT_OPENSOCKETDATA, (void *)x);
	if (x->env->loop != NULL) {
		SETOPT(CURLOPT_SOCKOPTFUNCTION, wrk_cloop_sockopt_cb);
		SETOPT(CURLOPT_SOCKOPTDATA, x->env->loop);
	}
	/* no CURLOPT_PIPEWAIT: with it, transfers to a host whose first
	 * connection has not yet shown whether it multiplexes wait in
	 * curl's pending queue, and against an HTTP/1.1 upstream curl
	 * releases them one at a time, as other transfers finish: a burst
	 * of streams ran one after another instead of side by side (a
	 * client's hang-up seemed not to cancel them).  HTTP/2 is still
	 * multiplexed once a connection to the host is known to do it. */
	SETOPT(CURLOPT_USERAGENT, "planktonfly");
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
	    (long)pick(c->connect_timeout_ms, cfg->connect_timeout_ms));
	SETOPT(CURLOPT_HTTPHEADER, x->headers);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, (void *)x);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, (void *)x);
	if (rq->stream)
		SETOPT(CURLOPT_BUFFERSIZE, STREAM_RECV_BUFFER);
	if (rq->method.len == 3 && memcmp(rq->method.ptr, "GET", 3) == 0) {
		SETOPT(CURLOPT_HTTPGET, 1L);
	} else {
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
		SETOPT(CURLOPT_POSTFIELDS,
		    x->body.len > 0 ? (const char *)x->body.ptr : "");
		/* DELETE /responses/{id} and the like */
		if (method[0] != 0 && strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
	host = host_for(x->env, c->channel_id);
	x->fresh = (uint8_t)start_fresh(host);
	if (x->fresh)
		SETOPT(CURLOPT_FRESH_CONNECT, 1L);
	if (curl_multi_add_handle(x->env->multi, x->easy) != CURLM_OK)
		goto fail;
	if (host != NULL) {
		host->live++;
		x->host = host;
	}
started:
	x->attempts++;
	x->att_open = 1;
	x->t_attempt = wrk_now_ms();
	x->t_last = x->t_attempt;
	x->connect_ms = pick(c->connect_timeout_ms, cfg->connect_timeout_ms);
	x->first_byte_ms
	    = pick(c->first_byte_timeout_ms, cfg->first_byte_timeout_ms);
	x->idle_ms = pick(c->idle_timeout_ms, cfg->idle_timeout_ms);
	x->total_ms = pick(c->total_timeout_ms, cfg->total_timeout_ms);
	if (x->h1 != NULL)
		wrk_xfer_scan_by(x->env, x->t_attempt + x->connect_ms);
	wrk_xfer_scan_by(x->env, x->t_attempt + x->first_byte_ms);
	wrk_xfer_scan_by(x->env, x->t_attempt + x->total_ms);
	wrk_xfer_scan_by(x->env, x->deadline);
	return NULL;
fail:
	if (x->easy != NULL) {
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	wrk_xfer_attempt_end(x);
	return why;
}

/* Every attempt made failed on our side (none reached an upstream). */
static int
all_local(const wrk_xfer *x)
{
	for (uint32_t k = 0; k < x->n_att; k++) {
		if (x->att[k].outcome != PF_ATTEMPT_LOCAL)
			return 0;
	}
	return x->n_att > 0;
}

/* Start candidates from i on until one runs; end the relay when none
 * is left. */
void
wrk_xfer_try_from(wrk_xfer *x, uint32_t i)
{
	const char *why;

	for (; i < x->rq->n_candidates; i++) {
		if (wrk_now_ms() >= x->deadline) {
			x->last_timeout = 1;
			break;
		}
		why = attempt_start(x, i);
		if (why == NULL)
			return;
		x->att_open = 1;
		wrk_xfer_record(x, PF_ATTEMPT_LOCAL, 0);
		pf_warn("PF-WRK-FAILOVER",
		    "req=%s channel=%" PRId64 " attempt=%u reason=\"%s\"",
		    x->idhex, x->rq->candidates[i].channel_id, i + 1, why);
	}
	pf_warn("PF-WRK-ALL-FAILED", "req=%s candidates=%u last_status=%ld%s",
	    x->idhex, x->rq->n_candidates, x->last_status,
	    x->last_timeout ? " timeout=1" : "");
	x->status = x->last_status;
	if (!x->last_timeout && all_local(x)) {
		/* no upstream said anything: ours to report, as 503 (retry
		 * later), not 502 (an upstream failed) */
		wrk_xfer_finish(x, PF_END_NO_CHANNEL, 0,
		    "no upstream could be tried (out of descriptors or memory, "
		    "or the request could not be prepared); retry later",
		    0);
		return;
	}
	wrk_xfer_finish(x,
	    x->last_timeout ? PF_END_TIMEOUT : PF_END_UPSTREAM_ERROR,
	    x->last_status,
	    x->last_timeout ? "upstream timed out"
	                    : "all upstream channels failed",
	    0);
}

/* The current attempt failed (transfer already released). */
void
wrk_xfer_attempt_failed(
    wrk_xfer *x, pf_attempt_outcome o, long status, const char *why)
{
	int timeout = o == PF_ATTEMPT_TIMEOUT;

	wrk_xfer_record(x, o, status);
	x->last_status = status;
	x->last_timeout = (uint8_t)timeout;
	if (x->head_sent) {
		pf_warn("PF-WRK-STREAM-CUT",
		    "req=%s channel=%" PRId64 " sent=%u reason=\"%s\"",
		    x->idhex, wrk_xfer_channel(x), x->seq, why);
		wrk_xfer_finish(x,
		    timeout ? PF_END_TIMEOUT : PF_END_UPSTREAM_ERROR, status,
		    timeout ? "upstream timed out" : "upstream stream broke",
		    1);
		return;
	}
	pf_warn("PF-WRK-FAILOVER",
	    "req=%s channel=%" PRId64 " attempt=%u status=%ld reason=\"%s\"",
	    x->idhex, wrk_xfer_channel(x), x->attempts, status, why);
	wrk_xfer_try_from(x, x->cand + 1);
}

const char *
wrk_xfer_abort_text(enum abort_why why)
{
	switch (why) {
	case ABORT_HEADERS_BIG:
		return "upstream headers too large";
	case ABORT_BODY_BIG:
		return "upstream response too large";
	case ABORT_EVENT_BIG:
		return "upstream event too large";
	case ABORT_NOMEM:
		return "out of memory";
	default:
		return "reply socket failed";
	}
}

/* Overwrite every copy of needle (if not too short to mean anything) in
 * the collected body. */
static void
scrub(wrk_xfer *x, const uint8_t *needle, size_t len)
{
	uint8_t *p;

	if (len < 4)
		return;
	while (x->resp.len >= len) {
		p = memmem(x->resp.data, x->resp.len, needle, len);
		if (p == NULL)
			break;
		memset(p, '*', len);
	}
}

/* The authority (host[:port], with any user:pass@) of a URL. */
static pf_bytes
authority(pf_bytes url)
{
	const uint8_t *p = memmem(url.ptr, url.len, "://", 3), *end;
	pf_bytes a = { NULL, 0 };

	if (p == NULL)
		return a;
	p += 3;
	end = memchr(p, '/', url.len - (size_t)(p - url.ptr));
	a.ptr = p;
	a.len
	    = end != NULL ? (size_t)(end - p) : url.len - (size_t)(p - url.ptr);
	return a;
}

/* An error body goes to the client: no channel key, and no upstream or
 * proxy address (internal hosts, credentials in proxy URLs). */
static void
scrub_secrets(wrk_xfer *x)
{
	const pf_candidate *c = wrk_xfer_candidate(x);
	pf_bytes base, host;

	if (c == NULL)
		return;
	scrub(x, c->key.ptr, c->key.len);
	base = c->base_url;
	while (base.len > 0 && base.ptr[base.len - 1] == '/')
		base.len--;
	scrub(x, base.ptr, base.len);
	host = authority(c->base_url);
	scrub(x, host.ptr, host.len);
	scrub(x, c->proxy.ptr, c->proxy.len);
	host = authority(c->proxy);
	scrub(x, host.ptr, host.len);
}

/* Replace the collected body by its Anthropic form (the answer, or an
 * error object); left as it is when it cannot be translated. */
static void
convert_body(wrk_xfer *x, int error)
{
	wrk_buf out;
	pf_err err;

	wrk_buf_init(&out);
	err = error ? wrk_conv_error(x->status, x->resp.data, x->resp.len, &out)
	            : wrk_conv_response(x->resp.data, x->resp.len, &out);
	if (err == PF_OK) {
		wrk_buf_fini(&x->resp);
		x->resp = out;
		snprintf(x->ctype, sizeof x->ctype, "application/json");
		return;
	}
	wrk_buf_fini(&out);
}

/* local_failure says whether a failed transfer failed on our side (out
 * of descriptors or memory: the upstream was never reached), which must
 * not count against the channel's health. */
static int
local_failure(wrk_xfer *x, CURLcode res)
{
	long os_errno = 0;

	if (res == CURLE_OUT_OF_MEMORY || res == CURLE_FAILED_INIT)
		return 1;
	if (res != CURLE_COULDNT_CONNECT || x->easy == NULL
	    || curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno)
	        != CURLE_OK)
		return 0;
	if (os_errno == 0) /* curl 7.88 leaves it 0 when socket() failed */
		os_errno = x->sock_errno;
	return os_errno == EMFILE || os_errno == ENFILE || os_errno == ENOBUFS
	    || os_errno == ENOMEM || os_errno == EADDRNOTAVAIL;
}

/* An error body that is not a JSON object with "error" (an HTML page
 * from a proxy, nothing at all) is replaced by one in the client's
 * dialect, so clients always get the error shape they parse. */
static void
ensure_error_json(wrk_xfer *x)
{
	wrk_buf out;
	pf_err err;

	if (wrk_error_well_formed(x->resp.data, x->resp.len))
		return;
	wrk_buf_init(&out);
	if (x->rq->client_api == PF_API_ANTHROPIC)
		err = wrk_conv_error(x->status, NULL, 0, &out);
	else
		err = wrk_openai_error(x->status, &out);
	if (err != PF_OK) {
		wrk_buf_fini(&out);
		return;
	}
	wrk_buf_fini(&x->resp);
	x->resp = out;
	snprintf(x->ctype, sizeof x->ctype, "application/json");
}

/* How a transfer that failed after it began counts against the
 * channel. */
static pf_attempt_outcome
failed_outcome(const wrk_xfer *x)
{
	if (x->abort_why == ABORT_NOMEM)
		return PF_ATTEMPT_LOCAL;
	return x->status == 0 ? PF_ATTEMPT_CONNECT : PF_ATTEMPT_BROKEN;
}

/* The current transfer ended: failed (counted as o, why the reason
 * unless a callback aborted it), or complete. */
static void
attempt_over(wrk_xfer *x, int failed, pf_attempt_outcome o, const char *why)
{
	pf_err err;

	if (x->abort_why == ABORT_REPLY) {
		wrk_xfer_attempt_end(x);
		pf_warn("PF-WRK-REPLY-LOST", "req=%s what=data", x->idhex);
		wrk_xfer_set_phase(x, PHASE_DONE);
		return;
	}
	if (failed) {
		if (x->abort_why != ABORT_NONE)
			why = wrk_xfer_abort_text(x->abort_why);
		if (x->abort_why == ABORT_BODY_BIG) {
			wrk_xfer_attempt_end(x);
			x->last_status = x->status;
			wrk_xfer_record(x, PF_ATTEMPT_OK, x->status);
			wrk_xfer_finish(
			    x, PF_END_UPSTREAM_ERROR, x->status, why, 0);
			return;
		}
		wrk_xfer_attempt_end(x);
		wrk_xfer_attempt_failed(x, o, x->status, why);
		return;
	}
	if (!x->got_byte)
		decide_mode(x);
	if (x->mode == MODE_SSE) {
		err = wrk_sse_finish(&x->sse, event_cb, x);
		if (err == PF_OK && x->conv)
			err = wrk_conv_stream_end(x->cv, conv_emit_cb, x);
		wrk_xfer_attempt_end(x);
		if (err != PF_OK) {
			wrk_xfer_attempt_failed(x, PF_ATTEMPT_BROKEN, x->status,
			    "bad end of stream");
			return;
		}
		if (!x->head_sent && wrk_xfer_send_head(x) != PF_OK) {
			wrk_xfer_set_phase(x, PHASE_DONE);
			return;
		}
		wrk_xfer_record(x, PF_ATTEMPT_OK, x->status);
		wrk_xfer_finish(x, PF_END_DONE, x->status, NULL, 1);
		return;
	}
	wrk_xfer_attempt_end(x);
	if (x->mode == MODE_BODY) {
		x->prov->response(x->rq, &x->usage, x->resp.data, x->resp.len);
		if (x->conv)
			convert_body(x, 0);
		if (wrk_xfer_send_head(x) != PF_OK
		    || (x->resp.len > 0
		        && wrk_xfer_send_data(x, x->resp.data, x->resp.len)
		            != PF_OK)) {
			wrk_xfer_set_phase(x, PHASE_DONE);
			return;
		}
		wrk_xfer_record(x, PF_ATTEMPT_OK, x->status);
		wrk_xfer_finish(x, PF_END_DONE, x->status, NULL, 1);
		return;
	}
	/* 401/403: the channel's key is bad or barred, not the client's
	 * fault: try another channel */
	if (x->status == 429 || x->status >= 500 || x->status < 200
	    || x->status == 401 || x->status == 403) {
		wrk_xfer_attempt_failed(
		    x, PF_ATTEMPT_STATUS, x->status, "upstream status");
		return;
	}
	/* a non-retryable error answer: pass it through, minus the key */
	pf_info("PF-WRK-UPSTREAM-ERROR",
	    "req=%s channel=%" PRId64 " status=%ld", x->idhex,
	    wrk_xfer_channel(x), x->status);
	scrub_secrets(x);
	if (x->conv)
		convert_body(x, 1);
	else
		ensure_error_json(x);
	x->last_status = x->status;
	wrk_xfer_record(x, PF_ATTEMPT_OK, x->status);
	if (wrk_xfer_send_head(x) != PF_OK
	    || (x->resp.len > 0
	        && wrk_xfer_send_data(x, x->resp.data, x->resp.len) != PF_OK)) {
		wrk_xfer_set_phase(x, PHASE_DONE);
		return;
	}
	wrk_xfer_finish(
	    x, PF_END_UPSTREAM_ERROR, x->status, "upstream error", 0);
}

/* curl finished the current transfer with result res. */
void
wrk_xfer_attempt_done(wrk_xfer *x, CURLcode res)
{
	if (x->easy != NULL)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (res == CURLE_OK) {
		attempt_over(x, 0, PF_ATTEMPT_OK, NULL);
		return;
	}
	attempt_over(x, 1,
	    local_failure(x, res)                 ? PF_ATTEMPT_LOCAL
	        : res == CURLE_OPERATION_TIMEDOUT ? PF_ATTEMPT_TIMEOUT
	                                          : failed_outcome(x),
	    curl_easy_strerror(res));
}

void
wrk_xfer_h1_reap(wrk_env *env)
{
	wrk_h1_conn *k;
	wrk_h1_result res;
	void *arg;
	int e;

	if (env->h1 == NULL)
		return;
	while ((k = wrk_h1_take_done(env->h1, &arg, &res, &e)) != NULL) {
		wrk_xfer *x = arg;
		const wrk_h1resp *r = wrk_h1_resp(k);

		if (wrk_h1resp_has_head(r))
			x->status = r->status;
		switch (res) {
		case WRK_H1_OK:
			attempt_over(x, 0, PF_ATTEMPT_OK, NULL);
			break;
		case WRK_H1_CONNECT:
			attempt_over(x, 1, PF_ATTEMPT_CONNECT,
			    e != 0 ? strerrordesc_np(e)
			           : "could not connect to upstream");
			break;
		case WRK_H1_LOCAL:
			attempt_over(x, 1, PF_ATTEMPT_LOCAL,
			    e != 0 ? strerrordesc_np(e) : "out of memory");
			break;
		case WRK_H1_TOO_BIG:
			if (x->abort_why == ABORT_NONE)
				x->abort_why = ABORT_HEADERS_BIG;
			attempt_over(x, 1, failed_outcome(x), NULL);
			break;
		case WRK_H1_BAD_REPLY:
			attempt_over(x, 1, failed_outcome(x),
			    "malformed upstream answer");
			break;
		default: /* ABORTED (abort_why says why), BROKEN */
			attempt_over(x, 1, failed_outcome(x),
			    e != 0 ? strerrordesc_np(e)
			           : "upstream connection ended early");
			break;
		}
	}
}

int
wrk_xfer_resume(wrk_xfer *x)
{
	if (x->h1 != NULL) {
		wrk_h1_resume(x->h1);
		return 0;
	}
	return curl_easy_pause(x->easy, CURLPAUSE_CONT) == CURLE_OK ? 0 : -1;
}
