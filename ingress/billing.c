/*
 * billing.c -- holds against granted credit, the usage spool, and the
 * accountant's sockets (see billing.h).
 *
 * Locking: one mutex (b->mu) guards every table and list below.  The
 * billing thread does the NNG sends without it; NNG callbacks take it
 * briefly.  Spool I/O runs under b->spool_mu, on the billing thread or on
 * the thread that hands over a batch of ends (ing_billing_end_spool:
 * serve's HTTP loop; ing_billing_end_flush: split's NNG callbacks, a few
 * ends at a time).  A request waiting for
 * credit is an ing_bill_wait queued on its credit (oldest first).  Credit
 * coming in (a grant answer, a request ending) admits the oldest waits it
 * covers and resumes only those (serve_waits_locked); an answer against
 * them, the billing thread's tick (their deadline) or
 * ing_billing_close_waits ends the others and resumes their connections
 * (b->mu, then the wait's own lock).  A wait leaves the queue only
 * through wait_unlink_locked, and every queued wait has an ask queued or
 * in flight (ask_more), so none is left parked.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/nngdial.h"
#include "common/reclog.h"
#include "common/thread.h"
#include "ingress/billing.h"
#include "ingress/credit.h"
#include "ingress/relay.h"

#define SPOOL_PREFIX "spool"
#define BUCKETS 4096u        /* power of two */
#define TICK_MS 200          /* thread wakes at least this often */
#define ROTATE_IDLE_MS 1000  /* rotate an all-acked segment after */
#define REPAIR_MS 1000       /* a broken spool: try a new segment after */
#define STOP_WAIT_STEP_MS 20 /* stop: poll for acks */
#define LOST_EXTRA_MS 5000   /* past the sweeper before we decide */
/* usage events wait up to this long for others to share a message to
 * the accountant, unless SEND_NOW_MIN are ready (acks come later, so the
 * clients never wait for it).  Each message is a transaction and a log
 * fsync at the accountant: 5 ms and 32 cost PostgreSQL 54 us of CPU per
 * request at one connection on the bench VM, 20 ms and 128 cost 31 (and
 * the gateway 107 -> 87 us) */
#define SEND_DELAY_MS 20
#define SEND_NOW_MIN 128u
/* The spool is fdatasync'ed only for events still unacked
 * cfg->spool_sync_after_ms (PF_SPOOL_SYNC_AFTER_MS, 100) after their
 * write: an acked event is in the accountant's event log, fsync'ed there
 * before its ack, so a healthy accountant leaves the spool nothing to
 * sync (its fdatasync was a second fsync of the same events, and in
 * serve of the same disk).  A SIGKILL is what the spool must survive,
 * and the write(2) before the clients see their requests end does that;
 * a machine crash can lose the events of the last sync_after_ms that no
 * accountant had yet.  At most one fdatasync per SYNC_LINGER_MS (an
 * accountant down, or sync_after_ms 0). */
#define SYNC_LINGER_MS 10
/* ing_billing_end_flush spools up to this many ends itself (low load:
 * the answers wait for it); more go to the billing thread, which batches
 * them with later ones and keeps the calling NNG callback free (an HTTP
 * loop spools all of its ends itself: ing_billing_end_spool) */
#define FLUSH_INLINE_MAX 4u
/* ended notes and acked events kept for reuse (each list), so a request
 * does not cost the allocator two more round trips: 64 x (72 + 352)
 * bytes (27 KiB) at most */
#define SPARE_MAX 64u

/* how a grant wait ended (ing_bill_wait._why); WAIT_GRANTED: its
 * request was admitted while it was parked */
enum { WAIT_NONE, WAIT_ANSWER, WAIT_TIMEOUT, WAIT_CLOSED, WAIT_GRANTED };

typedef struct credit {
	int64_t user_id, token_id;
	ing_credit c;
	int64_t last_ms;       /* last admit or settle */
	int64_t renewed_ms;    /* last grant or renewal sent */
	int64_t deny_until_ms; /* "no credit" trusted until then */
	int32_t status;        /* pf_err of the last answer */
	uint64_t gen;          /* answers received */
	int asking;            /* a grant.request queued or in flight */
	int64_t ask_e;         /* the estimate of the admission that asked */
	int64_t ahead_at_ms;   /* no ask ahead (ask_ahead_locked) before */
	int64_t ask_need;      /* the oldest wait's shortfall when sent */
	int busy; /* slots, open requests and waits referring to it */
	int queued;
	/* admissions waiting for credit, oldest first, and the sum of their
	 * holds: credit coming in admits the oldest it covers and wakes only
	 * those, and the next ask covers all the others (a burst parked on
	 * one user is served in about two accountant round trips, and no
	 * waiter is woken just to park again) */
	ing_bill_wait *waits, *waits_tail;
	int64_t wait_holds;
	struct credit *next;   /* bucket chain */
	struct credit *q_next; /* ask queue */
} credit;

typedef struct open_req {
	uint8_t id[PF_ID_LEN];
	credit *cr;
	int64_t hold;
	pf_price price;
	int64_t ratio_ppm;
	int64_t prompt_est;
	int64_t started_ms, deadline_ms;
	uint8_t stream;
	ing_flight *flight; /* tracked: told when the event is durable */
	struct open_req *next;
	/* NUL-terminated, at most PF_MODEL_NAME_MAX bytes; allocated to its
	 * length (a stream holds its open_req for minutes) */
	char model[];
} open_req;

/* A relay.end handed over by the reply thread. */
typedef struct end_note {
	uint8_t id[PF_ID_LEN];
	uint32_t seq;
	int32_t reason;
	int64_t channel_id;
	pf_usage_tokens usage;
	struct end_note *next;
} end_note;

/* A usage event spooled and not yet acked. */
typedef struct pending {
	pf_usage u; /* u.model points into model */
	char model[PF_MODEL_NAME_MAX + 1];
	uint64_t seq; /* spool segment */
	int64_t next_try_ms;
	int64_t ready_ms; /* spooled since */
	uint64_t wgen;    /* the spool write that holds it, 0: none to
	                   * sync (read at start, or kept in memory) */
	int inflight;
	int retrying;       /* a send failed: waits for next_try_ms */
	ing_flight *flight; /* until spooled: told ing_flight_billed */
	struct pending *prev, *next;
} pending;

typedef struct seg_count {
	uint64_t seq;
	uint64_t unacked;
} seg_count;

enum slot_kind { SLOT_FREE, SLOT_GRANT, SLOT_RELEASE, SLOT_USAGE };

typedef struct slot {
	ing_billing *b;
	nng_ctx ctx;
	nng_aio *aio;
	int kind;
	int receiving;
	credit *cr;
	int64_t amount;
	int renewal; /* a grant.request of amount 0 that only renews */
	int64_t sent_ms;
	pending *ev[PF_USAGE_BATCH_MAX];
	uint32_t n_ev;
	pf_msg *reply; /* usage answers, for the thread */
	int failed;
	struct slot *next; /* free or done list */
} slot;

struct ing_billing {
	const pf_config *cfg;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the thread */
	int waits_closed;    /* ing_billing_close_waits was called */
	pthread_t thread;
	int thread_started;
	int stop;
	nng_socket req, sub;
	int req_open, sub_open;
	nng_aio *sub_aio;
	slot slots[PF_BILLING_CONTEXTS];
	slot *free_slots;
	slot *done_slots;
	int64_t down_until_ms; /* the accountant did not answer a grant */
	uint64_t acct_epoch;   /* of the accountant's last grant.reply */
	credit *credits[BUCKETS];
	size_t n_credits;
	credit *ask_head, *ask_tail;
	open_req *open[BUCKETS];
	end_note *ends_head, *ends_tail;
	size_t n_ends;        /* queued */
	end_note *spare_ends; /* for reuse, through next */
	size_t n_spare_ends;
	pending *spare_pend; /* for reuse, through next */
	size_t n_spare_pend;
	pending *pend_head, *pend_tail; /* spooled, in write order */
	size_t n_pending;
	/* the first pending never sent: those before it are in flight or
	 * retrying, so send_usage need not walk them */
	pending *send_from;
	size_t n_fresh;      /* from send_from on, not in flight */
	size_t n_retry;      /* retrying */
	int64_t send_due_ms; /* send_usage held events back until then */
	/* the syncer thread: fdatasync of the spool for events that stay
	 * unacked (spool_sync_after_ms), off the billing thread */
	pthread_t syncer;
	int syncer_started;
	pthread_cond_t sync_wake;
	int sync_idle;        /* it waits with no deadline */
	uint64_t wgen;        /* spool writes so far */
	uint64_t synced_gen;  /* the writes an fdatasync covers */
	pending *sync_from;   /* the oldest pending with wgen > synced_gen
	                       * (pending list order is write order) */
	int64_t last_sync_ms; /* the last fdatasync ended */
	int sync_fd;          /* dup of the newest segment */
	uint64_t sync_seq;    /* ... whose sequence number */
	int sync_busy;        /* the fd a fdatasync runs on, -1: none */
	int sync_retired;     /* sync_busy replaced meanwhile: the syncer
	                       * closes it, -1: none */
	/* thread only */
	pf_reclog *spool;
	seg_count *segs;
	size_t n_segs, cap_segs;
	int64_t last_append_ms;
	int64_t repair_ms; /* last pf_reclog_repair of a broken spool */
	/* guards the spool, segs, spool_enc and last_append_ms: events are
	 * spooled by whichever thread hands over a batch of ends (the
	 * worker's in serve, see ing_billing_end_flush) or by the billing
	 * thread; taken before b->mu, never while holding it */
	pthread_mutex_t spool_mu;
	pf_buf spool_enc;
	pf_buf enc;
	ing_billing_stats st;
};

