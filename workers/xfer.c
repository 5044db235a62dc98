/*
 * xfer.c -- one relay: candidates, curl easy transfer, failover, replies.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "workers/convert.h"
#include "workers/provider.h"
#include "workers/sse.h"
#include "workers/xfer.h"

/* After its request deadline a relay still gets this long to hand its
 * last messages to a busy ingress before they are dropped. */
#define DRAIN_GRACE_MS 5000

enum phase {
	PHASE_ATTEMPT, /* an upstream transfer is running */
	PHASE_DRAIN,   /* relay.end queued, waiting for the socket */
	PHASE_DONE,    /* free at the next tick */
};

enum mode {
	MODE_NONE,    /* no body byte yet */
	MODE_SSE,     /* 2xx event stream: event by event */
	MODE_BODY,    /* 2xx other: collect, capped */
	MODE_ERRBODY, /* error status: keep the first bytes */
};

/* Why we aborted a transfer from a callback. */
enum abort_why {
	ABORT_NONE,
	ABORT_HEADERS_BIG,
	ABORT_BODY_BIG,
	ABORT_EVENT_BIG,
	ABORT_NOMEM,
	ABORT_REPLY, /* the ingress cannot be reached any more */
};

struct wrk_xfer {
	wrk_xfer *next, *prev;
	wrk_env *env;
	pf_msg *msg;
	const pf_relay_request *rq;
	char idhex[PF_ID_HEX_LEN + 1];
	wrk_outq q;
	enum phase phase;
	int64_t deadline; /* request deadline, monotonic ms */

	/* current attempt */
	uint32_t cand;
	uint32_t attempts;
	const wrk_provider *prov;
	CURL *easy;
	struct curl_slist *headers;
	wrk_body body;
	enum mode mode;
	enum abort_why abort_why;
	long status;
	size_t header_bytes;
	int64_t t_attempt, t_last;
	uint32_t first_byte_ms, idle_ms, total_ms;
	uint8_t got_byte, paused;
	char ctype[128];
	wrk_sse sse;
	wrk_buf resp;
	uint8_t conv; /* Anthropic client on an OpenAI channel */
	wrk_conv cv;

	/* whole relay */
	uint8_t head_sent;
	uint32_t seq;
	wrk_usage usage;
	long last_status;
	uint8_t last_timeout;
};

int64_t
wrk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
wrk_env_init(wrk_env *env, void *multi, const pf_config *cfg, wrk_replies *rs)
{
	memset(env, 0, sizeof *env);
	env->multi = multi;
	env->cfg = cfg;
	env->replies = rs;
	pf_buf_init(&env->enc);
	env->_next_scan = INT64_MAX;
	wrk_buf_init(&env->scratch);
}

static const pf_candidate *
cur_candidate(const wrk_xfer *x)
{
	if (x->cand < x->rq->n_candidates)
		return &x->rq->candidates[x->cand];
	return NULL;
}

static int64_t
cur_channel(const wrk_xfer *x)
{
	const pf_candidate *c = cur_candidate(x);

	return c != NULL ? c->channel_id : 0;
}

/* ---- scheduling ----------------------------------------------------------
 * wrk_env_tick walks every relay only when a deadline may have come
 * (env->_next_scan) or something needs the walk (env->_dirty: a queue
 * waiting for the ingress, a relay draining or done).  Deadlines only
 * move later as bytes arrive, so each change that can bring one earlier
 * calls scan_by. */

static void
scan_by(wrk_env *env, int64_t t)
{
	if (t < env->_next_scan)
		env->_next_scan = t;
}

static void
set_phase(wrk_xfer *x, enum phase p)
{
	x->phase = p;
	x->env->_dirty = 1;
}

/* ---- replies ---------------------------------------------------------- */

