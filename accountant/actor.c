/*
 * actor.c -- the accountant actor (see actor.h).
 *
 * NNG callbacks only move messages: a context's receive callback decodes
 * the request and queues it for the actor thread, which owns the database
 * connection, the event log and the grant state, and answers each request
 * through its context.  Contexts cycle RECV -> (queued) -> SEND -> RECV.
 */
#include "accountant/actor.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "accountant/db.h"
#include "accountant/durable.h"
#include "accountant/grants.h"
#include "accountant/lanes.h"
#include "accountant/ledger.h"
#include "accountant/replay.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/pgcancel.h"
#include "common/reclog.h"
#include "common/thread.h"

#define ERRBUF_MAX 1024
#define SWEEP_MS 1000
#define DB_RETRY_MS 2000
/* markers begin at most this often under load (each is a WAL flush of
 * its own, and moves the checkpoint file); an idle moment marks the rest */
#define MARK_EVERY_MS 20
/* under load the checkpoint file moves at most this often: each move is
 * a new file and a rename, which makes ext4 write the file out at once
 * (~1 ms of the actor's CPU on the bench VM, 8 a second at 12,000
 * requests/s).  A position held back is written at the next idle moment
 * or at the stop (settle_checkpoint).  A staler file only means more of
 * the log to replay at a start */
#define CKPT_EVERY_MS 1000
/* a stop past its grace cancels the statements the actor waits for this
 * often: one sent between two statements finds none to cancel */
#define STOP_CANCEL_EVERY_MS 100

struct ctx {
	acct_accountant *a;
	nng_ctx ctx;
	nng_aio *aio;
	int sending;
};

/* A request waiting for the actor. */
/* A usage.batch request being settled; its events may span batches. */
struct agg {
	struct ctx *c;
	nng_msg *raw;
	pf_msg *msg;    /* the decoded usage.batch */
	pf_msg *events; /* n usage messages sharing msg's bytes */
	char (*out)[PF_EVENT_ID_MAX + 1]; /* the ack entries */
	uint32_t n, left;
};

struct item {
	struct ctx *c;
	nng_msg *raw; /* the request as received (logged verbatim) */
	pf_msg *msg;
	struct agg *agg; /* a member of a usage.batch (raw NULL) */
	uint32_t idx;
};

struct acct_accountant {
	const pf_config *cfg;
	PGconn *conn;        /* grants and the replay at start */
	acct_ledger *ledger; /* the replay at start */
	acct_lanes *lanes;   /* batches: their own connections */
	acct_durable *dur;   /* when the lanes' commits are durable */
	acct_grants *grants;
	uint64_t epoch; /* random, nonzero, new at each start: grant.reply */
	pf_reclog *log;
	int ckpt_frozen;  /* the log failed: keep its records replayable */
	int need_recover; /* replay the log tail before moving on */
	pf_reclog_pos applied_end; /* the log's end after the last batch */
	pf_reclog_pos marked_end;  /* ... that a marker was begun for */
	int64_t marked_ms;         /* when the last marker began */
	pf_reclog_pos ckpt_pos;    /* durable; the file may lag (ckpt_due) */
	int ckpt_due;              /* ckpt_pos is not in the file yet */
	int64_t ckpt_ms;           /* when the checkpoint file last moved */
	int64_t recover_at;        /* no recovery attempt before (unix ms) */
	int64_t db_retry_at;       /* no reconnect attempt before (unix ms) */
	nng_socket rep, pub;
	struct ctx *ctxs;
	size_t n_ctxs;
	pthread_t thread;
	int thread_started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct item *queue; /* ring of PF_ACCT_CONTEXTS */
	size_t q_head, q_len;
	int stopping;
	int ended;             /* the actor thread is done (end_cv) */
	pthread_cond_t end_cv; /* apart from cv: a request wakes the actor */
	PGcancel *conn_cancel; /* conn's, for acct_accountant_stop */
	int gave_up;           /* the stop cancels: no more database work */

	/* actor-thread batches: the one filling (batch, ev, n_batch) and the
	 * one the lanes apply (fl_*), logged before it was submitted; the
	 * two swap buffers (bufs) */
	struct item *batch;
	acct_event *ev;
	size_t n_batch;
	struct item *fl_batch;
	acct_event *fl_ev;
	size_t fl_n;          /* 0: nothing in flight */
	pf_reclog_pos fl_end; /* the log's end after the batch in flight */
	int64_t fl_now;       /* when it was logged */
	struct {
		struct item items[PF_ACCT_BATCH_MAX];
		acct_event ev[PF_ACCT_BATCH_MAX];
	} bufs[2];
};

/* ---- replies ---- */