static void
deadline_ts(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

static unsigned
user_bucket(int64_t user_id)
{
	uint64_t h = (uint64_t)user_id * 0x9e3779b97f4a7c15ull;

	return (unsigned)(h >> 40) & (BUCKETS - 1);
}

static unsigned
id_bucket(const uint8_t id[PF_ID_LEN])
{
	return pf_id_hash(id) & (BUCKETS - 1);
}

/* --- estimates --------------------------------------------------------- */

pf_err
ing_billing_estimate(const pf_price *price, int64_t ratio_ppm,
    int64_t quota_per_unit, int64_t prompt_tokens, int64_t completion_cap,
    int64_t *ret)
{
	return pf_money_cost(price, prompt_tokens, completion_cap, 0, ratio_ppm,
	    quota_per_unit, ret);
}

int64_t
ing_billing_prompt_tokens(const char *body, size_t len)
{
	uint64_t units = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		if (c < 0x80)
			units += 1;
		else if ((c & 0xc0) != 0x80)
			units += 4;
	}
	return (int64_t)((units + 3) / 4);
}

/* --- tables (b->mu held) ----------------------------------------------- */

static credit *
credit_find(ing_billing *b, int64_t user_id, int64_t token_id)
{
	for (credit *c = b->credits[user_bucket(user_id)]; c != NULL;
	     c = c->next) {
		if (c->user_id == user_id && c->token_id == token_id)
			return c;
	}
	return NULL;
}

static credit *
credit_get(ing_billing *b, int64_t user_id, int64_t token_id)
{
	credit *c = credit_find(b, user_id, token_id);
	unsigned k = user_bucket(user_id);

	if (c != NULL || b->n_credits >= PF_BILLING_CREDITS_MAX)
		return c;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->user_id = user_id;
	c->token_id = token_id;
	c->next = b->credits[k];
	b->credits[k] = c;
	b->n_credits++;
	return c;
}

static open_req *
open_take(ing_billing *b, const uint8_t id[PF_ID_LEN])
{
	for (open_req **pp = &b->open[id_bucket(id)]; *pp != NULL;
	     pp = &(*pp)->next) {
		open_req *o = *pp;
		if (memcmp(o->id, id, PF_ID_LEN) == 0) {
			*pp = o->next;
			b->st.open--;
			return o;
		}
	}
	return NULL;
}

static int
open_has(ing_billing *b, const uint8_t id[PF_ID_LEN])
{
	for (open_req *o = b->open[id_bucket(id)]; o != NULL; o = o->next) {
		if (memcmp(o->id, id, PF_ID_LEN) == 0)
			return 1;
	}
	return 0;
}

static void
ask_queue(ing_billing *b, credit *c)
{
	if (c->queued)
		return;
	c->queued = 1;
	c->q_next = NULL;
	if (b->ask_tail != NULL)
		b->ask_tail->q_next = c;
	else
		b->ask_head = c;
	b->ask_tail = c;
	pthread_cond_signal(&b->wake);
}

static void
pending_link(ing_billing *b, pending *p)
{
	p->next = NULL;
	p->prev = b->pend_tail;
	if (b->pend_tail != NULL)
		b->pend_tail->next = p;
	else
		b->pend_head = p;
	b->pend_tail = p;
	b->n_pending++;
	p->ready_ms = pf_clock_ms();
	if (b->send_from == NULL)
		b->send_from = p;
	b->n_fresh++;
	if (b->sync_from == NULL && p->wgen > b->synced_gen)
		b->sync_from = p;
}

/* sync_from_next moves b->sync_from past p and every event after it
 * that a sync covers (b->mu held). */
static void
sync_from_next(ing_billing *b, pending *p)
{
	p = p->next;
	while (p != NULL && p->wgen <= b->synced_gen)
		p = p->next;
	b->sync_from = p;
}

static void
pending_unlink(ing_billing *b, pending *p)
{
	if (b->send_from == p)
		b->send_from = p->next;
	if (b->sync_from == p)
		sync_from_next(b, p);
	if (p->retrying)
		b->n_retry--;
	else if (!p->inflight)
		b->n_fresh--;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		b->pend_head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		b->pend_tail = p->prev;
	b->n_pending--;
}

/* refusal says whether a grant.reply status means "no credit for this
 * (user, token)" rather than "cannot tell now". */
static int
refusal(int32_t status)
{
	return status == PF_OK || status == PF_ENOTFOUND || status == PF_EDENIED
	    || status == PF_EINVAL;
}

/* --- waits for a grant (b->mu held) ------------------------------------- */

/* wait_unlink_locked takes w off its credit's list; w->_req stays with
 * the caller. */
static void
wait_unlink_locked(ing_bill_wait *w)
{
	credit *c = w->_cr;

	if (w->_prev != NULL)
		w->_prev->_next = w->_next;
	else
		c->waits = w->_next;
	if (w->_next != NULL)
		w->_next->_prev = w->_prev;
	else
		c->waits_tail = w->_prev;
	w->_prev = w->_next = NULL;
	w->_listed = 0;
	w->_cr = NULL;
	c->wait_holds -= w->_hold;
	if (c->waits == NULL)
		c->wait_holds = 0; /* also after a saturated sum */
	w->_hold = 0;
	c->busy--;
}

/* wait_end_locked takes w off its credit's list, notes why (and the
 * answer's status) and resumes its connection when parked. */
static void
wait_end_locked(ing_bill_wait *w, int why)
{
	w->_status = ((credit *)w->_cr)->status;
	w->_why = why;
	wait_unlink_locked(w);
	free(w->_req);
	w->_req = NULL;
	ing_park_wake(&w->park);
}

/* open_add_locked makes o an open request on c (the caller took the
 * busy count o keeps). */
static void
open_add_locked(ing_billing *b, credit *c, open_req *o, int64_t now)
{
	unsigned k = id_bucket(o->id);

	c->last_ms = now;
	o->cr = c;
	o->next = b->open[k];
	b->open[k] = o;
	b->st.open++;
	b->st.admitted++;
}

/* serve_waits_locked admits the oldest waits on c that its free credit
 * covers, in order, and wakes them; it stops at the first one not
 * covered, which keeps its place.  Called wherever c's credit grows. */
static void
serve_waits_locked(ing_billing *b, credit *c, int64_t now)
{
	ing_credit_lapse(&c->c, now);
	while (c->waits != NULL) {
		ing_bill_wait *w = c->waits;
		open_req *o = w->_req;
		if (o->hold > 0 && !ing_credit_try_hold(&c->c, o->hold))
			break;
		wait_unlink_locked(w);
		w->_req = NULL;
		c->busy++; /* now the open request's */
		open_add_locked(b, c, o, now);
		memcpy(w->_id, o->id, PF_ID_LEN);
		w->_why = WAIT_GRANTED;
		ing_park_wake(&w->park);
	}
}

/* open_drop_locked gives back the hold of open request o, which never
 * reached a worker (no usage event), and frees it. */
static void
open_drop_locked(ing_billing *b, open_req *o, int64_t now)
{
	credit *c = o->cr;

	ing_credit_settle(&c->c, o->hold, 0);
	if (c->waits != NULL)
		serve_waits_locked(b, c, now);
	c->busy--;
	ing_flight_unref(o->flight);
	free(o);
}

/* waits_end_locked ends the waits on c; with now >= 0 only those whose
 * deadline passed (as timeouts). */
static void
waits_end_locked(credit *c, int why, int64_t now)
{
	for (ing_bill_wait *w = c->waits, *next; w != NULL; w = next) {
		next = w->_next;
		if (now < 0 || w->_deadline_ms <= now)
			wait_end_locked(w, why);
	}
}

static void
all_waits_end_locked(ing_billing *b)
{
	for (size_t i = 0; i < BUCKETS; i++)
		for (credit *c = b->credits[i]; c != NULL; c = c->next)
			waits_end_locked(c, WAIT_CLOSED, -1);
}

void
ing_bill_wait_init(ing_bill_wait *w, void *conn, void (*resume)(void *conn))
{
	memset(w, 0, sizeof(*w));
	ing_park_init(&w->park, conn, resume);
}

int
ing_bill_wait_park(ing_bill_wait *w, void (*suspend)(void *conn))
{
	return ing_park_suspend(&w->park, suspend);
}

void
ing_bill_wait_fini(ing_billing *b, ing_bill_wait *w)
{
	if (b != NULL) {
		pthread_mutex_lock(&b->mu);
		if (w->_listed) {
			wait_unlink_locked(w);
			free(w->_req);
			w->_req = NULL;
		} else if (w->_why == WAIT_GRANTED) {
			/* admitted while parked; the connection went away
			 * before it was taken up */
			open_req *o = open_take(b, w->_id);
			w->_why = WAIT_NONE;
			if (o != NULL)
				open_drop_locked(b, o, pf_clock_ms());
		}
		pthread_mutex_unlock(&b->mu);
	}
	ing_park_fini(&w->park);
}