static pf_err
send_msg(wrk_xfer *x, const pf_msg *m)
{
	pf_err err = wrk_outq_send(&x->q, m, &x->env->enc);

	if (x->q.n > 0)
		x->env->_dirty = 1; /* waits for the socket: flush in ticks */
	return err;
}

static pf_err
send_head(wrk_xfer *x)
{
	pf_msg m;
	const char *ct = x->ctype[0] ? x->ctype : "application/json";

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_HEAD;
	memcpy(m.u.relay_head.id, x->rq->id, PF_ID_LEN);
	m.u.relay_head.status = (int32_t)x->status;
	m.u.relay_head.content_type.ptr = (const uint8_t *)ct;
	m.u.relay_head.content_type.len = strlen(ct);
	m.u.relay_head.channel_id = cur_channel(x);
	m.u.relay_head.attempts = x->attempts;
	x->head_sent = 1;
	return send_msg(x, &m);
}

static pf_err
send_data(wrk_xfer *x, const uint8_t *p, size_t n)
{
	pf_msg m;
	pf_err err;

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_DATA;
	memcpy(m.u.relay_data.id, x->rq->id, PF_ID_LEN);
	m.u.relay_data.seq = x->seq;
	m.u.relay_data.data.ptr = p;
	m.u.relay_data.data.len = n;
	err = send_msg(x, &m);
	if (err == PF_OK)
		x->seq++;
	return err;
}

/* Send relay.end and let the relay drain.  usage_too: report delivered
 * usage (found or estimated); otherwise zeros. */
static void
finish(wrk_xfer *x, pf_end_reason reason, long status, const char *error,
    int usage_too)
{
	pf_msg m;

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_END;
	memcpy(m.u.relay_end.id, x->rq->id, PF_ID_LEN);
	m.u.relay_end.seq = x->seq;
	m.u.relay_end.reason = (int32_t)reason;
	m.u.relay_end.upstream_status = (int32_t)status;
	m.u.relay_end.channel_id = cur_channel(x);
	if (usage_too)
		wrk_usage_result(&x->usage, x->rq->body.ptr, x->rq->body.len,
		    &m.u.relay_end.usage);
	/* never a NULL pointer, even for an empty field */
	m.u.relay_end.error.ptr = (const uint8_t *)(error ? error : "");
	m.u.relay_end.error.len = error ? strlen(error) : 0;
	if (send_msg(x, &m) != PF_OK) {
		pf_warn("PF-WRK-REPLY-LOST", "req=%s what=end", x->idhex);
		set_phase(x, PHASE_DONE);
		return;
	}
	set_phase(x, x->q.n > 0 ? PHASE_DRAIN : PHASE_DONE);
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

static void
decide_mode(wrk_xfer *x)
{
	char *ct = NULL;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
	x->ctype[0] = 0;
	if (ct != NULL && strlen(ct) < sizeof x->ctype)
		memcpy(x->ctype, ct, strlen(ct) + 1);
	if (x->status >= 200 && x->status < 300) {
		if (x->rq->stream && ct != NULL
		    && strcasestr(ct, "text/event-stream") != NULL)
			x->mode = MODE_SSE;
		else
			x->mode = MODE_BODY;
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
		err = send_head(x);
		if (err != PF_OK)
			return err;
	}
	return send_data(x, ev, len);
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
		    &x->cv, (const char *)d->data, d->len, conv_emit_cb, x);
	}
	if (drop)
		return PF_OK;
	if (!x->head_sent) {
		err = send_head(x);
		if (err != PF_OK)
			return err;
	}
	return send_data(x, ev, len);
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

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	wrk_xfer *x = arg;
	size_t n = size * nmemb, room;
	pf_err err;

	if (x->q.n > 0) {
		/* the ingress is behind: stop reading upstream */
		x->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	x->t_last = wrk_now_ms();
	if (!x->got_byte) {
		x->got_byte = 1;
		decide_mode(x);
		/* the idle deadline may come before the first-byte one */
		scan_by(x->env, x->t_last + x->idle_ms);
	}
	switch (x->mode) {
	case MODE_SSE:
		err = wrk_sse_feed(&x->sse, p, n, event_cb, x);
		if (err != PF_OK) {
			x->abort_why = abort_for(err);
			return 0;
		}
		return n;
	case MODE_BODY:
		err = wrk_buf_append(&x->resp, p, n, PF_RESPONSE_MAX);
		if (err != PF_OK) {
			x->abort_why
			    = err == PF_ETOOBIG ? ABORT_BODY_BIG : ABORT_NOMEM;
			return 0;
		}
		return n;
	default:
		room = PF_ERROR_BODY_MAX - x->resp.len;
		if (n < room)
			room = n;
		if (wrk_buf_append(&x->resp, p, room, PF_ERROR_BODY_MAX)
		    != PF_OK) {
			x->abort_why = ABORT_NOMEM;
			return 0;
		}
		return n;
	}
}