static void
send_reply(struct ctx *c, const pf_msg *reply)
{
	nng_msg *m = NULL;
	pf_buf b;

	pf_buf_init(&b);
	if (pf_msg_encode(reply, &b) != PF_OK
	    || nng_msg_alloc(&m, b.len) != 0) {
		pf_buf_fini(&b);
		/* cannot answer: let the peer time out, take the next one */
		c->sending = 0;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	memcpy(nng_msg_body(m), b.data, b.len);
	pf_buf_fini(&b);
	c->sending = 1;
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
}

static void
reply_ack(struct ctx *c, const char *id, const char *rejected)
{
	char second[PF_EVENT_ID_MAX + 1];
	pf_bytes ids[2];
	pf_msg r;

	memset(&r, 0, sizeof(r));
	r.kind = PF_MSG_ACK;
	r.u.ack.ids = ids;
	if (id != NULL) {
		ids[0].ptr = (const uint8_t *)id;
		ids[0].len = strlen(id);
		r.u.ack.n_ids = 1;
	}
	if (id != NULL && rejected != NULL) {
		int n = snprintf(
		    second, sizeof(second), "rejected: %s", rejected);

		ids[1].ptr = (const uint8_t *)second;
		ids[1].len = n < 0               ? 0
		    : (size_t)n < sizeof(second) ? (size_t)n
		                                 : sizeof(second) - 1;
		r.u.ack.n_ids = 2;
	}
	send_reply(c, &r);
}

/* ---- NNG side ---- */

static void
ctx_cb(void *arg)
{
	struct ctx *c = arg;
	acct_accountant *a = c->a;
	struct item it;
	nng_msg *m;
	int rv = nng_aio_result(c->aio);

	if (c->sending) {
		c->sending = 0;
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	m = nng_aio_get_msg(c->aio);
	it.c = c;
	it.raw = m;
	it.msg = NULL;
	it.agg = NULL;
	it.idx = 0;
	if (pf_msg_decode(nng_msg_body(m), nng_msg_len(m), &it.msg) != PF_OK) {
		nng_msg_free(m);
		reply_ack(c, NULL, NULL); /* garbage: an empty ack */
		return;
	}
	pthread_mutex_lock(&a->mu);
	/* One item per context, so the ring (one slot per context) never
	 * overflows. */
	a->queue[(a->q_head + a->q_len) % a->n_ctxs] = it;
	a->q_len++;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

/* ---- balances published ---- */

static void
publish(acct_accountant *a, int64_t user_id, int64_t token_id, int64_t quota,
    int unlimited, int64_t at_ms)
{
	pf_msg r;
	pf_buf b;

	memset(&r, 0, sizeof(r));
	r.kind = PF_MSG_BALANCE;
	r.u.balance.user_id = user_id;
	r.u.balance.token_id = token_id;
	r.u.balance.quota = quota;
	r.u.balance.unlimited = (uint8_t)(unlimited != 0);
	r.u.balance.at_ms = at_ms;
	pf_buf_init(&b);
	if (pf_msg_encode(&r, &b) == PF_OK) {
		/* best effort, like every pub0 delivery */
		int rv = nng_send(a->pub, b.data, b.len, NNG_FLAG_NONBLOCK);

		(void)rv;
	}
	pf_buf_fini(&b);
}

/* ---- database ---- */

/* Whether the stop gave up on the database (acct_accountant_stop): what
 * is left is answered "resend later" instead of waiting for it again. */
static int
gave_up(acct_accountant *a)
{
	int v;

	pthread_mutex_lock(&a->mu);
	v = a->gave_up;
	pthread_mutex_unlock(&a->mu);
	return v;
}

static void
conn_close(acct_accountant *a)
{
	pf_pgcancel_set(&a->mu, &a->conn_cancel, NULL);
	acct_db_close(a->conn);
	a->conn = NULL;
}

static pf_err
db_ready(acct_accountant *a, char *errbuf, size_t errlen)
{
	pf_err err;

	if (a->ledger != NULL && PQstatus(a->conn) == CONNECTION_OK)
		return PF_OK;
	/* A database that is down must not stall the actor on every
	 * request: one connection attempt per DB_RETRY_MS. */
	if (pf_clock_ms() < a->db_retry_at) {
		snprintf(errbuf, errlen, "database unavailable");
		return PF_EDB;
	}
	acct_ledger_free(a->ledger);
	a->ledger = NULL;
	conn_close(a);
	err = acct_db_connect(a->cfg->database_url, &a->conn, errbuf, errlen);
	if (err == PF_OK) {
		/* by the actor, before the ledger's statements (common/
		 * pgcancel.h) */
		pf_pgcancel_set(&a->mu, &a->conn_cancel, a->conn);
		err = acct_ledger_new(a->conn, &a->ledger, errbuf, errlen);
	}
	if (err != PF_OK) {
		conn_close(a);
		a->db_retry_at = pf_clock_ms() + DB_RETRY_MS;
	}
	return err;
}

/* ---- checkpoint: the log position up to which all is committed ---- */

static void
checkpoint_path(
    const acct_accountant *a, char *out, size_t outlen, const char *suffix)
{
	snprintf(
	    out, outlen, "%s/checkpoint%s", a->cfg->accountant_log_dir, suffix);
}

/* write_checkpoint moves the file to pos (durable in the database),
 * unless it moved within CKPT_EVERY_MS and force is clear: then pos is
 * kept for settle_checkpoint. */
static void
write_checkpoint(acct_accountant *a, pf_reclog_pos pos, int force)
{
	char path[PF_CONFIG_STR + 32], tmp[PF_CONFIG_STR + 32];
	int64_t now = pf_clock_ms();
	FILE *f;

	if (a->ckpt_frozen)
		return;
	a->ckpt_pos = pos;
	a->ckpt_due = 1;
	if (!force && now - a->ckpt_ms < CKPT_EVERY_MS)
		return;
	a->ckpt_due = 0;
	a->ckpt_ms = now;
	checkpoint_path(a, path, sizeof(path), "");
	checkpoint_path(a, tmp, sizeof(tmp), ".tmp");
	f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "%" PRIu64 " %" PRIu64 "\n", pos.seq, pos.off);
	if (fclose(f) == 0)
		(void)rename(tmp, path); /* stale is fine: more to replay */
}

/* settle_checkpoint writes a position write_checkpoint held back. */
static void
settle_checkpoint(acct_accountant *a)
{
	if (a->ckpt_due)
		write_checkpoint(a, a->ckpt_pos, 1);
}

static pf_reclog_pos
read_checkpoint(const acct_accountant *a)
{
	char path[PF_CONFIG_STR + 32];
	pf_reclog_pos pos = { 0, 0 };
	unsigned long long seq, off;
	FILE *f;

	checkpoint_path(a, path, sizeof(path), "");
	f = fopen(path, "r");
	if (f == NULL)
		return pos;
	if (fscanf(f, "%llu %llu", &seq, &off) == 2) {
		pos.seq = seq;
		pos.off = off;
	}
	fclose(f);
	return pos;
}

/* ---- durability: the checkpoint follows synchronous markers ---- */

/* Collects the marker in flight, if any (wait: even when the server has
 * not answered yet), and moves the checkpoint to the log position it
 * covers; a failure asks for recovery. */
static void
durable_collect(acct_accountant *a, int wait)
{
	char errbuf[ERRBUF_MAX];
	pf_reclog_pos pos;
	pf_err err;

	if (!acct_durable_busy(a->dur))
		return;
	if ((!wait || gave_up(a)) && !acct_durable_ready(a->dur))
		return;
	err = acct_durable_end(a->dur, &pos, errbuf, sizeof(errbuf));
	if (err == PF_OK) {
		if (!a->need_recover)
			write_checkpoint(a, pos, wait);
		return;
	}
	pf_warn("PF-ACCT-DURABLE", "err=%s msg=\"%s\" action=replay",
	    pf_strerror(err), errbuf);
	a->need_recover = 1;
}

/* Starts the marker for everything committed so far (pos: the log's end
 * after it); unless force, not within MARK_EVERY_MS of the last one. */
static void
durable_begin(acct_accountant *a, pf_reclog_pos pos, int force)
{
	char errbuf[ERRBUF_MAX];
	int64_t now = pf_clock_ms();
	pf_err err;

	/* under load the next batch's marker covers this one: the actor
	 * never waits for a WAL flush */
	durable_collect(a, 0);
	a->applied_end = pos;
	if (a->need_recover || acct_durable_busy(a->dur) || gave_up(a))
		return;
	if (!force && now - a->marked_ms < MARK_EVERY_MS)
		return;
	err = acct_durable_begin(a->dur, pos, errbuf, sizeof(errbuf));
	if (err == PF_OK) {
		a->marked_end = pos;
		a->marked_ms = now;
	}
	if (err != PF_OK) {
		pf_warn("PF-ACCT-DURABLE", "err=%s msg=\"%s\" action=replay",
		    pf_strerror(err), errbuf);
		a->need_recover = 1;
	}
}

/* The last batches' marker was skipped (one was in flight): begins it,
 * lest a crash now lose them unnoticed. */
static void
mark_rest(acct_accountant *a)
{
	if (a->marked_end.seq != a->applied_end.seq
	    || a->marked_end.off != a->applied_end.off)
		durable_begin(a, a->applied_end, 1);
}

static pf_err replay_tail(
    acct_accountant *a, int running, char *errbuf, size_t errlen);

/*
 * Makes everything in the event log durable in the database: opens the
 * marker's connection (before the replay, so that it witnesses any crash
 * after it), replays the log from the checkpoint on a fresh connection of
 * its own (idempotent: what the database kept is found present), then
 * commits a marker and moves the checkpoint to the log's end.  Nothing may
 * be in flight.  running: the log's current segment holds records (not a
 * start).
 */
static pf_err
make_durable(acct_accountant *a, int running, char *errbuf, size_t errlen)
{
	pf_reclog_pos end = pf_reclog_end(a->log), pos;
	pf_err err;

	err = acct_durable_connect(a->dur, errbuf, errlen);
	if (err == PF_OK && running) {
		/* the old connection may have outlived a crash unnoticed */
		acct_ledger_free(a->ledger);
		a->ledger = NULL;
		conn_close(a);
		a->db_retry_at = 0;
	}
	if (err == PF_OK)
		err = db_ready(a, errbuf, errlen);
	if (err == PF_OK)
		err = replay_tail(a, running, errbuf, errlen);
	if (err == PF_OK)
		err = acct_durable_begin(a->dur, end, errbuf, errlen);
	if (err == PF_OK)
		err = acct_durable_end(a->dur, &pos, errbuf, errlen);
	if (err == PF_OK) {
		write_checkpoint(a, pos, 1);
		a->applied_end = a->marked_end = pos;
	}
	return err;
}

/* After a failed batch or marker, with nothing in flight. */
static void
recover(acct_accountant *a)
{
	char errbuf[ERRBUF_MAX];
	pf_err err;

	if (!a->need_recover || a->fl_n > 0 || a->log == NULL || gave_up(a)
	    || pf_clock_ms() < a->recover_at)
		return;
	err = make_durable(a, 1, errbuf, sizeof(errbuf));
	if (err == PF_OK) {
		a->need_recover = 0;
		acct_lanes_retry_now(a->lanes); /* the database is back */
		pf_warn("PF-ACCT-RECOVERED", "checkpoint=log_end");
		return;
	}
	if (err == PF_EPROTO) {
		/* a damaged log (after a failed write): no retry can pass
		 * it; the checkpoint stays, and a restart stops with the
		 * same error for the operator */
		pf_error("PF-ACCT-RECOVER", "err=%s msg=\"%s\" action=give_up",
		    pf_strerror(err), errbuf);
		a->need_recover = 0;
		a->ckpt_frozen = 1;
		return;
	}
	pf_warn("PF-ACCT-RECOVER", "err=%s msg=\"%s\" retry_ms=%d",
	    pf_strerror(err), errbuf, DB_RETRY_MS);
	a->recover_at = pf_clock_ms() + DB_RETRY_MS;
}

/* ---- the batch ---- */

static void
agg_free(struct agg *g)
{
	pf_msg_free(g->msg);
	nng_msg_free(g->raw);
	free(g->events);
	free(g->out);
	free(g);
}

/* Records one member's outcome; the last one answers the request. */
static void
agg_settle(struct agg *g, uint32_t idx, const acct_event *ev, int failed)
{
	char *out = g->out[idx];

	if (failed || ev->outcome == ACCT_PENDING)
		out[0] = '\0';
	else if (ev->outcome == ACCT_REJECTED)
		snprintf(out, PF_EVENT_ID_MAX + 1, "rejected: %.*s",
		    (int)(PF_EVENT_ID_MAX - sizeof("rejected: ") + 1),
		    ev->reason);
	else
		snprintf(out, PF_EVENT_ID_MAX + 1, "%s", ev->id);
	if (--g->left > 0)
		return;
	{
		pf_bytes *ids = calloc(g->n, sizeof(*ids));
		pf_msg r;

		memset(&r, 0, sizeof(r));
		r.kind = PF_MSG_ACK;
		if (ids != NULL) {
			for (uint32_t i = 0; i < g->n; i++) {
				ids[i].ptr = (const uint8_t *)g->out[i];
				ids[i].len = strlen(g->out[i]);
			}
			r.u.ack.ids = ids;
			r.u.ack.n_ids = g->n;
		}
		send_reply(g->c, &r);
		free(ids);
	}
	agg_free(g);
}

/* Answers and frees items[0..n) after their batch (failed: none of them
 * was applied). */
static void
finish_items(struct item *items, const acct_event *evs, size_t n, int failed)
{
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		const acct_event *ev = &evs[i];

		if (it->agg != NULL) {
			agg_settle(it->agg, it->idx, ev, failed);
			continue;
		}
		if (failed || ev->outcome == ACCT_PENDING)
			reply_ack(it->c, NULL, NULL);
		else if (ev->outcome == ACCT_REJECTED)
			reply_ack(it->c, ev->id, ev->reason);
		else
			reply_ack(it->c, ev->id, NULL);
		pf_msg_free(it->msg);
		nng_msg_free(it->raw);
	}
}

/* The filling batch could not be logged: none of it is applied. */
static void
fail_batch(acct_accountant *a)
{
	finish_items(a->batch, a->ev, a->n_batch, 1);
	a->n_batch = 0;
}

/* Waits for the batch in flight (if any), then acks it, settles the
 * grants, publishes the balances and moves the checkpoint past it. */
static void
complete_flight(acct_accountant *a)
{
	char errbuf[ERRBUF_MAX];
	int64_t now = a->fl_now;
	pf_err err;
	size_t n;

	if (a->fl_n == 0)
		return;
	err = acct_lanes_wait(a->lanes, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		/* Lanes that committed have their outcomes (acked below);
		 * the failed lane's events stay PENDING: "resend later".
		 * They are logged but not applied, and the server may have
		 * lost earlier commits: the checkpoint stays behind until
		 * the log tail is replayed (recover). */
		pf_error("PF-ACCT-APPLY", "events=%zu err=%s msg=\"%s\"",
		    a->fl_n, pf_strerror(err), errbuf);
		a->need_recover = 1;
	}
	durable_collect(a, 0);
	for (size_t i = 0; i < a->fl_n; i++) {
		const acct_event *ev = &a->fl_ev[i];

		if (ev->outcome == ACCT_REJECTED)
			pf_warn("PF-ACCT-REJECT", "event=%s reason=\"%s\"",
			    ev->id, ev->reason);
		if (ev->outcome == ACCT_APPLIED
		    && ev->msg->kind == PF_MSG_USAGE)
			acct_grants_settle(a->grants, ev->msg->u.usage.user_id,
			    ev->msg->u.usage.token_id, ev->msg->u.usage.cost);
	}
	{
		const acct_user_balance *u = acct_lanes_users(a->lanes, &n);

		for (size_t i = 0; i < n; i++) {
			acct_grants_set_user(
			    a->grants, u[i].user_id, u[i].quota, now);
			publish(a, u[i].user_id, 0, u[i].quota, 0, now);
		}
	}
	{
		const acct_token_balance *t = acct_lanes_tokens(a->lanes, &n);

		for (size_t i = 0; i < n; i++) {
			acct_grants_set_token(a->grants, t[i].token_id,
			    t[i].remain_quota, t[i].unlimited, now);
			publish(a, t[i].user_id, t[i].token_id,
			    t[i].remain_quota, t[i].unlimited, now);
		}
	}
	if (!a->need_recover)
		durable_begin(a, a->fl_end, 0);
	finish_items(a->fl_batch, a->fl_ev, a->fl_n, 0);
	a->fl_n = 0;
}

/*
 * Appends the filling batch to the event log and syncs it, then (the
 * previous batch's lanes worked meanwhile) completes the batch in flight
 * and submits this one to the lanes.  Batches are submitted one after the
 * other, so a user's events still apply in order; an event is acked only
 * after its lane committed (complete_flight).
 */
static void
apply_batch(acct_accountant *a)
{
	char errbuf[ERRBUF_MAX];
	int64_t now = pf_clock_ms();
	pf_err err = PF_OK;

	if (a->n_batch == 0)
		return;
	if (gave_up(a)) {
		/* the senders keep what is not acked */
		fail_batch(a);
		return;
	}
	if (a->need_recover) {
		/* replay before this batch is logged: its events then go
		 * through the lanes alone (grants settle on them) */
		complete_flight(a);
		recover(a);
	}
	if (a->log == NULL) {
		err = pf_reclog_open(
		    a->cfg->accountant_log_dir, ACCT_LOG_PREFIX, 0, &a->log);
		if (err != PF_OK) {
			pf_error("PF-ACCT-LOG", "err=%s", pf_strerror(err));
			a->ckpt_frozen = 1;
			fail_batch(a);
			return;
		}
	}
	/* one encoding buffer for the batch, not one per event */
	pf_buf b;
	pf_buf_init(&b);
	for (size_t i = 0; i < a->n_batch && err == PF_OK; i++) {
		struct item *it = &a->batch[i];

		acct_event_init(&a->ev[i], it->msg, now);
		if (it->raw != NULL) {
			err = pf_reclog_append(a->log, nng_msg_body(it->raw),
			    nng_msg_len(it->raw), now, NULL);
		} else {
			/* batch members are logged as single usage records,
			 * so replay needs to know one kind only */
			b.len = 0;
			err = pf_msg_encode(it->msg, &b);
			if (err == PF_OK)
				err = pf_reclog_append(
				    a->log, b.data, b.len, now, NULL);
		}
	}
	pf_buf_fini(&b);
	if (err == PF_OK)
		err = pf_reclog_sync(a->log);
	if (err != PF_OK) {
		pf_error("PF-ACCT-LOG-WRITE", "err=%s", pf_strerror(err));
		pf_reclog_close(a->log);
		a->log = NULL;
		a->ckpt_frozen = 1;
		fail_batch(a);
		return;
	}
	complete_flight(a);
	err = acct_lanes_submit(a->lanes, a->ev, a->n_batch, 0);
	if (err != PF_OK) {
		snprintf(errbuf, sizeof(errbuf), "cannot start the lanes");
		pf_error("PF-ACCT-APPLY", "events=%zu err=%s msg=\"%s\"",
		    a->n_batch, pf_strerror(err), errbuf);
		a->need_recover = 1; /* logged, not applied */
		fail_batch(a);
		return;
	}
	{
		struct item *items = a->fl_batch;
		acct_event *evs = a->fl_ev;

		a->fl_batch = a->batch;
		a->fl_ev = a->ev;
		a->fl_n = a->n_batch;
		a->fl_end = pf_reclog_end(a->log);
		a->fl_now = now;
		a->batch = items;
		a->ev = evs;
		a->n_batch = 0;
	}
}

/* Everything received so far applied and acked. */
static void
flush_batches(acct_accountant *a)
{
	apply_batch(a);
	complete_flight(a);
}

static void
handle_grant(acct_accountant *a, struct item *it)
{
	const pf_grant_request *g = &it->msg->u.grant_request;
	char errbuf[ERRBUF_MAX];
	int64_t granted = 0, expires = 0;
	pf_err err;
	pf_msg r;

	/* With the database down, cached balances still answer. */
	err = gave_up(a) ? PF_EDB : db_ready(a, errbuf, sizeof(errbuf));
	err = acct_grants_request(a->grants, err == PF_OK ? a->conn : NULL,
	    g->user_id, g->token_id, g->amount, pf_clock_ms(), &granted,
	    &expires);
	memset(&r, 0, sizeof(r));
	r.kind = PF_MSG_GRANT_REPLY;
	r.u.grant_reply.corr = g->corr;
	r.u.grant_reply.user_id = g->user_id;
	r.u.grant_reply.token_id = g->token_id;
	r.u.grant_reply.granted = err == PF_OK ? granted : 0;
	r.u.grant_reply.expires_ms = err == PF_OK ? expires : 0;
	r.u.grant_reply.status = err;
	r.u.grant_reply.epoch = a->epoch;
	send_reply(it->c, &r);
}

/* Splits a usage.batch into batch items answered together. */
static pf_err
take_batch(acct_accountant *a, struct item *it)
{
	const pf_usage_batch *ub = &it->msg->u.usage_batch;
	uint32_t n = ub->n_usages;
	struct agg *g;

	if (n == 0)
		return PF_EINVAL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return PF_ENOMEM;
	g->events = calloc(ub->n_usages, sizeof(*g->events));
	g->out = calloc(ub->n_usages, sizeof(*g->out));
	if (g->events == NULL || g->out == NULL) {
		free(g->events);
		free(g->out);
		free(g);
		return PF_ENOMEM;
	}
	g->c = it->c;
	g->raw = it->raw;
	g->msg = it->msg;
	g->n = g->left = ub->n_usages;
	for (uint32_t i = 0; i < n; i++) {
		struct item *b = &a->batch[a->n_batch++];

		g->events[i].version = PF_MSG_VERSION;
		g->events[i].kind = PF_MSG_USAGE;
		g->events[i].u.usage = g->msg->u.usage_batch.usages[i];
		b->c = NULL;
		b->raw = NULL;
		b->msg = &g->events[i];
		b->agg = g;
		b->idx = i;
		if (a->n_batch == PF_ACCT_BATCH_MAX)
			apply_batch(a); /* may answer and free g: last use */
	}
	return PF_OK;
}

static void
handle(acct_accountant *a, struct item *it)
{
	switch (it->msg->kind) {
	case PF_MSG_USAGE:
	case PF_MSG_PAYMENT:
		a->batch[a->n_batch++] = *it;
		if (a->n_batch == PF_ACCT_BATCH_MAX)
			apply_batch(a);
		return; /* raw and msg now belong to the batch */
	case PF_MSG_USAGE_BATCH:
		if (take_batch(a, it) == PF_OK)
			return; /* raw and msg now belong to the aggregate */
		reply_ack(it->c, NULL, NULL); /* no memory: resend later */
		break;
	case PF_MSG_GRANT_REQUEST:
		/* credit granted must see the events before it */
		flush_batches(a);
		handle_grant(a, it);
		break;
	case PF_MSG_GRANT_RELEASE:
		acct_grants_release(a->grants, it->msg->u.grant_release.user_id,
		    it->msg->u.grant_release.token_id,
		    it->msg->u.grant_release.amount);
		reply_ack(it->c, NULL, NULL);
		break;
	default:
		reply_ack(it->c, NULL, NULL);
		break;
	}
	pf_msg_free(it->msg);
	nng_msg_free(it->raw);
}

/* Takes up to max queued items; waits until deadline (CLOCK_REALTIME)
 * for the first.  Returns the count. */
static size_t
take(acct_accountant *a, struct item *out, size_t max, int64_t wait_ms)
{
	struct timespec ts;
	int64_t until = pf_clock_ms() + wait_ms;
	size_t n = 0;

	ts.tv_sec = until / 1000;
	ts.tv_nsec = (long)(until % 1000) * 1000000;
	pthread_mutex_lock(&a->mu);
	while (a->q_len == 0 && !a->stopping && wait_ms > 0) {
		if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) != 0)
			break;
	}
	while (a->q_len > 0 && n < max) {
		out[n++] = a->queue[a->q_head];
		a->q_head = (a->q_head + 1) % a->n_ctxs;
		a->q_len--;
	}
	pthread_mutex_unlock(&a->mu);
	return n;
}