void
ing_billing_close_waits(ing_billing *b)
{
	pthread_mutex_lock(&b->mu);
	b->waits_closed = 1;
	all_waits_end_locked(b);
	pthread_mutex_unlock(&b->mu);
}

/* --- admission (HTTP threads) ------------------------------------------ */

/* wait_verdict turns how w's last wait ended into the admission's error:
 * PF_OK when it should try again (an answer that decided). */
static pf_err
wait_verdict(ing_bill_wait *w)
{
	int why = w->_why;

	w->_why = WAIT_NONE;
	if (why == WAIT_CLOSED)
		return PF_ECLOSED;
	if (why == WAIT_TIMEOUT)
		return PF_EAGAIN;
	if (why == WAIT_ANSWER && !refusal(w->_status))
		return PF_EAGAIN; /* no answer, or no verdict */
	return PF_OK;
}

/* ask_more queues a grant.request for c unless one is queued or in
 * flight; e is the estimate of the admission that asks (b->mu held).
 * The amount is set when it is sent (ask_amount_locked). */
static void
ask_more(ing_billing *b, credit *c, int64_t e)
{
	if (c->asking)
		return;
	c->asking = 1;
	c->ask_e = e;
	b->st.asks++;
	ask_queue(b, c);
}

/* ahead_locked returns the credit to ask for beyond what the waits on c
 * need: as much as the requests open on it hold now, at least
 * PF_BILLING_GRANT_AHEAD and at most PF_BILLING_GRANT_AHEAD_MAX
 * estimates e.  An ask only when an admission found the credit short,
 * for 5 estimates, parked that admission and every later one on the
 * credit for an accountant round trip: at 17,000 requests/s on one
 * token (64 connections) the credit ran out every ~60 ms and ~2.5 % of
 * the requests waited (bench/results/2026-11-27-vm-grant-ahead.md). */
static int64_t
ahead_locked(const credit *c, int64_t e)
{
	int64_t ahead, cap;

	_Static_assert(PF_BILLING_GRANT_AHEAD < PF_BILLING_GRANT_AHEAD_MAX,
	    "e * PF_BILLING_GRANT_AHEAD fits when the cap's product does");
	if (e < 0
	    || __builtin_mul_overflow(e, PF_BILLING_GRANT_AHEAD_MAX, &cap))
		return 0;
	ahead = e * PF_BILLING_GRANT_AHEAD;
	if (c->c.held > ahead)
		ahead = c->c.held;
	return ahead < cap ? ahead : cap;
}

/* ask_amount_locked returns what the waits on c lack, plus what
 * ahead_locked asks for, and notes the oldest wait's shortfall in
 * c->ask_need (a refusal granting less than that denies them).  With no
 * wait left: what ask_e lacks, plus as much ahead. */
static int64_t
ask_amount_locked(credit *c)
{
	int64_t first = c->waits != NULL ? c->waits->_hold : c->ask_e;
	int64_t all = c->waits != NULL ? c->wait_holds : c->ask_e;
	int64_t need = ing_credit_shortfall(&c->c, all);
	int64_t amount;

	c->ask_need = ing_credit_shortfall(&c->c, first);
	if (__builtin_add_overflow(need, ahead_locked(c, c->ask_e), &amount))
		amount = need;
	return amount;
}

/* ask_ahead_locked asks for more credit for c, after an admission of
 * estimate e, once its free credit is below half of what ahead_locked
 * would ask for: the answer comes back before the credit runs short, so
 * no admission waits for it.  Not while an ask is out, a wait is listed
 * (its ask covers it), the accountant is down or refused, or within
 * PF_BILLING_DENY_MS of an answer that granted less than asked (the
 * user's balance is running out: the admissions that find no credit ask
 * for themselves). */
static void
ask_ahead_locked(ing_billing *b, credit *c, int64_t e, int64_t now)
{
	if (e <= 0 || c->asking || c->waits != NULL || now < c->ahead_at_ms
	    || b->down_until_ms > now || c->deny_until_ms > now)
		return;
	if (ing_credit_free_amount(&c->c) >= ahead_locked(c, e) / 2)
		return;
	ask_more(b, c, e);
}

/* wait_list puts w, waiting to open o, last on c's wait list; w keeps c
 * busy and owns o while listed (b->mu held). */
static void
wait_list(credit *c, ing_bill_wait *w, open_req *o)
{
	ing_park_rearm(&w->park);
	w->_cr = c;
	w->_req = o;
	w->_hold = o->hold;
	w->_listed = 1;
	w->_next = NULL;
	w->_prev = c->waits_tail;
	if (c->waits_tail != NULL)
		c->waits_tail->_next = w;
	else
		c->waits = w;
	c->waits_tail = w;
	if (__builtin_add_overflow(c->wait_holds, o->hold, &c->wait_holds))
		c->wait_holds = INT64_MAX;
}

pf_err
ing_billing_admit(ing_billing *b, const ing_bill_ticket *t, ing_bill_wait *w)
{
	int64_t now = pf_clock_ms();
	pf_err err = PF_OK;
	credit *c = NULL;
	int64_t deadline = 0; /* of the whole admission */
	size_t model_len = strnlen(t->model, PF_MODEL_NAME_MAX);
	open_req *o;

	o = pf_zalloc(sizeof(*o) + model_len + 1);
	if (o == NULL)
		return PF_ENOMEM;
	memcpy(o->id, t->id, PF_ID_LEN);
	memcpy(o->model, t->model, model_len);
	o->price = t->price;
	o->ratio_ppm = t->ratio_ppm;
	o->prompt_est = t->prompt_estimate;
	o->started_ms = t->started_ms;
	o->deadline_ms = t->deadline_ms;
	o->stream = (uint8_t)(t->stream != 0);
	o->hold = t->estimate > 0 ? t->estimate : 0;

	pthread_mutex_lock(&b->mu);
	if (w == NULL) {
		/* no wait yet: the admission starts now */
		deadline = now + PF_BILLING_GRANT_WAIT_MS;
	} else if (w->_listed) { /* still waiting: nothing new to tell */
		pthread_mutex_unlock(&b->mu);
		free(o);
		return PF_EPENDING;
	} else if (w->_why == WAIT_GRANTED) { /* admitted while parked */
		w->_why = WAIT_NONE;
		w->_deadline_ms = 0;
		pthread_mutex_unlock(&b->mu);
		free(o);
		return PF_OK;
	}
	if (b->stop || b->waits_closed) {
		err = PF_ECLOSED;
		goto out;
	}
	if (w != NULL) {
		err = wait_verdict(w);
		if (err != PF_OK)
			goto out;
	}
	if (open_has(b, t->id)) {
		err = PF_EEXIST;
		goto out;
	}
	/* the accountant has not acked for long: stop taking more */
	if (b->n_pending >= PF_BILLING_PENDING_MAX) {
		err = PF_EAGAIN;
		goto out;
	}
	c = credit_get(b, t->user_id, t->token_id);
	if (c == NULL) {
		err = PF_ENOMEM;
		goto out;
	}
	c->busy++; /* kept by the open request or the wait, else dropped */
	if (w != NULL) {
		if (w->_deadline_ms == 0)
			w->_deadline_ms = now + PF_BILLING_GRANT_WAIT_MS;
		deadline = w->_deadline_ms;
	}
	ing_credit_lapse(&c->c, now);
	/* first come, first served: behind others waiting, wait too */
	if (o->hold > 0
	    && (c->waits != NULL || !ing_credit_try_hold(&c->c, o->hold))) {
		if (c->deny_until_ms > now) {
			err = PF_EDENIED;
			goto out;
		}
		if (b->down_until_ms > now || now >= deadline) {
			err = PF_EAGAIN;
			goto out;
		}
		if (w == NULL) { /* the caller comes back with a wait */
			err = PF_EPENDING;
			goto out;
		}
		/* when asked already, the next ask covers this one too */
		wait_list(c, w, o);
		b->st.waits++;
		ask_more(b, c, o->hold);
		pthread_mutex_unlock(&b->mu);
		return PF_EPENDING;
	}
	open_add_locked(b, c, o, now);
	ask_ahead_locked(b, c, o->hold, now);
	c = NULL;
	o = NULL;
out:
	if (w != NULL)
		w->_deadline_ms = 0;
	if (c != NULL)
		c->busy--;
	if (err == PF_EDENIED)
		b->st.denied++;
	else if (err == PF_EAGAIN)
		b->st.unavailable++;
	pthread_mutex_unlock(&b->mu);
	free(o);
	return err;
}