/* ---- attempts ------------------------------------------------------------ */

/* Release the current transfer, if any. */
static void
attempt_end(wrk_xfer *x)
{
	if (x->easy != NULL) {
		curl_multi_remove_handle(x->env->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	curl_slist_free_all(x->headers);
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
	wrk_conv_init(&x->cv);
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
	x->easy = curl_easy_init();
	if (x->easy == NULL)
		goto fail;
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_PROXY, proxy); /* "" = none, *_proxy ignored */
	SETOPT(CURLOPT_PRIVATE, (void *)x);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_PIPEWAIT, 1L);
	SETOPT(CURLOPT_USERAGENT, "planktonfly");
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
	    (long)pick(c->connect_timeout_ms, cfg->connect_timeout_ms));
	SETOPT(CURLOPT_HTTPHEADER, x->headers);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, (void *)x);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, (void *)x);
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
	if (curl_multi_add_handle(x->env->multi, x->easy) != CURLM_OK)
		goto fail;
	x->attempts++;
	x->t_attempt = wrk_now_ms();
	x->t_last = x->t_attempt;
	x->first_byte_ms
	    = pick(c->first_byte_timeout_ms, cfg->first_byte_timeout_ms);
	x->idle_ms = pick(c->idle_timeout_ms, cfg->idle_timeout_ms);
	x->total_ms = pick(c->total_timeout_ms, cfg->total_timeout_ms);
	scan_by(x->env, x->t_attempt + x->first_byte_ms);
	scan_by(x->env, x->t_attempt + x->total_ms);
	scan_by(x->env, x->deadline);
	return NULL;
fail:
	if (x->easy != NULL) {
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	attempt_end(x);
	return why;
}

/* Start candidates from i on until one runs; end the relay when none
 * is left. */
static void
try_from(wrk_xfer *x, uint32_t i)
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
		pf_warn("PF-WRK-FAILOVER",
		    "req=%s channel=%" PRId64 " attempt=%u reason=\"%s\"",
		    x->idhex, x->rq->candidates[i].channel_id, i + 1, why);
	}
	pf_warn("PF-WRK-ALL-FAILED", "req=%s candidates=%u last_status=%ld%s",
	    x->idhex, x->rq->n_candidates, x->last_status,
	    x->last_timeout ? " timeout=1" : "");
	x->status = x->last_status;
	finish(x, x->last_timeout ? PF_END_TIMEOUT : PF_END_UPSTREAM_ERROR,
	    x->last_status,
	    x->last_timeout ? "upstream timed out"
	                    : "all upstream channels failed",
	    0);
}

