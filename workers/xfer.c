/*
 * xfer.c -- relays: life, replies, scheduling (attempt.c: the upstream
 * attempts).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/tokest.h"
#include "workers/curlfn.h"
#include "workers/h1.h"
#include "workers/xfer_impl.h"

/* After its request deadline a relay still gets this long to hand its
 * last messages to a busy ingress before they are dropped. */
#define DRAIN_GRACE_MS 5000
/* relays waiting for a reply socket visited per tick, oldest first */
#define WAIT_VISITS 64u
/* id table: first size, and relays per bucket before it doubles */
#define BUCKETS_MIN 256u
#define BUCKET_LOAD 2u

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
	env->_wait_end = &env->_wait;
	wrk_buf_init(&env->scratch);
	env->_by_id = calloc(BUCKETS_MIN, sizeof *env->_by_id);
	env->_n_buckets = env->_by_id != NULL ? BUCKETS_MIN : 0;
}

/* ---- relays by id ----------------------------------------------------------
 * Cancels and credits name a relay by id; with thousands of streams open
 * a walk per message would cost more than the rest of the relay.  Ids
 * start with the clock, so they are hashed whole (pf_id_hash). */

static size_t
bucket_of(size_t n_buckets, const uint8_t id[PF_ID_LEN])
{
	return pf_id_hash(id) & (n_buckets - 1);
}

/* Double the table; on failure keep the old one (longer chains). */
static void
grow_table(wrk_env *env)
{
	size_t n = env->_n_buckets * 2;
	wrk_xfer **t = calloc(n, sizeof *t), *x, *nx;
	size_t old = env->_n_buckets;

	if (t == NULL)
		return;
	for (size_t i = 0; i < old; i++) {
		for (x = env->_by_id[i]; x != NULL; x = nx) {
			size_t b = bucket_of(n, x->rq->id);

			nx = x->hnext;
			x->hnext = t[b];
			t[b] = x;
		}
	}
	free(env->_by_id);
	env->_by_id = t;
	env->_n_buckets = n;
}

static void
table_add(wrk_env *env, wrk_xfer *x)
{
	size_t b;

	if (env->_n_buckets == 0)
		return;
	if (env->n_live > env->_n_buckets * BUCKET_LOAD)
		grow_table(env);
	b = bucket_of(env->_n_buckets, x->rq->id);
	x->hnext = env->_by_id[b];
	env->_by_id[b] = x;
}

static void
table_del(wrk_env *env, wrk_xfer *x)
{
	wrk_xfer **pp;

	if (env->_n_buckets == 0)
		return;
	for (pp = &env->_by_id[bucket_of(env->_n_buckets, x->rq->id)];
	     *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == x) {
			*pp = x->hnext;
			return;
		}
	}
}

static wrk_xfer *
find(wrk_env *env, const uint8_t id[PF_ID_LEN])
{
	wrk_xfer *x = env->_n_buckets > 0
	    ? env->_by_id[bucket_of(env->_n_buckets, id)]
	    : env->_head;

	for (; x != NULL; x = env->_n_buckets > 0 ? x->hnext : x->next)
		if (memcmp(x->rq->id, id, PF_ID_LEN) == 0)
			return x;
	return NULL;
}

const pf_candidate *
wrk_xfer_candidate(const wrk_xfer *x)
{
	if (x->cand < x->rq->n_candidates)
		return &x->rq->candidates[x->cand];
	return NULL;
}

int64_t
wrk_xfer_channel(const wrk_xfer *x)
{
	const pf_candidate *c = wrk_xfer_candidate(x);

	return c != NULL ? c->channel_id : 0;
}

/* ---- scheduling ----------------------------------------------------------
 * wrk_env_tick walks every relay only when a deadline may have come
 * (env->_next_scan); otherwise it visits the relays on env->_pend (a
 * relay done, credit for a paused transfer) and, unless the thread loop
 * said no reply socket became writable (env->replies_blocked), those on
 * up to WAIT_VISITS of those on env->_wait (a queue or a last message
 * waiting for the ingress), oldest first; one still waiting goes to the
 * back.  With thousands of streams behind a busy ingress _wait is long:
 * walking all of it on every curl event was most of the thread's time.
 * Deadlines only move later as bytes arrive, so each change that can
 * bring one earlier calls scan_by. */

void
wrk_xfer_scan_by(wrk_env *env, int64_t t)
{
	if (t < env->_next_scan)
		env->_next_scan = t;
}

static void
push(wrk_xfer **head, wrk_xfer *x)
{
	x->pnext = *head;
	if (*head != NULL)
		(*head)->pprev = &x->pnext;
	*head = x;
	x->pprev = head;
}