int
ing_billing_track(
    ing_billing *b, const uint8_t id[PF_ID_LEN], struct ing_flight *f)
{
	int found = 0;

	pthread_mutex_lock(&b->mu);
	for (open_req *o = b->open[id_bucket(id)]; o != NULL; o = o->next) {
		if (memcmp(o->id, id, PF_ID_LEN) == 0 && o->flight == NULL) {
			o->flight = ing_flight_ref(f);
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
	return found;
}

void
ing_billing_abort(ing_billing *b, const uint8_t id[PF_ID_LEN])
{
	open_req *o;

	pthread_mutex_lock(&b->mu);
	o = open_take(b, id);
	if (o != NULL)
		open_drop_locked(b, o, pf_clock_ms());
	pthread_mutex_unlock(&b->mu);
}

static size_t drain_ends(ing_billing *b);

/* end_add queues e for the thread, waking it when wake is set. */
static void
end_add(ing_billing *b, const pf_relay_end *e, int wake)
{
	end_note *n;

	pthread_mutex_lock(&b->mu);
	n = b->spare_ends;
	if (n != NULL) {
		b->spare_ends = n->next;
		b->n_spare_ends--;
	} else {
		pthread_mutex_unlock(&b->mu);
		n = malloc(sizeof(*n));
		if (n == NULL)
			return; /* settled as worker_lost after the deadline */
		pthread_mutex_lock(&b->mu);
	}
	memset(n, 0, sizeof(*n));
	memcpy(n->id, e->id, PF_ID_LEN);
	n->seq = e->seq;
	n->reason = e->reason;
	n->channel_id = e->channel_id;
	n->usage = e->usage;
	if (b->ends_tail != NULL)
		b->ends_tail->next = n;
	else
		b->ends_head = n;
	b->ends_tail = n;
	b->n_ends++;
	pthread_mutex_unlock(&b->mu);
	if (wake)
		pthread_cond_signal(&b->wake);
}

void
ing_billing_end_cb(void *arg, const pf_relay_end *e)
{
	end_add(arg, e, 1);
}

void
ing_billing_end_later(void *arg, const pf_relay_end *e)
{
	end_add(arg, e, 0);
}

void
ing_billing_end_flush(void *arg)
{
	ing_billing *b = arg;
	size_t n;

	pthread_mutex_lock(&b->mu);
	n = b->n_ends;
	pthread_mutex_unlock(&b->mu);
	if (n > FLUSH_INLINE_MAX)
		pthread_cond_signal(&b->wake);
	/* a few: here, not on the billing thread: the answers wait for the
	 * spool write, and a hand-over adds a thread wake-up to each */
	if (n > 0 && n <= FLUSH_INLINE_MAX)
		(void)drain_ends(b);
}

void
ing_billing_end_spool(void *arg)
{
	(void)drain_ends(arg);
}

void
ing_billing_get_stats(ing_billing *b, ing_billing_stats *ret)
{
	pthread_mutex_lock(&b->mu);
	*ret = b->st;
	ret->pending = b->n_pending;
	pthread_mutex_unlock(&b->mu);
}

/* --- NNG callbacks ------------------------------------------------------ */

/* slot_done_locked hands s to the billing thread; the caller signals
 * b->wake after its unlock.  Signalled under b->mu, the woken thread
 * only blocks on it, and when the wake-up preempts the signalling
 * thread the lock stays held until that thread runs again: an HTTP
 * loop admitting a request then waits for it (perf showed 0.1-1 ms
 * waits in admit at one connection). */
static void
slot_done_locked(ing_billing *b, slot *s)
{
	s->next = b->done_slots;
	b->done_slots = s;
}

/* epoch_check drops every granted credit when a grant.reply shows the
 * accountant restarted (a new epoch: its pools are gone); holds stay
 * (b->mu held). */
static void
epoch_check(ing_billing *b, const pf_msg *m)
{
	if (m == NULL
	    || !ing_credit_epoch_changed(
	        &b->acct_epoch, m->u.grant_reply.epoch))
		return;
	for (size_t i = 0; i < BUCKETS; i++)
		for (credit *c = b->credits[i]; c != NULL; c = c->next)
			ing_credit_forget(&c->c);
}

/* grant_answer applies a grant.request's answer (b->mu held). */
static void
grant_answer(ing_billing *b, slot *s, const pf_msg *m)
{
	credit *c = s->cr;
	int64_t now = pf_clock_ms();
	int64_t expires = s->sent_ms + PF_ACCT_GRANT_TTL_MS;
	int64_t g = 0;

	c->busy--;
	epoch_check(b, m);
	if (s->renewal) {
		if (m != NULL && m->u.grant_reply.status == PF_OK)
			ing_credit_renewed(&c->c, expires);
		return;
	}
	c->asking = 0;
	c->gen++;
	b->st.answers++;
	if (m == NULL) {
		c->status = PF_ENET;
		b->down_until_ms = now + PF_BILLING_RETRY_MS;
	} else {
		const pf_grant_reply *r = &m->u.grant_reply;
		g = r->status == PF_OK ? r->granted : 0;
		if (g < 0 || g > s->amount)
			g = 0;
		c->status = r->status;
		ing_credit_grant(&c->c, g, expires);
		if (g < s->amount) /* no asking ahead for a while */
			c->ahead_at_ms = now + PF_BILLING_DENY_MS;
		/* no credit, or no such user/token: refused for a while; a
		 * database error is the accountant's trouble, not a verdict */
		if (refusal(r->status) && g < c->ask_need)
			c->deny_until_ms = now + PF_BILLING_DENY_MS;
		b->down_until_ms = 0;
	}
	serve_waits_locked(b, c, now);
	if (c->waits == NULL)
		return;
	/* the rest wait for the next ask, unless the answer decided
	 * against them (no credit, or no verdict) or gave nothing */
	if (c->status != PF_OK || c->deny_until_ms > now || g <= 0)
		waits_end_locked(c, WAIT_ANSWER, -1);
	else
		ask_more(b, c, c->waits->_hold);
}

static void
slot_cb(void *arg)
{
	slot *s = arg;
	ing_billing *b = s->b;
	int rv = nng_aio_result(s->aio);
	pf_msg *m = NULL;

	if (!s->receiving) {
		if (rv == 0) {
			s->receiving = 1;
			nng_aio_set_timeout(s->aio, PF_BILLING_TIMEOUT_MS);
			nng_ctx_recv(s->ctx, s->aio);
			return;
		}
		nng_msg_free(nng_aio_get_msg(s->aio));
		nng_aio_set_msg(s->aio, NULL);
	} else if (rv == 0) {
		nng_msg *nm = nng_aio_get_msg(s->aio);
		if (pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), &m)
		    != PF_OK)
			m = NULL;
		nng_msg_free(nm);
		nng_aio_set_msg(s->aio, NULL);
	}
	pthread_mutex_lock(&b->mu);
	if (s->kind == SLOT_GRANT) {
		if (m != NULL && m->kind != PF_MSG_GRANT_REPLY) {
			pf_msg_free(m);
			m = NULL;
		}
		grant_answer(b, s, m);
		pf_msg_free(m);
		m = NULL;
	} else if (s->kind == SLOT_RELEASE) {
		s->cr->busy--;
	}
	s->reply = m;
	s->failed = m == NULL;
	slot_done_locked(b, s);
	pthread_mutex_unlock(&b->mu);
	pthread_cond_signal(&b->wake);
}

static void
sub_cb(void *arg)
{
	ing_billing *b = arg;
	nng_msg *nm;
	pf_msg *m = NULL;

	if (nng_aio_result(b->sub_aio) != 0) {
		/* closed (stopping) or a transient error: stop reading on
		 * close only */
		if (nng_aio_result(b->sub_aio) == NNG_ECLOSED
		    || nng_aio_result(b->sub_aio) == NNG_ECANCELED)
			return;
		nng_recv_aio(b->sub, b->sub_aio);
		return;
	}
	nm = nng_aio_get_msg(b->sub_aio);
	if (pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), &m) == PF_OK
	    && m->kind == PF_MSG_BALANCE
	    && (m->u.balance.token_id != 0 || m->u.balance.quota > 0)) {
		int64_t uid = m->u.balance.user_id;
		pthread_mutex_lock(&b->mu);
		for (credit *c = b->credits[user_bucket(uid)]; c != NULL;
		     c = c->next) {
			if (c->user_id == uid
			    && (m->u.balance.token_id == 0
			        || m->u.balance.token_id == c->token_id))
				c->deny_until_ms = 0;
		}
		pthread_mutex_unlock(&b->mu);
	}
	pf_msg_free(m);
	nng_msg_free(nm);
	nng_recv_aio(b->sub, b->sub_aio);
}

/* --- sending (billing thread) ------------------------------------------ */

static slot *
slot_take_locked(ing_billing *b)
{
	slot *s = b->free_slots;

	if (s != NULL) {
		b->free_slots = s->next;
		s->next = NULL;
		s->receiving = 0;
		s->reply = NULL;
		s->failed = 0;
		s->n_ev = 0;
	}
	return s;
}

/* slot_send encodes m and sends it on s (b->mu NOT held).  Returns 0 when
 * the aio was started (its callback will complete the slot). */
static int
slot_send(ing_billing *b, slot *s, const pf_msg *m, uint32_t timeout_ms)
{
	nng_msg *nm = NULL;

	b->enc.len = 0;
	if (pf_msg_encode(m, &b->enc) != PF_OK)
		return -1;
	if (nng_msg_alloc(&nm, 0) != 0)
		return -1;
	if (nng_msg_append(nm, b->enc.data, b->enc.len) != 0) {
		nng_msg_free(nm);
		return -1;
	}
	s->sent_ms = pf_clock_ms();
	nng_aio_set_msg(s->aio, nm);
	nng_aio_set_timeout(s->aio, timeout_ms);
	nng_ctx_send(s->ctx, s->aio);
	return 0;
}