/* The current attempt failed (transfer already released). */
static void
attempt_failed(wrk_xfer *x, int timeout, long status, const char *why)
{
	x->last_status = status;
	x->last_timeout = (uint8_t)timeout;
	if (x->head_sent) {
		pf_warn("PF-WRK-STREAM-CUT",
		    "req=%s channel=%" PRId64 " sent=%u reason=\"%s\"",
		    x->idhex, cur_channel(x), x->seq, why);
		finish(x, timeout ? PF_END_TIMEOUT : PF_END_UPSTREAM_ERROR,
		    status,
		    timeout ? "upstream timed out" : "upstream stream broke",
		    1);
		return;
	}
	pf_warn("PF-WRK-FAILOVER",
	    "req=%s channel=%" PRId64 " attempt=%u status=%ld reason=\"%s\"",
	    x->idhex, cur_channel(x), x->attempts, status, why);
	try_from(x, x->cand + 1);
}

static const char *
abort_text(enum abort_why why)
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

/* Overwrite every copy of the channel key in an error body. */
static void
scrub_key(wrk_xfer *x)
{
	const pf_candidate *c = cur_candidate(x);
	uint8_t *p;

	if (c == NULL || c->key.len < 4)
		return;
	while (x->resp.len >= c->key.len) {
		p = memmem(x->resp.data, x->resp.len, c->key.ptr, c->key.len);
		if (p == NULL)
			break;
		memset(p, '*', c->key.len);
	}
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

/* curl finished the current transfer with result res. */
static void
attempt_done(wrk_xfer *x, CURLcode res)
{
	pf_err err;

	if (x->easy != NULL)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->abort_why == ABORT_REPLY) {
		attempt_end(x);
		pf_warn("PF-WRK-REPLY-LOST", "req=%s what=data", x->idhex);
		set_phase(x, PHASE_DONE);
		return;
	}
	if (res != CURLE_OK) {
		int timeout = res == CURLE_OPERATION_TIMEDOUT;
		const char *why = x->abort_why != ABORT_NONE
		    ? abort_text(x->abort_why)
		    : curl_easy_strerror(res);

		if (x->abort_why == ABORT_BODY_BIG) {
			attempt_end(x);
			x->last_status = x->status;
			finish(x, PF_END_UPSTREAM_ERROR, x->status, why, 0);
			return;
		}
		attempt_end(x);
		attempt_failed(x, timeout, x->status, why);
		return;
	}
	if (!x->got_byte)
		decide_mode(x);
	if (x->mode == MODE_SSE) {
		err = wrk_sse_finish(&x->sse, event_cb, x);
		if (err == PF_OK && x->conv)
			err = wrk_conv_stream_end(&x->cv, conv_emit_cb, x);
		attempt_end(x);
		if (err != PF_OK) {
			attempt_failed(x, 0, x->status, "bad end of stream");
			return;
		}
		if (!x->head_sent && send_head(x) != PF_OK) {
			set_phase(x, PHASE_DONE);
			return;
		}
		finish(x, PF_END_DONE, x->status, NULL, 1);
		return;
	}
	attempt_end(x);
	if (x->mode == MODE_BODY) {
		x->prov->response(x->rq, &x->usage, x->resp.data, x->resp.len);
		if (x->conv)
			convert_body(x, 0);
		if (send_head(x) != PF_OK
		    || (x->resp.len > 0
		        && send_data(x, x->resp.data, x->resp.len) != PF_OK)) {
			set_phase(x, PHASE_DONE);
			return;
		}
		finish(x, PF_END_DONE, x->status, NULL, 1);
		return;
	}
	if (x->status == 429 || x->status >= 500 || x->status < 200) {
		attempt_failed(x, 0, x->status, "upstream status");
		return;
	}
	/* a non-retryable error answer: pass it through, minus the key */
	pf_info("PF-WRK-UPSTREAM-ERROR",
	    "req=%s channel=%" PRId64 " status=%ld", x->idhex, cur_channel(x),
	    x->status);
	scrub_key(x);
	if (x->conv)
		convert_body(x, 1);
	x->last_status = x->status;
	if (send_head(x) != PF_OK
	    || (x->resp.len > 0
	        && send_data(x, x->resp.data, x->resp.len) != PF_OK)) {
		set_phase(x, PHASE_DONE);
		return;
	}
	finish(x, PF_END_UPSTREAM_ERROR, x->status, "upstream error", 0);
}