static void
unmark(wrk_xfer *x)
{
	if (x->pprev == NULL)
		return;
	*x->pprev = x->pnext;
	if (x->pnext != NULL)
		x->pnext->pprev = x->pprev;
	else if (x->waits)
		x->env->_wait_end = x->pprev;
	if (x->waits)
		x->env->_n_wait--;
	x->waits = 0;
	x->pnext = NULL;
	x->pprev = NULL;
}

/* Take the whole list at *head for a walk (into *work). */
static void
take_list(wrk_xfer **head, wrk_xfer **work)
{
	*work = *head;
	*head = NULL;
	if (*work != NULL)
		(*work)->pprev = work;
}

void
wrk_xfer_mark(wrk_xfer *x)
{
	if (x->pprev != NULL && !x->waits)
		return;
	unmark(x);
	push(&x->env->_pend, x);
}

/* park: x waits for its reply socket; visit it when one is writable.
 * Appended: _wait is oldest first. */
static void
park(wrk_xfer *x)
{
	wrk_env *env = x->env;

	if (x->pprev != NULL)
		return; /* on _pend (visited anyway) or parked already */
	x->waits = 1;
	x->pnext = NULL;
	x->pprev = env->_wait_end;
	*env->_wait_end = x;
	env->_wait_end = &x->pnext;
	env->_n_wait++;
}

void
wrk_xfer_set_phase(wrk_xfer *x, enum phase p)
{
	x->phase = p;
	wrk_xfer_mark(x);
}

/* ---- replies ---------------------------------------------------------- */

static pf_err
send_msg(wrk_xfer *x, const pf_msg *m)
{
	pf_err err = wrk_outq_send(&x->q, m, &x->env->enc);

	if (x->q.n > 0)
		park(x); /* waits for the socket: flush in ticks */
	return err;
}

pf_err
wrk_xfer_send_head(wrk_xfer *x)
{
	pf_msg m;
	const char *ct = pf_ctype_str(&x->ctype) != NULL
	    ? pf_ctype_str(&x->ctype)
	    : "application/json";

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_HEAD;
	memcpy(m.u.relay_head.id, x->rq->id, PF_ID_LEN);
	m.u.relay_head.status = (int32_t)x->status;
	m.u.relay_head.content_type.ptr = (const uint8_t *)ct;
	m.u.relay_head.content_type.len = strlen(ct);
	m.u.relay_head.channel_id = wrk_xfer_channel(x);
	m.u.relay_head.attempts = x->attempts;
	if (x->env->ctl_addr != NULL) {
		m.u.relay_head.ctl_addr.ptr = (const uint8_t *)x->env->ctl_addr;
		m.u.relay_head.ctl_addr.len = strlen(x->env->ctl_addr);
	}
	x->head_sent = 1;
	return send_msg(x, &m);
}

pf_err
wrk_xfer_send_data(wrk_xfer *x, const uint8_t *p, size_t n)
{
	pf_msg m;
	pf_err err;

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_DATA;
	memcpy(m.u.relay_data.id, x->rq->id, PF_ID_LEN);
	m.u.relay_data.seq = x->seq;
	m.u.relay_data.data.ptr = p;
	m.u.relay_data.data.len = n;
	/* the estimate includes this message: stream_event fed it first */
	m.u.relay_data.completion = pf_tokest_tokens(&x->usage.completion);
	err = send_msg(x, &m);
	if (err == PF_OK) {
		x->seq++;
		x->credit -= (int64_t)n;
	}
	return err;
}

int
wrk_xfer_starved(const wrk_xfer *x)
{
	return x->flow && x->credit <= 0;
}

void
wrk_xfer_record(wrk_xfer *x, pf_attempt_outcome o, long status)
{
	pf_attempt *a;

	if (!x->att_open)
		return;
	x->att_open = 0;
	if (x->n_att == x->max_att)
		return;
	a = &x->att[x->n_att++];
	a->channel_id = wrk_xfer_channel(x);
	a->status = (int32_t)status;
	a->outcome = (int32_t)o;
}

/* Send relay.end and let the relay drain.  usage_too: report delivered
 * usage (found or estimated); otherwise zeros. */