static void
actor_loop(acct_accountant *a)
{
	struct item *items = malloc(a->n_ctxs * sizeof(*items));
	int64_t next_sweep = pf_clock_ms() + SWEEP_MS;
	pf_thread_name("pf-accountant");

	if (items == NULL) {
		pf_error("PF-ACCT-OOM", "what=actor");
		return;
	}
	for (;;) {
		/* With a batch in flight only look: an idle moment is the
		 * time to complete it (and ack its events). */
		size_t n
		    = take(a, items, a->n_ctxs, a->fl_n > 0 ? 0 : SWEEP_MS);
		int stopping;

		if (n == 0 && a->fl_n > 0) {
			complete_flight(a);
		} else if (n == 0) {
			/* idle: settle the checkpoint, retry a recovery */
			durable_collect(a, 1);
			settle_checkpoint(a);
			mark_rest(a);
			recover(a);
		}
		for (size_t i = 0; i < n; i++)
			handle(a, &items[i]);
		/* Group commit: give events in flight a moment to join. */
		if (a->n_batch > 0 && n < a->n_ctxs / 2) {
			n = take(a, items, a->n_ctxs, PF_ACCT_BATCH_WINDOW_MS);
			for (size_t i = 0; i < n; i++)
				handle(a, &items[i]);
		}
		apply_batch(a);
		if (pf_clock_ms() >= next_sweep) {
			acct_grants_sweep(a->grants, pf_clock_ms());
			next_sweep = pf_clock_ms() + SWEEP_MS;
		}
		pthread_mutex_lock(&a->mu);
		stopping = a->stopping && a->q_len == 0;
		pthread_mutex_unlock(&a->mu);
		if (stopping) {
			flush_batches(a);
			durable_collect(a, 1);
			mark_rest(a); /* less to replay at the next start */
			durable_collect(a, 1);
			settle_checkpoint(a);
			break;
		}
	}
	free(items);
}