/* ---- relay lifecycle ------------------------------------------------------ */

static void
xfer_free(wrk_xfer *x)
{
	attempt_end(x);
	wrk_buf_fini(&x->resp);
	wrk_outq_close(&x->q);
	if (x->prev != NULL)
		x->prev->next = x->next;
	else if (x->env->_head == x)
		x->env->_head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	if (x->env->n_live > 0)
		x->env->n_live--;
	pf_msg_free(x->msg);
	free(x);
}

void
wrk_env_take(wrk_env *env, pf_msg *msg)
{
	const pf_relay_request *rq;
	wrk_xfer *x;
	int64_t now, left;
	pf_err err;

	if (msg->kind != PF_MSG_RELAY_REQUEST) {
		pf_debug(
		    "PF-WRK-IGNORED", "kind=%s", pf_msg_kind_name(msg->kind));
		pf_msg_free(msg);
		return;
	}
	rq = &msg->u.relay_request;
	x = calloc(1, sizeof *x);
	if (x == NULL) {
		pf_msg_free(msg);
		pf_error("PF-WRK-NOMEM", "what=relay");
		return;
	}
	x->env = env;
	x->msg = msg;
	x->rq = rq;
	wrk_buf_init(&x->resp);
	wrk_sse_init(&x->sse, PF_SSE_EVENT_MAX);
	pf_hex_encode(rq->id, PF_ID_LEN, x->idhex);
	err = wrk_outq_open(
	    env->replies, &x->q, rq->reply_addr.ptr, rq->reply_addr.len);
	if (err != PF_OK) {
		pf_warn("PF-WRK-REPLY-ADDR", "req=%s err=\"%s\"", x->idhex,
		    pf_strerror(err));
		pf_msg_free(msg);
		free(x);
		return;
	}
	x->next = env->_head;
	if (env->_head != NULL)
		env->_head->prev = x;
	env->_head = x;
	env->n_live++;

	now = wrk_now_ms();
	if (rq->deadline_ms > 0) {
		left = rq->deadline_ms - unix_ms();
		x->deadline = now + (left > 0 ? left : 0);
	} else {
		x->deadline = now + env->cfg->total_timeout_ms;
	}
	if (rq->n_candidates == 0) {
		finish(x, PF_END_NO_CHANNEL, 0, "no channel available", 0);
		return;
	}
	if (now >= x->deadline) {
		finish(x, PF_END_TIMEOUT, 0, "deadline passed before start", 0);
		return;
	}
	try_from(x, 0);
}

void
wrk_env_cancel(wrk_env *env, const uint8_t id[PF_ID_LEN])
{
	wrk_xfer *x;

	for (x = env->_head; x != NULL; x = x->next) {
		if (memcmp(x->rq->id, id, PF_ID_LEN) != 0)
			continue;
		if (x->phase != PHASE_ATTEMPT)
			return;
		attempt_end(x);
		pf_info("PF-WRK-CANCEL", "req=%s channel=%" PRId64 " sent=%u",
		    x->idhex, cur_channel(x), x->seq);
		finish(x, PF_END_CLIENT_GONE, x->status, "client gone",
		    x->head_sent);
		return;
	}
}