void
wrk_xfer_finish(wrk_xfer *x, pf_end_reason reason, long status,
    const char *error, int usage_too)
{
	pf_msg m;

	wrk_xfer_record(x, PF_ATTEMPT_LOCAL, status); /* not recorded yet */
	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_END;
	memcpy(m.u.relay_end.id, x->rq->id, PF_ID_LEN);
	m.u.relay_end.seq = x->seq;
	m.u.relay_end.reason = (int32_t)reason;
	m.u.relay_end.upstream_status = (int32_t)status;
	m.u.relay_end.channel_id = wrk_xfer_channel(x);
	if (usage_too)
		wrk_usage_result(&x->usage, x->rq->body.ptr, x->rq->body.len,
		    &m.u.relay_end.usage);
	/* never a NULL pointer, even for an empty field */
	m.u.relay_end.error.ptr = (const uint8_t *)(error ? error : "");
	m.u.relay_end.error.len = error ? strlen(error) : 0;
	m.u.relay_end.n_attempts = x->n_att;
	m.u.relay_end.attempt_list = x->att;
	if (send_msg(x, &m) != PF_OK) {
		pf_warn("PF-WRK-REPLY-LOST", "req=%s what=end", x->idhex);
		wrk_xfer_set_phase(x, PHASE_DONE);
		return;
	}
	wrk_xfer_set_phase(x, x->q.n > 0 ? PHASE_DRAIN : PHASE_DONE);
}

/* ---- relay lifecycle ------------------------------------------------------ */

static void
xfer_free(wrk_xfer *x)
{
	wrk_xfer_attempt_end(x);
	wrk_buf_fini(&x->resp);
	pf_ctype_clear(&x->ctype);
	wrk_outq_close(&x->q);
	unmark(x);
	table_del(x->env, x);
	if (x->prev != NULL)
		x->prev->next = x->next;
	else if (x->env->_head == x)
		x->env->_head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	if (x->env->n_live > 0)
		x->env->n_live--;
	pf_msg_free(x->msg);
	free(x->cv);
	free(x);
}

void
wrk_env_take(wrk_env *env, pf_msg *msg)
{
	const pf_relay_request *rq;
	wrk_xfer *x;
	int64_t now, left;
	uint32_t n_att;
	pf_err err;

	if (msg->kind != PF_MSG_RELAY_REQUEST) {
		pf_debug(
		    "PF-WRK-IGNORED", "kind=%s", pf_msg_kind_name(msg->kind));
		pf_msg_free(msg);
		return;
	}
	rq = &msg->u.relay_request;
	/* one outcome per candidate (each is tried at most once) */
	n_att = rq->n_candidates < PF_RELAY_MAX_CANDIDATES
	    ? rq->n_candidates
	    : PF_RELAY_MAX_CANDIDATES;
	if (n_att == 0)
		n_att = 1;
	x = pf_zalloc(sizeof *x + n_att * sizeof(pf_attempt));
	if (x == NULL) {
		pf_msg_free(msg);
		pf_error("PF-WRK-NOMEM", "what=relay");
		return;
	}
	x->att = (pf_attempt *)(void *)(x + 1);
	x->max_att = n_att;
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
	table_add(env, x);

	now = wrk_now_ms();
	if (rq->deadline_ms > 0) {
		left = rq->deadline_ms - unix_ms();
		x->deadline = now + (left > 0 ? left : 0);
	} else {
		x->deadline = now + env->cfg->total_timeout_ms;
	}
	/* flow control needs a way for credit to come back */
	x->flow
	    = rq->credit > 0 && env->ctl_addr != NULL && env->ctl_addr[0] != 0;
	x->credit = rq->credit;
	if (rq->n_candidates == 0) {
		wrk_xfer_finish(
		    x, PF_END_NO_CHANNEL, 0, "no channel available", 0);
		return;
	}
	if (now >= x->deadline) {
		wrk_xfer_finish(
		    x, PF_END_TIMEOUT, 0, "deadline passed before start", 0);
		return;
	}
	wrk_xfer_try_from(x, 0);
}

void
wrk_env_cancel(wrk_env *env, const uint8_t id[PF_ID_LEN])
{
	wrk_xfer *x = find(env, id);

	if (x == NULL || x->phase != PHASE_ATTEMPT)
		return;
	wrk_xfer_attempt_end(x);
	pf_info("PF-WRK-CANCEL", "req=%s channel=%" PRId64 " sent=%u", x->idhex,
	    wrk_xfer_channel(x), x->seq);
	wrk_xfer_finish(
	    x, PF_END_CLIENT_GONE, x->status, "client gone", x->head_sent);
}

void
wrk_env_credit(wrk_env *env, const uint8_t id[PF_ID_LEN], uint32_t bytes)
{
	wrk_xfer *x = find(env, id);

	if (x == NULL)
		return;
	x->credit += bytes;
	if (x->paused)
		wrk_xfer_mark(x); /* resume at the next tick */
}