static void *
actor_main(void *arg)
{
	acct_accountant *a = arg;

	actor_loop(a);
	pthread_mutex_lock(&a->mu);
	a->ended = 1;
	pthread_cond_broadcast(&a->end_cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- start: replay the log tail ---- */

static pf_err
replay_tail(acct_accountant *a, int running, char *errbuf, size_t errlen)
{
	const char *dir = a->cfg->accountant_log_dir;
	pf_reclog_pos ckpt = read_checkpoint(a);
	acct_replay_opts opts = { 0, 0, 0, NULL };
	acct_replay_counts counts;
	acct_replay *r = NULL;
	uint64_t *seqs = NULL;
	size_t n = 0;
	pf_err err;

	err = pf_reclog_list(dir, ACCT_LOG_PREFIX, &seqs, &n);
	if (err != PF_OK) {
		snprintf(errbuf, errlen, "%s: cannot list the event log", dir);
		return err;
	}
	/* at start the segment the writer just created is empty: not part
	 * of it; later it holds the newest records */
	if (!running && n > 0 && seqs[n - 1] == pf_reclog_current_seq(a->log))
		n--;
	err = acct_replay_new(a->ledger, &opts, &r);
	for (size_t i = 0; i < n && err == PF_OK; i++) {
		char path[PF_CONFIG_STR + 64];
		pf_reclog_scan scan;

		if (seqs[i] < ckpt.seq)
			continue;
		err = pf_reclog_segment_path(
		    dir, ACCT_LOG_PREFIX, seqs[i], path, sizeof(path));
		if (err != PF_OK)
			break;
		err = acct_replay_file(r, path, seqs[i],
		    seqs[i] == ckpt.seq ? ckpt.off : 0, &scan, errbuf, errlen);
		if (err == PF_EINVAL && seqs[i] == ckpt.seq) {
			/* checkpoint past the end: trust the file */
			err = acct_replay_file(
			    r, path, seqs[i], 0, &scan, errbuf, errlen);
		}
		if (err != PF_OK)
			break;
		if (scan.valid_end < scan.file_size) {
			if (i + 1 < n || running) {
				snprintf(errbuf, errlen,
				    "%s: damaged record at offset %" PRIu64
				    " in a segment that is not the newest",
				    path, scan.valid_end);
				err = PF_EPROTO;
				break;
			}
			pf_warn("PF-ACCT-LOG-TORN",
			    "file=%s offset=%" PRIu64 " bytes=%" PRIu64
			    " action=truncate",
			    path, scan.valid_end,
			    scan.file_size - scan.valid_end);
			err = pf_reclog_truncate(path, scan.valid_end);
		}
	}
	if (err == PF_OK)
		err = acct_replay_flush(r, errbuf, errlen);
	if (err == PF_OK) {
		acct_replay_get_counts(r, &counts);
		/* after start, a replay follows an incident: a warning */
		pf_log(running ? PF_LOG_WARN : PF_LOG_INFO, "PF-ACCT-REPLAY",
		    "read=%" PRIu64 " applied=%" PRIu64 " present=%" PRIu64
		    " rejected=%" PRIu64,
		    counts.read, counts.applied, counts.present,
		    counts.rejected);
	}
	acct_replay_free(r);
	free(seqs);
	return err;
}

static pf_err
open_sockets(acct_accountant *a, char *errbuf, size_t errlen)
{
	int rv;

	rv = nng_rep0_open(&a->rep);
	if (rv == 0)
		rv = nng_socket_set_size(a->rep, NNG_OPT_RECVMAXSZ, PF_MSG_MAX);
	if (rv == 0)
		rv = nng_listen(a->rep, a->cfg->accountant_url, NULL, 0);
	if (rv != 0) {
		snprintf(errbuf, errlen, "listen on PF_ACCOUNTANT_URL %s: %s",
		    a->cfg->accountant_url, nng_strerror(rv));
		return PF_ENET;
	}
	rv = nng_pub0_open(&a->pub);
	if (rv == 0)
		rv = nng_listen(a->pub, a->cfg->accountant_pub_url, NULL, 0);
	if (rv != 0) {
		snprintf(errbuf, errlen,
		    "listen on PF_ACCOUNTANT_PUB_URL %s: %s",
		    a->cfg->accountant_pub_url, nng_strerror(rv));
		return PF_ENET;
	}
	a->n_ctxs = PF_ACCT_CONTEXTS;
	a->ctxs = calloc(a->n_ctxs, sizeof(*a->ctxs));
	a->queue = calloc(a->n_ctxs, sizeof(*a->queue));
	if (a->ctxs == NULL || a->queue == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < a->n_ctxs; i++) {
		struct ctx *c = &a->ctxs[i];

		c->a = a;
		rv = nng_aio_alloc(&c->aio, ctx_cb, c);
		if (rv == 0)
			rv = nng_ctx_open(&c->ctx, a->rep);
		if (rv != 0) {
			snprintf(errbuf, errlen, "accountant context: %s",
			    nng_strerror(rv));
			return PF_ENET;
		}
	}
	return PF_OK;
}

static void
free_accountant(acct_accountant *a)
{
	for (size_t i = 0; a->ctxs != NULL && i < a->n_ctxs; i++) {
		if (a->ctxs[i].aio != NULL)
			nng_aio_stop(a->ctxs[i].aio);
	}
	nng_close(a->rep);
	nng_close(a->pub);
	for (size_t i = 0; a->ctxs != NULL && i < a->n_ctxs; i++) {
		if (a->ctxs[i].aio != NULL)
			nng_aio_free(a->ctxs[i].aio);
	}
	/* requests queued but never handled (start failed) */
	while (a->queue != NULL && a->q_len > 0) {
		struct item *it = &a->queue[a->q_head];

		pf_msg_free(it->msg);
		nng_msg_free(it->raw);
		a->q_head = (a->q_head + 1) % a->n_ctxs;
		a->q_len--;
	}
	free(a->ctxs);
	free(a->queue);
	pf_reclog_close(a->log);
	acct_lanes_free(a->lanes);
	acct_durable_free(a->dur);
	acct_ledger_free(a->ledger);
	acct_grants_free(a->grants);
	conn_close(a);
	pthread_cond_destroy(&a->end_cv);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

pf_err
acct_accountant_start(
    const pf_config *cfg, acct_accountant **ret, char *errbuf, size_t errlen)
{
	acct_accountant *a;
	pf_err err;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return PF_ENOMEM;
	a->cfg = cfg;
	a->batch = a->bufs[0].items;
	a->ev = a->bufs[0].ev;
	a->fl_batch = a->bufs[1].items;
	a->fl_ev = a->bufs[1].ev;
	a->rep = (nng_socket)NNG_SOCKET_INITIALIZER;
	a->pub = (nng_socket)NNG_SOCKET_INITIALIZER;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_cond_init(&a->end_cv, NULL);
	err = acct_grants_new(&a->grants);
	/* the grant pools live in memory only: a new epoch tells the
	 * ingresses to forget credit granted before this start */
	while (err == PF_OK && a->epoch == 0) {
		err = pf_random_bytes(&a->epoch, sizeof(a->epoch));
		if (err != PF_OK)
			snprintf(errbuf, errlen, "epoch: %s", pf_strerror(err));
	}
	if (err == PF_OK)
		err = db_ready(a, errbuf, errlen);
	if (err == PF_OK) {
		/* Take the directory first: a second accountant must not
		 * replay what the first is writing. */
		err = pf_reclog_open(
		    cfg->accountant_log_dir, ACCT_LOG_PREFIX, 0, &a->log);
		if (err != PF_OK)
			snprintf(errbuf, errlen, "event log %s: %s",
			    cfg->accountant_log_dir,
			    err == PF_EEXIST
			        ? "used by another running accountant"
			        : pf_strerror(err));
	}
	if (err == PF_OK)
		err = acct_durable_new(cfg->database_url, &a->dur);
	if (err == PF_OK)
		err = make_durable(a, 0, errbuf, errlen);
	if (err == PF_OK)
		err = acct_lanes_new(cfg->database_url, ACCT_LANES_DEFAULT, 1,
		    &a->lanes, errbuf, errlen);
	if (err == PF_OK)
		err = open_sockets(a, errbuf, errlen);
	if (err == PF_OK) {
		if (pthread_create(&a->thread, NULL, actor_main, a) != 0) {
			snprintf(errbuf, errlen, "cannot start the actor");
			err = PF_ENOMEM;
		} else {
			a->thread_started = 1;
		}
	}
	if (err != PF_OK) {
		free_accountant(a);
		return err;
	}
	for (size_t i = 0; i < a->n_ctxs; i++)
		nng_ctx_recv(a->ctxs[i].ctx, a->ctxs[i].aio);
	pf_info("PF-ACCT-READY", "url=%s pub=%s log=%s", cfg->accountant_url,
	    cfg->accountant_pub_url, cfg->accountant_log_dir);
	*ret = a;
	return PF_OK;
}

/* Cancels the statements the lanes, the marker and the actor's
 * connection run. */
static void
cancel_statements(acct_accountant *a)
{
	acct_lanes_cancel(a->lanes);
	acct_durable_cancel(a->dur);
	pthread_mutex_lock(&a->mu);
	pf_pgcancel_send(a->conn_cancel);
	pthread_mutex_unlock(&a->mu);
}

/*
 * Waits for the actor thread to end.  A statement waiting for a lock
 * (a transaction left open on tokens, a LOCK TABLE) would hold the stop
 * for as long as the lock is held: past PF_ACCT_STOP_GRACE_MS the waits
 * are cancelled.  Nothing is lost: what did not commit is in the event
 * log, whose checkpoint stays behind, and is replayed at the next start.
 */
static void
wait_actor(acct_accountant *a)
{
	struct timespec ts;
	int cancelled = 0;

	pf_deadline_ts(CLOCK_REALTIME, PF_ACCT_STOP_GRACE_MS, &ts);
	pthread_mutex_lock(&a->mu);
	while (!a->ended) {
		if (pthread_cond_timedwait(&a->end_cv, &a->mu, &ts)
		    != ETIMEDOUT)
			continue;
		a->gave_up = 1;
		pthread_mutex_unlock(&a->mu);
		if (!cancelled)
			pf_warn("PF-ACCT-STOP-CANCEL",
			    "grace_ms=%u msg=\"cancelling the statements still "
			    "running; the event log replays them at start\"",
			    PF_ACCT_STOP_GRACE_MS);
		cancelled = 1;
		cancel_statements(a);
		pf_deadline_ts(CLOCK_REALTIME, STOP_CANCEL_EVERY_MS, &ts);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
}

void
acct_accountant_stop(acct_accountant *a)
{
	if (a == NULL)
		return;
	/* No new requests: close the listener's pipes by stopping receives
	 * only after the queue is drained by the actor. */
	pthread_mutex_lock(&a->mu);
	a->stopping = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->thread_started) {
		wait_actor(a);
		pthread_join(a->thread, NULL);
	}
	free_accountant(a);
}