/* slot_fail completes a slot whose send could not start. */
static void
slot_fail(ing_billing *b, slot *s)
{
	pthread_mutex_lock(&b->mu);
	if (s->kind == SLOT_GRANT)
		grant_answer(b, s, NULL);
	else if (s->kind == SLOT_RELEASE)
		s->cr->busy--;
	s->failed = 1;
	slot_done_locked(b, s);
	pthread_mutex_unlock(&b->mu);
	pthread_cond_signal(&b->wake);
}

/* send_asks sends the queued grant requests (and renewals) it has slots
 * for. */
static void
send_asks(ing_billing *b)
{
	for (;;) {
		pf_msg m = { .kind = PF_MSG_GRANT_REQUEST };
		slot *s;
		credit *c;

		pthread_mutex_lock(&b->mu);
		c = b->ask_head;
		s = c != NULL ? slot_take_locked(b) : NULL;
		if (s == NULL) {
			pthread_mutex_unlock(&b->mu);
			return;
		}
		b->ask_head = c->q_next;
		if (b->ask_head == NULL)
			b->ask_tail = NULL;
		c->queued = 0;
		s->kind = SLOT_GRANT;
		s->cr = c;
		s->renewal = !c->asking;
		s->amount = c->asking ? ask_amount_locked(c) : 0;
		c->busy++;
		c->renewed_ms = pf_clock_ms();
		m.u.grant_request.corr = (uint64_t)(s - b->slots);
		m.u.grant_request.user_id = c->user_id;
		m.u.grant_request.token_id = c->token_id;
		m.u.grant_request.amount = s->amount;
		pthread_mutex_unlock(&b->mu);
		if (slot_send(b, s, &m, PF_BILLING_TIMEOUT_MS) != 0)
			slot_fail(b, s);
	}
}

/* send_release gives back amount of c's credit (best effort). */
static void
send_release(ing_billing *b, credit *c, int64_t amount)
{
	pf_msg m = { .kind = PF_MSG_GRANT_RELEASE };
	slot *s;

	pthread_mutex_lock(&b->mu);
	s = slot_take_locked(b);
	if (s != NULL) {
		s->kind = SLOT_RELEASE;
		s->cr = c;
		c->busy++;
	}
	pthread_mutex_unlock(&b->mu);
	if (s == NULL)
		return; /* the accountant's pool lapses instead */
	m.u.grant_release.user_id = c->user_id;
	m.u.grant_release.token_id = c->token_id;
	m.u.grant_release.amount = amount;
	if (slot_send(b, s, &m, PF_BILLING_TIMEOUT_MS) != 0)
		slot_fail(b, s);
}

/* send_usage sends the pending events that are due, up to
 * PF_USAGE_BATCH_MAX per message, while slots are free. */
static void
send_usage(ing_billing *b)
{
	pf_usage *batch = NULL;

	for (;;) {
		int64_t now = pf_clock_ms();
		pf_msg m;
		slot *s;

		pthread_mutex_lock(&b->mu);
		pending *p = b->n_retry > 0 ? b->pend_head : b->send_from;
		while (p != NULL && (p->inflight || p->next_try_ms > now))
			p = p->next;
		/* a fresh event waits a little for company */
		if (p != NULL && !p->retrying && b->n_fresh < SEND_NOW_MIN
		    && now - p->ready_ms < SEND_DELAY_MS) {
			b->send_due_ms = p->ready_ms + SEND_DELAY_MS;
			p = NULL;
		}
		s = p != NULL ? slot_take_locked(b) : NULL;
		if (s == NULL) {
			pthread_mutex_unlock(&b->mu);
			break;
		}
		s->kind = SLOT_USAGE;
		for (; p != NULL && s->n_ev < PF_USAGE_BATCH_MAX; p = p->next) {
			if (p->inflight || p->next_try_ms > now)
				continue;
			if (p->retrying) {
				p->retrying = 0;
				b->n_retry--;
			} else {
				b->n_fresh--;
			}
			p->inflight = 1;
			s->ev[s->n_ev++] = p;
		}
		while (b->send_from != NULL
		    && (b->send_from->inflight || b->send_from->retrying))
			b->send_from = b->send_from->next;
		pthread_mutex_unlock(&b->mu);
		/* the events stay put while in flight: only the thread frees
		 * them, after the answer */
		if (s->n_ev == 1) {
			m.kind = PF_MSG_USAGE;
			m.u.usage = s->ev[0]->u;
		} else {
			if (batch == NULL) {
				batch = malloc(
				    PF_USAGE_BATCH_MAX * sizeof(*batch));
				if (batch == NULL) {
					slot_fail(b, s);
					break;
				}
			}
			for (uint32_t i = 0; i < s->n_ev; i++)
				batch[i] = s->ev[i]->u;
			m.kind = PF_MSG_USAGE_BATCH;
			m.u.usage_batch.n_usages = s->n_ev;
			m.u.usage_batch.usages = batch;
		}
		if (slot_send(b, s, &m, PF_BILLING_TIMEOUT_MS) != 0) {
			slot_fail(b, s);
			break;
		}
	}
	free(batch);
}

/* --- the spool (billing thread) ---------------------------------------- */