void
wrk_env_reap(wrk_env *env)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(env->multi, &left)) != NULL) {
		CURL *easy = m->easy_handle;
		CURLcode res = m->data.result;
		char *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		if (priv != NULL)
			attempt_done((wrk_xfer *)(void *)priv, res);
	}
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Returns the relay's next deadline (monotonic ms). */
static int64_t
xfer_tick(wrk_xfer *x, int64_t now)
{
	int64_t dl;
	const char *why;
	pf_err err;

	if (x->phase == PHASE_DRAIN) {
		err = wrk_outq_flush(&x->q);
		if (err != PF_EAGAIN || now >= x->deadline + DRAIN_GRACE_MS) {
			if (err == PF_EAGAIN)
				pf_warn("PF-WRK-REPLY-LOST",
				    "req=%s what=drain", x->idhex);
			set_phase(x, PHASE_DONE);
		}
		return x->deadline + DRAIN_GRACE_MS;
	}
	if (x->phase != PHASE_ATTEMPT)
		return now;
	if (x->q.n > 0) {
		err = wrk_outq_flush(&x->q);
		if (err == PF_ENET) {
			attempt_end(x);
			pf_warn(
			    "PF-WRK-REPLY-LOST", "req=%s what=data", x->idhex);
			set_phase(x, PHASE_DONE);
			return now;
		}
		if (err == PF_OK)
			x->t_last
			    = now; /* waiting for the ingress is not idle */
		if (err == PF_OK && x->paused) {
			x->paused = 0;
			/* may deliver the held data to write_cb at once */
			if (curl_easy_pause(x->easy, CURLPAUSE_CONT)
			    != CURLE_OK) {
				attempt_end(x);
				if (x->abort_why == ABORT_REPLY) {
					set_phase(x, PHASE_DONE);
					return now;
				}
				attempt_failed(
				    x, 0, x->status, abort_text(x->abort_why));
				return now;
			}
		}
	}
	dl = min64(x->deadline, x->t_attempt + x->total_ms);
	why = "total timeout";
	if (!x->got_byte) {
		if (x->t_attempt + x->first_byte_ms < dl) {
			dl = x->t_attempt + x->first_byte_ms;
			why = "first byte timeout";
		}
	} else if (x->q.n == 0 && !x->paused) {
		if (x->t_last + x->idle_ms < dl) {
			dl = x->t_last + x->idle_ms;
			why = "idle timeout";
		}
	}
	if (now < dl)
		return dl;
	attempt_end(x);
	attempt_failed(x, 1, x->status, why);
	return now;
}

int64_t
wrk_env_tick(wrk_env *env, int64_t now)
{
	int64_t next = INT64_MAX, dl;
	wrk_xfer *x, *nx;
	int dirty = 0;

	if (!env->_dirty && now < env->_next_scan)
		return env->_next_scan == INT64_MAX ? -1
		                                    : env->_next_scan - now;
	env->_dirty = 0;
	env->_next_scan = INT64_MAX;
	for (x = env->_head; x != NULL; x = nx) {
		nx = x->next;
		dl = xfer_tick(x, now);
		if (x->phase == PHASE_DONE) {
			xfer_free(x);
			continue;
		}
		if (x->q.n > 0 || x->phase == PHASE_DRAIN)
			dirty = 1;
		if (x->phase == PHASE_ATTEMPT && x->easy == NULL)
			continue;
		if (dl < next)
			next = dl;
	}
	/* ticks may have started attempts (scan_by) or queued messages */
	env->_dirty |= dirty;
	scan_by(env, next);
	if (env->_dirty)
		return 0 < env->_next_scan - now ? env->_next_scan - now : 0;
	if (env->_next_scan == INT64_MAX)
		return -1;
	return env->_next_scan > now ? env->_next_scan - now : 0;
}

void
wrk_env_fini(wrk_env *env)
{
	wrk_xfer *x;

	while ((x = env->_head) != NULL) {
		if (x->phase == PHASE_ATTEMPT) {
			attempt_end(x);
			finish(x, PF_END_UPSTREAM_ERROR, x->status,
			    "worker stopping", x->head_sent);
		}
		if (wrk_outq_flush(&x->q) != PF_OK)
			pf_warn(
			    "PF-WRK-REPLY-LOST", "req=%s what=stop", x->idhex);
		xfer_free(x);
	}
	pf_buf_fini(&env->enc);
	wrk_buf_fini(&env->scratch);
}