void
wrk_env_reap(wrk_env *env)
{
	CURLMsg *m;
	int left;

	while (env->multi != NULL
	    && (m = curl_multi_info_read(env->multi, &left)) != NULL) {
		CURL *easy = m->easy_handle;
		CURLcode res = m->data.result;
		char *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		if (priv != NULL)
			wrk_xfer_attempt_done((wrk_xfer *)(void *)priv, res);
	}
	wrk_xfer_h1_reap(env);
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
			wrk_xfer_set_phase(x, PHASE_DONE);
		}
		return x->deadline + DRAIN_GRACE_MS;
	}
	if (x->phase != PHASE_ATTEMPT)
		return now;
	if (x->q.n > 0) {
		err = wrk_outq_flush(&x->q);
		if (err == PF_ENET) {
			wrk_xfer_attempt_end(x);
			pf_warn(
			    "PF-WRK-REPLY-LOST", "req=%s what=data", x->idhex);
			wrk_xfer_set_phase(x, PHASE_DONE);
			return now;
		}
		if (err == PF_OK)
			x->t_last
			    = now; /* waiting for the ingress is not idle */
	}
	if (x->paused && wrk_xfer_running(x) && x->q.n == 0
	    && !wrk_xfer_starved(x)) {
		x->paused = 0;
		x->t_last = now;
		/* may deliver the held data to write_cb at once */
		if (wrk_xfer_resume(x) != 0) {
			wrk_xfer_attempt_end(x);
			if (x->abort_why == ABORT_REPLY) {
				wrk_xfer_set_phase(x, PHASE_DONE);
				return now;
			}
			wrk_xfer_attempt_failed(
			    x, 0, x->status, wrk_xfer_abort_text(x->abort_why));
			return now;
		}
	}
	dl = min64(x->deadline, x->t_attempt + x->total_ms);
	why = "total timeout";
	if (x->h1 != NULL && !wrk_h1_connected(x->h1)) {
		if (x->t_attempt + x->connect_ms < dl) {
			dl = x->t_attempt + x->connect_ms;
			why = "connect timeout";
		}
	}
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
	wrk_xfer_attempt_end(x);
	wrk_xfer_attempt_failed(x, PF_ATTEMPT_TIMEOUT, x->status, why);
	return now;
}

/* Tick x; returns its next deadline, INT64_MAX when it has none (freed,
 * or between attempts).  Keeps x marked while it needs ticks. */
static int64_t
visit(wrk_xfer *x, int64_t now)
{
	int64_t dl = xfer_tick(x, now);

	if (x->phase == PHASE_DONE) {
		xfer_free(x);
		return INT64_MAX;
	}
	if (x->q.n > 0 || x->phase == PHASE_DRAIN)
		park(x);
	if (x->phase == PHASE_ATTEMPT && !wrk_xfer_running(x))
		return INT64_MAX;
	return dl;
}

int64_t
wrk_env_tick(wrk_env *env, int64_t now)
{
	int64_t next = INT64_MAX, dl;
	wrk_xfer *x, *nx, *work;
	size_t waits = env->replies_blocked ? 0 : env->_n_wait;

	if (env->_pend == NULL && waits == 0 && now < env->_next_scan)
		return env->_next_scan == INT64_MAX ? -1
		                                    : env->_next_scan - now;
	/* this walk's list; ticks may mark relays again (into _pend) */
	take_list(&env->_pend, &work);
	if (now >= env->_next_scan) {
		env->_next_scan = INT64_MAX;
		for (x = env->_head; x != NULL; x = nx) {
			nx = x->next;
			unmark(x);
			dl = visit(x, now);
			if (dl < next)
				next = dl;
		}
		waits = 0;
	}
	while ((x = work) != NULL) {
		unmark(x);
		dl = visit(x, now);
		if (dl < next)
			next = dl;
	}
	/* the oldest waiting ones; each still waiting goes to the back */
	if (waits > WAIT_VISITS)
		waits = WAIT_VISITS;
	while (waits-- > 0 && (x = env->_wait) != NULL) {
		unmark(x);
		dl = visit(x, now);
		if (dl < next)
			next = dl;
	}
	/* ticks may have started attempts (scan_by) or queued messages */
	wrk_xfer_scan_by(env, next);
	if (env->_pend != NULL || (env->h1 != NULL && wrk_h1_has_done(env->h1)))
		return 0;
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
			wrk_xfer_attempt_end(x);
			wrk_xfer_finish(x, PF_END_UPSTREAM_ERROR, x->status,
			    "worker stopping", x->head_sent);
		}
		if (wrk_outq_flush(&x->q) != PF_OK)
			pf_warn(
			    "PF-WRK-REPLY-LOST", "req=%s what=stop", x->idhex);
		xfer_free(x);
	}
	pf_buf_fini(&env->enc);
	wrk_buf_fini(&env->scratch);
	free(env->_by_id);
	env->_by_id = NULL;
	env->_n_buckets = 0;
	free(env->_hosts);
	env->_hosts = NULL;
	wrk_easy_pool_fini(env);
}