static seg_count *
seg_find(ing_billing *b, uint64_t seq, int create)
{
	for (size_t i = 0; i < b->n_segs; i++) {
		if (b->segs[i].seq == seq)
			return &b->segs[i];
	}
	if (!create)
		return NULL;
	if (b->n_segs == b->cap_segs) {
		size_t nc = b->cap_segs ? b->cap_segs * 2 : 8;
		seg_count *nv = realloc(b->segs, nc * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		b->segs = nv;
		b->cap_segs = nc;
	}
	b->segs[b->n_segs] = (seg_count) { .seq = seq };
	return &b->segs[b->n_segs++];
}

/* seg_sweep removes every finished segment but the current one. */
static void
seg_sweep(ing_billing *b)
{
	uint64_t cur = pf_reclog_current_seq(b->spool);

	for (size_t i = 0; i < b->n_segs;) {
		seg_count *sc = &b->segs[i];
		if (sc->unacked > 0 || sc->seq == cur) {
			i++;
			continue;
		}
		pf_err err = pf_reclog_remove(b->spool, sc->seq);
		if (err != PF_OK && err != PF_ENOTFOUND)
			pf_warn("PF-SPOOL-REMOVE", "seq=%llu err=\"%s\"",
			    (unsigned long long)sc->seq, pf_strerror(err));
		b->segs[i] = b->segs[--b->n_segs];
	}
}

/* rotate_idle closes an all-acked current segment after a quiet second so
 * it can go too. */
/*
 * spool_repair_locked: a write or fdatasync of the spool failed (a full
 * disk, no descriptor free): the events since were kept in memory only.
 * At most every REPAIR_MS it tries a new segment, which makes the next
 * events durable again once the cause is gone.  Under spool_mu.
 */
static void
spool_repair_locked(ing_billing *b, int64_t now)
{
	if (pf_reclog_fileno(b->spool) >= 0 || now - b->repair_ms < REPAIR_MS)
		return;
	b->repair_ms = now;
	if (pf_reclog_repair(b->spool) == PF_OK)
		pf_warn("PF-SPOOL-REPAIRED", "seq=%llu",
		    (unsigned long long)pf_reclog_current_seq(b->spool));
}

static void
rotate_idle_locked(ing_billing *b, int64_t now)
{
	uint64_t cur;
	seg_count *sc;

	spool_repair_locked(b, now);
	cur = pf_reclog_current_seq(b->spool);
	sc = seg_find(b, cur, 0);
	if (pf_reclog_end(b->spool).off == 0 || (sc != NULL && sc->unacked > 0)
	    || now - b->last_append_ms < ROTATE_IDLE_MS
	    || now - b->repair_ms < REPAIR_MS)
		return;
	if (pf_reclog_rotate(b->spool) != PF_OK) {
		b->repair_ms = now; /* the next try in REPAIR_MS */
		pf_error("PF-SPOOL-IO", "what=rotate");
		return;
	}
	if (seg_find(b, cur, 1) == NULL)
		return;
	seg_sweep(b);
}

static void
rotate_idle(ing_billing *b, int64_t now)
{
	pthread_mutex_lock(&b->spool_mu);
	rotate_idle_locked(b, now);
	pthread_mutex_unlock(&b->spool_mu);
}

/* cost_of applies the billing policy (docs/billing.md): the worker's
 * usage (reported, or estimated over what it delivered; zero when the
 * upstream failed before any output); a stream the relay gave up on
 * without a relay.end (prompt 0 in its note) is billed its prompt
 * estimate + the completion estimate the relay had delivered when
 * output had started, a non-stream one nothing (its client got no
 * answer). */
static int64_t
cost_of(const ing_billing *b, const open_req *o, const end_note *n,
    pf_usage_tokens *ret_tokens)
{
	pf_usage_tokens t = n->usage;
	int64_t cost = 0;

	if (t.prompt < 0 || t.completion < 0 || t.cached < 0)
		t = (pf_usage_tokens) { 0 };
	if (n->reason == PF_END_WORKER_LOST && t.prompt == 0) {
		if (o->stream && n->seq > 0) {
			t.prompt = o->prompt_est;
			t.cached = 0;
			t.estimated = 1;
		} else {
			t = (pf_usage_tokens) { 0 };
		}
	}
	if ((t.prompt > 0 || t.completion > 0)
	    && pf_money_cost(&o->price, t.prompt, t.completion, t.cached,
	           o->ratio_ppm, b->cfg->quota_per_unit, &cost)
	        != PF_OK)
		cost = 0;
	*ret_tokens = t;
	return cost;
}

/* settle turns an end into a pending usage event (b->mu held). */
static pending *
settle_locked(ing_billing *b, const end_note *n, int64_t now)
{
	open_req *o = open_take(b, n->id);
	pending *p;
	pf_usage_tokens t;
	int64_t cost;

	if (o == NULL)
		return NULL; /* a probe, or already settled */
	cost = cost_of(b, o, n, &t);
	ing_credit_settle(&o->cr->c, o->hold, cost);
	if (o->cr->waits != NULL)
		serve_waits_locked(b, o->cr, now);
	o->cr->busy--;
	o->cr->last_ms = now;
	p = b->spare_pend;
	if (p != NULL) {
		b->spare_pend = p->next;
		b->n_spare_pend--;
		memset(p, 0, sizeof(*p));
	} else {
		p = pf_zalloc(sizeof(*p));
	}
	if (p == NULL) {
		pf_error("PF-BILL-NOMEM", "what=usage");
		if (o->flight != NULL) {
			ing_flight_billed(o->flight);
			ing_flight_unref(o->flight);
		}
		free(o);
		return NULL;
	}
	p->flight = o->flight;
	memcpy(p->model, o->model, strlen(o->model) + 1);
	memcpy(p->u.event_id, o->id, PF_ID_LEN);
	p->u.user_id = o->cr->user_id;
	p->u.token_id = o->cr->token_id;
	p->u.channel_id = n->channel_id;
	p->u.model = (pf_bytes) { (const uint8_t *)p->model, strlen(p->model) };
	p->u.tokens = t;
	p->u.cost = cost;
	p->u.price_input = o->price.input;
	p->u.price_output = o->price.output;
	p->u.price_cached = o->price.cached;
	p->u.price_call = o->price.call;
	p->u.group_ratio_ppm = o->ratio_ppm;
	p->u.started_ms = o->started_ms;
	p->u.ended_ms = now;
	p->u.reason = n->reason;
	p->u.stream = o->stream;
	free(o);
	return p;
}

/* spool_events appends ps (a list through next) to the spool, and makes
 * them sendable once written: the clients may see their requests end,
 * and the accountant may have them. */
static void
spool_events(ing_billing *b, pending *ps)
{
	pending *p, *next;
	int io_failed = 0, wrote = 0;

	pthread_mutex_lock(&b->spool_mu);
	spool_repair_locked(b, pf_clock_ms());
	for (p = ps; p != NULL; p = p->next) {
		pf_msg m = { .kind = PF_MSG_USAGE };
		pf_reclog_pos pos = { 0 };
		m.u.usage = p->u;
		b->spool_enc.len = 0;
		if (pf_msg_encode(&m, &b->spool_enc) != PF_OK) {
			pf_error("PF-SPOOL-ENCODE", "what=usage");
			continue;
		}
		if (!io_failed
		    && pf_reclog_append(b->spool, b->spool_enc.data,
		           b->spool_enc.len, pf_clock_ms(), &pos)
		        != PF_OK)
			io_failed = 1;
		p->seq = pos.seq;
		seg_count *sc = io_failed ? NULL : seg_find(b, pos.seq, 1);
		if (sc != NULL) {
			sc->unacked++;
			wrote = 1;
		} else {
			p->seq = UINT64_MAX; /* kept in memory only */
		}
	}
	/* in the file: a SIGKILL of this process no longer loses them, so
	 * the clients may see their requests end; an fdatasync follows only
	 * for those still unacked after spool_sync_after_ms (syncer_main) */
	if (!io_failed && pf_reclog_flush(b->spool) != PF_OK)
		io_failed = 1;
	for (p = ps; p != NULL; p = p->next) {
		if (p->flight != NULL) {
			ing_flight_billed(p->flight);
			ing_flight_unref(p->flight);
			p->flight = NULL;
		}
	}
	uint64_t seq = pf_reclog_current_seq(b->spool);
	int kick_syncer, kick_thread;

	b->last_append_ms = pf_clock_ms();
	pthread_mutex_lock(&b->mu);
	/* the syncer's descriptor: a dup of the segment written, one per
	 * segment (a dup and a close per batch cost two system calls on
	 * the answers' path); an older segment's is closed (synced at
	 * rotation), by the syncer if its fdatasync runs on it */
	if (!io_failed && (b->sync_fd < 0 || b->sync_seq != seq)) {
		int fd = dup(pf_reclog_fileno(b->spool));

		if (fd < 0) {
			io_failed = 1;
		} else {
			if (b->sync_fd >= 0 && b->sync_fd == b->sync_busy)
				b->sync_retired = b->sync_fd;
			else if (b->sync_fd >= 0)
				close(b->sync_fd);
			b->sync_fd = fd;
			b->sync_seq = seq;
		}
	}
	uint64_t gen = wrote ? ++b->wgen : 0;
	size_t fresh0 = b->n_fresh;
	for (p = ps; p != NULL; p = next) {
		next = p->next;
		p->wgen = p->seq == UINT64_MAX ? 0 : gen;
		pending_link(b, p);
		b->st.settled++;
	}
	kick_syncer = b->sync_idle && b->sync_from != NULL;
	/* once it knows of fresh events the thread waits for their send
	 * time by itself */
	kick_thread = fresh0 == 0 || b->n_fresh >= SEND_NOW_MIN;
	pthread_mutex_unlock(&b->mu);
	pthread_mutex_unlock(&b->spool_mu);
	/* after the unlocks (see slot_done_locked) */
	if (kick_syncer)
		pthread_cond_signal(&b->sync_wake);
	if (kick_thread)
		pthread_cond_signal(&b->wake);
	if (io_failed)
		pf_error("PF-SPOOL-IO",
		    "msg=\"usage events not durable; sent from memory\"");
}

/* syncer_main fdatasyncs the spool when an event written is still
 * unacked cfg->spool_sync_after_ms later (at most every SYNC_LINGER_MS),
 * and at stop when any is left: a healthy accountant acks first, and
 * then the spool is never synced (see SYNC_LINGER_MS). */
static void *
syncer_main(void *arg)
{
	ing_billing *b = arg;
	struct sched_param sp = { .sched_priority = 0 };
	pf_thread_name("pf-spool-sync");

	/* no answer waits for it: its wake-ups should not preempt the
	 * thread that handed it work (SCHED_BATCH tasks do not; failure
	 * only costs that) */
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		pending *p = b->sync_from;
		struct timespec ts;

		if (p == NULL) {
			if (b->stop)
				break;
			b->sync_idle = 1;
			pthread_cond_wait(&b->sync_wake, &b->mu);
			b->sync_idle = 0;
			continue;
		}
		int64_t due
		    = p->ready_ms + (int64_t)b->cfg->spool_sync_after_ms;
		if (due < b->last_sync_ms + SYNC_LINGER_MS)
			due = b->last_sync_ms + SYNC_LINGER_MS;
		if (!b->stop && pf_clock_ms() < due) {
			deadline_ts(due, &ts);
			pthread_cond_timedwait(&b->sync_wake, &b->mu, &ts);
			continue;
		}
		uint64_t target = b->wgen;
		int fd = b->sync_fd;
		b->sync_busy = fd;
		pthread_mutex_unlock(&b->mu);
		if (fd >= 0 && fdatasync(fd) != 0)
			pf_error("PF-SPOOL-FSYNC",
			    "msg=\"usage events not durable; sent from "
			    "memory\"");
		pthread_mutex_lock(&b->mu);
		b->sync_busy = -1;
		if (b->sync_retired >= 0) {
			close(b->sync_retired);
			b->sync_retired = -1;
		}
		b->last_sync_ms = pf_clock_ms();
		b->st.syncs++;
		b->synced_gen = target;
		if (b->sync_from != NULL && b->sync_from->wgen <= target) {
			/* sync_from_next starts after its argument */
			pending *from = b->sync_from;
			sync_from_next(b, from);
		}
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* usage_answer handles the ack of a usage or usage.batch slot: each
 * lock is taken once for the whole batch, not once per event (the HTTP
 * loops admit requests under b->mu meanwhile). */
static void
usage_answer(ing_billing *b, slot *s)
{
	const pf_msg *m = s->reply;
	int64_t retry = pf_clock_ms() + PF_BILLING_RETRY_MS;
	uint8_t done[PF_USAGE_BATCH_MAX];
	uint32_t n_done = 0;
	pending *drop = NULL;

	for (uint32_t i = 0; i < s->n_ev; i++) {
		pending *p = s->ev[i];
		done[i] = 0;
		if (m == NULL || m->kind != PF_MSG_ACK)
			continue;
		const pf_ack *a = &m->u.ack;
		if (s->n_ev == 1)
			done[i] = a->n_ids >= 1;
		else
			done[i] = i < a->n_ids && a->ids[i].len > 0;
		if (!done[i] || a->n_ids == 0)
			continue;
		const pf_bytes *id = s->n_ev == 1 && a->n_ids >= 2 ? &a->ids[1]
		    : s->n_ev == 1                                 ? &a->ids[0]
		                                                   : &a->ids[i];
		if (id->len >= 9 && memcmp(id->ptr, "rejected:", 9) == 0) {
			char hex[PF_ID_HEX_LEN + 1];
			pf_hex_encode(p->u.event_id, PF_ID_LEN, hex);
			pf_warn("PF-BILL-REJECTED", "event=%s reason=\"%.*s\"",
			    hex, (int)(id->len > 200 ? 200 : id->len),
			    (const char *)id->ptr);
		}
	}
	/* acked: counted out of their segments */
	pthread_mutex_lock(&b->spool_mu);
	for (uint32_t i = 0; i < s->n_ev; i++) {
		if (!done[i])
			continue;
		seg_count *sc = seg_find(b, s->ev[i]->seq, 0);
		if (sc != NULL && sc->unacked > 0)
			sc->unacked--;
		n_done++;
	}
	if (n_done > 0)
		seg_sweep(b);
	pthread_mutex_unlock(&b->spool_mu);
	/* acked: unlinked and kept for reuse or freed; the others retried */
	pthread_mutex_lock(&b->mu);
	for (uint32_t i = 0; i < s->n_ev; i++) {
		pending *p = s->ev[i];
		if (!done[i]) {
			p->inflight = 0;
			p->retrying = 1;
			b->n_retry++;
			p->next_try_ms = retry;
			continue;
		}
		pending_unlink(b, p);
		b->st.acked++;
		if (b->n_spare_pend < SPARE_MAX) {
			p->next = b->spare_pend;
			b->spare_pend = p;
			b->n_spare_pend++;
		} else {
			p->next = drop;
			drop = p;
		}
	}
	pthread_mutex_unlock(&b->mu);
	while (drop != NULL) {
		pending *next = drop->next;
		free(drop);
		drop = next;
	}
}

/* --- the thread --------------------------------------------------------- */

/* tick renews credit in use, releases idle credit and settles requests
 * nobody reported on. */
static void
tick(ing_billing *b, int64_t now)
{
	credit *rel[64];
	int64_t rel_amount[64];
	size_t n_rel = 0;
	end_note lost[64];
	size_t n_lost = 0;

	pthread_mutex_lock(&b->mu);
	for (unsigned k = 0; k < BUCKETS; k++) {
		for (credit **pp = &b->credits[k]; *pp != NULL;) {
			credit *c = *pp;
			ing_credit_lapse(&c->c, now);
			if (c->waits != NULL)
				waits_end_locked(c, WAIT_TIMEOUT, now);
			int idle = c->c.held == 0
			    && now - c->last_ms >= PF_BILLING_IDLE_MS;
			if (!idle && c->c.granted > 0 && !c->asking
			    && now - c->renewed_ms >= PF_BILLING_RENEW_MS) {
				ask_queue(b, c); /* amount 0: renew */
			} else if (idle && c->c.granted > 0 && !c->asking
			    && n_rel < 64) {
				rel_amount[n_rel] = ing_credit_release(&c->c);
				if (rel_amount[n_rel] > 0) {
					/* send_release below still uses it */
					rel[n_rel++] = c;
					c->busy++;
				}
			}
			if (idle && c->c.granted == 0 && c->busy == 0
			    && !c->asking && !c->queued
			    && c->deny_until_ms <= now) {
				*pp = c->next;
				b->n_credits--;
				free(c);
				continue;
			}
			pp = &c->next;
		}
	}
	for (unsigned k = 0; k < BUCKETS && n_lost < 64; k++) {
		for (open_req *o = b->open[k]; o != NULL && n_lost < 64;
		     o = o->next) {
			if (o->deadline_ms + PF_RELAY_GRACE_MS + LOST_EXTRA_MS
			    >= now)
				continue;
			memset(&lost[n_lost], 0, sizeof(lost[n_lost]));
			memcpy(lost[n_lost].id, o->id, PF_ID_LEN);
			lost[n_lost].reason = PF_END_WORKER_LOST;
			n_lost++;
		}
	}
	pending *ps = NULL, **tail = &ps;
	for (size_t i = 0; i < n_lost; i++) {
		pending *p = settle_locked(b, &lost[i], now);
		if (p != NULL) {
			*tail = p;
			tail = &p->next;
		}
	}
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < n_rel; i++) {
		send_release(b, rel[i], rel_amount[i]);
		pthread_mutex_lock(&b->mu);
		rel[i]->busy--;
		pthread_mutex_unlock(&b->mu);
	}
	if (ps != NULL)
		spool_events(b, ps);
}

/* drain_ends settles the ends queued and spools their events (any
 * thread); returns the number of events. */
static size_t
drain_ends(ing_billing *b)
{
	end_note *ends;
	pending *ps = NULL, **tail = &ps;
	size_t n = 0;
	int64_t now;

	pthread_mutex_lock(&b->mu);
	ends = b->ends_head;
	if (ends == NULL) {
		pthread_mutex_unlock(&b->mu);
		return 0;
	}
	b->ends_head = b->ends_tail = NULL;
	b->n_ends = 0;
	now = pf_clock_ms();
	for (end_note *e = ends; e != NULL; e = e->next) {
		pending *p = settle_locked(b, e, now);
		if (p != NULL) {
			*tail = p;
			tail = &p->next;
			n++;
		}
	}
	while (ends != NULL && b->n_spare_ends < SPARE_MAX) {
		end_note *next = ends->next;
		ends->next = b->spare_ends;
		b->spare_ends = ends;
		b->n_spare_ends++;
		ends = next;
	}
	pthread_mutex_unlock(&b->mu);
	while (ends != NULL) {
		end_note *next = ends->next;
		free(ends);
		ends = next;
	}
	if (ps != NULL)
		spool_events(b, ps);
	return n;
}

/* step does one round of the thread's work; returns the number of
 * events settled. */
static size_t
step(ing_billing *b)
{
	slot *done;
	size_t n;

	pthread_mutex_lock(&b->mu);
	done = b->done_slots;
	b->done_slots = NULL;
	pthread_mutex_unlock(&b->mu);
	n = drain_ends(b);
	while (done != NULL) {
		slot *s = done;
		done = s->next;
		if (s->kind == SLOT_USAGE)
			usage_answer(b, s);
		pf_msg_free(s->reply);
		s->reply = NULL;
		pthread_mutex_lock(&b->mu);
		s->kind = SLOT_FREE;
		s->next = b->free_slots;
		b->free_slots = s;
		pthread_mutex_unlock(&b->mu);
	}
	send_asks(b);
	send_usage(b);
	return n;
}

static void *
billing_main(void *arg)
{
	ing_billing *b = arg;
	int64_t last_tick = pf_clock_ms();
	pf_thread_name("pf-billing");

	for (;;) {
		int64_t now = pf_clock_ms();
		struct timespec ts;

		step(b);
		if (now - last_tick >= TICK_MS) {
			tick(b, now);
			rotate_idle(b, now);
			last_tick = now;
		}
		pthread_mutex_lock(&b->mu);
		if (b->stop) {
			pthread_mutex_unlock(&b->mu);
			break;
		}
		if (b->done_slots == NULL && b->ends_head == NULL
		    && b->ask_head == NULL) {
			int64_t until = pf_clock_ms() + TICK_MS;
			if (b->send_due_ms != 0 && b->send_due_ms < until)
				until = b->send_due_ms;
			b->send_due_ms = 0;
			deadline_ts(until, &ts);
			pthread_cond_timedwait(&b->wake, &b->mu, &ts);
		}
		pthread_mutex_unlock(&b->mu);
	}
	return NULL;
}

/* --- start and stop ----------------------------------------------------- */

typedef struct resend_ctx {
	ing_billing *b;
	uint64_t n;
} resend_ctx;

static pf_err
resend_record_cb(void *arg, const pf_reclog_pos *pos, int64_t ts_ms,
    const uint8_t *rec, size_t len)
{
	resend_ctx *rc = arg;
	pf_msg *m = NULL;
	pending *p;

	(void)ts_ms;
	if (pf_msg_decode(rec, len, &m) != PF_OK || m->kind != PF_MSG_USAGE
	    || m->u.usage.model.len > PF_MODEL_NAME_MAX) {
		pf_msg_free(m);
		return PF_OK; /* not ours: leave it for `replay` */
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		pf_msg_free(m);
		return PF_ENOMEM;
	}
	p->u = m->u.usage;
	memcpy(p->model, m->u.usage.model.ptr, m->u.usage.model.len);
	p->u.model
	    = (pf_bytes) { (const uint8_t *)p->model, m->u.usage.model.len };
	p->seq = pos->seq;
	pf_msg_free(m);
	seg_count *sc = seg_find(rc->b, pos->seq, 1);
	if (sc == NULL) {
		free(p);
		return PF_ENOMEM;
	}
	sc->unacked++;
	pending_link(rc->b, p);
	rc->n++;
	return PF_OK;
}

/* load_spool queues every event left in the spool directory. */
static pf_err
load_spool(ing_billing *b, char *errbuf, size_t errlen)
{
	uint64_t *seqs = NULL;
	size_t n = 0;
	resend_ctx rc = { .b = b };
	uint64_t cur = pf_reclog_current_seq(b->spool);
	pf_err err;

	err = pf_reclog_list(b->cfg->spool_dir, SPOOL_PREFIX, &seqs, &n);
	if (err != PF_OK) {
		snprintf(errbuf, errlen, "cannot list spool %s: %s",
		    b->cfg->spool_dir, pf_strerror(err));
		return err;
	}
	for (size_t i = 0; i < n && err == PF_OK; i++) {
		char path[PF_CONFIG_STR + 64];
		pf_reclog_scan scan = { 0 };
		if (seqs[i] == cur)
			continue;
		err = pf_reclog_segment_path(b->cfg->spool_dir, SPOOL_PREFIX,
		    seqs[i], path, sizeof(path));
		if (err != PF_OK)
			break;
		if (seg_find(b, seqs[i], 1) == NULL) {
			err = PF_ENOMEM;
			break;
		}
		err = pf_reclog_read_file(
		    path, seqs[i], 0, resend_record_cb, &rc, &scan);
		if (err == PF_EPROTO)
			snprintf(errbuf, errlen,
			    "spool segment %s is corrupt at offset %llu", path,
			    (unsigned long long)scan.bad_offset);
		else if (err != PF_OK)
			snprintf(errbuf, errlen, "cannot read %s: %s", path,
			    pf_strerror(err));
		else if (scan.valid_end < scan.file_size)
			pf_warn("PF-SPOOL-TORN", "file=%s offset=%llu", path,
			    (unsigned long long)scan.valid_end);
	}
	free(seqs);
	if (err == PF_OK && rc.n > 0)
		pf_info(
		    "PF-SPOOL-RESEND", "events=%llu", (unsigned long long)rc.n);
	if (err == PF_OK)
		seg_sweep(b); /* segments with nothing left in them */
	return err;
}

static pf_err
open_sockets(ing_billing *b)
{
	if (nng_req0_open(&b->req) != 0)
		return PF_ENET;
	b->req_open = 1;
	if (nng_socket_set_ms(
	        b->req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)
	        != 0
	    || nng_socket_set_size(b->req, NNG_OPT_RECVMAXSZ, PF_MSG_MAX) != 0)
		return PF_ENET;
	for (unsigned i = 0; i < PF_BILLING_CONTEXTS; i++) {
		slot *s = &b->slots[i];
		s->b = b;
		if (nng_ctx_open(&s->ctx, b->req) != 0
		    || nng_aio_alloc(&s->aio, slot_cb, s) != 0)
			return PF_ENET;
		nng_ctx_set_ms(
		    s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		s->next = b->free_slots;
		b->free_slots = s;
	}
	if (pf_nng_dial(b->req, b->cfg->accountant_url) != 0)
		return PF_ENET;
	if (nng_sub0_open(&b->sub) != 0)
		return PF_ENET;
	b->sub_open = 1;
	if (nng_socket_set(b->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0) != 0
	    || nng_socket_set_size(b->sub, NNG_OPT_RECVMAXSZ, PF_MSG_MAX) != 0
	    || nng_aio_alloc(&b->sub_aio, sub_cb, b) != 0)
		return PF_ENET;
	if (pf_nng_dial(b->sub, b->cfg->accountant_pub_url) != 0)
		return PF_ENET;
	nng_recv_aio(b->sub, b->sub_aio);
	return PF_OK;
}

static void
free_all(ing_billing *b)
{
	if (b->syncer_started && !b->thread_started) { /* a failed start */
		pthread_mutex_lock(&b->mu);
		b->stop = 1;
		pthread_cond_broadcast(&b->sync_wake);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->syncer, NULL);
	}
	/* closing the sockets completes every aio (NNG_ECLOSED); freeing
	 * an aio waits for its callback */
	if (b->sub_open)
		nng_close(b->sub);
	if (b->req_open)
		nng_close(b->req);
	if (b->sub_aio != NULL)
		nng_aio_free(b->sub_aio);
	for (unsigned i = 0; i < PF_BILLING_CONTEXTS; i++) {
		if (b->slots[i].aio != NULL)
			nng_aio_free(b->slots[i].aio);
	}
	for (unsigned i = 0; i < PF_BILLING_CONTEXTS; i++) {
		pf_msg_free(b->slots[i].reply);
		b->slots[i].reply = NULL;
	}
	for (unsigned k = 0; k < BUCKETS; k++) {
		while (b->credits[k] != NULL) {
			credit *c = b->credits[k];
			b->credits[k] = c->next;
			free(c);
		}
		while (b->open[k] != NULL) {
			open_req *o = b->open[k];
			b->open[k] = o->next;
			ing_flight_unref(o->flight);
			free(o);
		}
	}
	while (b->ends_head != NULL) {
		end_note *n = b->ends_head;
		b->ends_head = n->next;
		free(n);
	}
	while (b->spare_ends != NULL) {
		end_note *n = b->spare_ends;
		b->spare_ends = n->next;
		free(n);
	}
	while (b->spare_pend != NULL) {
		pending *p = b->spare_pend;
		b->spare_pend = p->next;
		free(p);
	}
	while (b->pend_head != NULL) {
		pending *p = b->pend_head;
		b->pend_head = p->next;
		free(p);
	}
	if (b->sync_fd >= 0)
		close(b->sync_fd);
	if (b->sync_retired >= 0)
		close(b->sync_retired);
	pf_reclog_close(b->spool);
	free(b->segs);
	pf_buf_fini(&b->enc);
	pthread_cond_destroy(&b->sync_wake);
	pthread_cond_destroy(&b->wake);
	pthread_mutex_destroy(&b->spool_mu);
	pf_buf_fini(&b->spool_enc);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

pf_err
ing_billing_start(
    const pf_config *cfg, ing_billing **ret, char *errbuf, size_t errlen)
{
	ing_billing *b = calloc(1, sizeof(*b));
	pf_err err;

	if (b == NULL)
		return PF_ENOMEM;
	b->cfg = cfg;
	pthread_mutex_init(&b->mu, NULL);
	pthread_mutex_init(&b->spool_mu, NULL);
	pf_buf_init(&b->spool_enc);
	pthread_cond_init(&b->wake, NULL);
	pthread_cond_init(&b->sync_wake, NULL);
	b->sync_fd = b->sync_busy = b->sync_retired = -1;
	pf_buf_init(&b->enc);
	err = pf_reclog_open(cfg->spool_dir, SPOOL_PREFIX, 0, &b->spool);
	if (err != PF_OK) {
		snprintf(errbuf, errlen,
		    err == PF_EEXIST
		        ? "spool directory %s is in use by another ingress"
		        : "cannot open spool directory %s",
		    cfg->spool_dir);
		goto fail;
	}
	err = load_spool(b, errbuf, errlen);
	if (err != PF_OK)
		goto fail;
	err = open_sockets(b);
	if (err != PF_OK) {
		snprintf(errbuf, errlen, "cannot open the accountant sockets");
		goto fail;
	}
	if (pthread_create(&b->syncer, NULL, syncer_main, b) != 0) {
		snprintf(errbuf, errlen, "cannot start the spool sync thread");
		err = PF_EIO;
		goto fail;
	}
	b->syncer_started = 1;
	if (pthread_create(&b->thread, NULL, billing_main, b) != 0) {
		snprintf(errbuf, errlen, "cannot start the billing thread");
		err = PF_EIO;
		goto fail;
	}
	b->thread_started = 1;
	*ret = b;
	return PF_OK;
fail:
	free_all(b);
	return err;
}

void
ing_billing_stop(ing_billing *b)
{
	int64_t until;
	end_note *lost = NULL;

	if (b == NULL)
		return;
	/* requests still open get no relay.end now: worker_lost */
	pthread_mutex_lock(&b->mu);
	for (unsigned k = 0; k < BUCKETS; k++) {
		for (open_req *o = b->open[k]; o != NULL; o = o->next) {
			end_note *n = calloc(1, sizeof(*n));
			if (n == NULL)
				continue;
			memcpy(n->id, o->id, PF_ID_LEN);
			n->reason = PF_END_WORKER_LOST;
			n->next = lost;
			lost = n;
		}
	}
	for (end_note *n = lost; n != NULL;) {
		end_note *next = n->next;
		n->next = NULL;
		if (b->ends_tail != NULL)
			b->ends_tail->next = n;
		else
			b->ends_head = n;
		b->ends_tail = n;
		b->n_ends++;
		n = next;
	}
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->mu);
	/* let the thread spool and send them; wait a bounded time for the
	 * acks */
	until = pf_clock_ms() + PF_BILLING_TIMEOUT_MS;
	for (;;) {
		size_t left;
		pthread_mutex_lock(&b->mu);
		left = b->n_pending + (b->ends_head != NULL);
		pthread_mutex_unlock(&b->mu);
		if (left == 0 || pf_clock_ms() >= until)
			break;
		nng_msleep(STOP_WAIT_STEP_MS);
	}
	pthread_mutex_lock(&b->mu);
	b->stop = 1;
	pthread_cond_broadcast(&b->wake);
	b->waits_closed = 1;
	all_waits_end_locked(b);
	pthread_mutex_unlock(&b->mu);
	if (b->thread_started)
		pthread_join(b->thread, NULL);
	pthread_mutex_lock(&b->mu);
	pthread_cond_broadcast(&b->sync_wake);
	pthread_mutex_unlock(&b->mu);
	if (b->syncer_started)
		pthread_join(b->syncer, NULL);
	if (b->n_pending > 0)
		pf_warn("PF-SPOOL-LEFT", "events=%zu msg=\"resent on start\"",
		    b->n_pending);
	free_all(b);
}
