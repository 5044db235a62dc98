/*
 * billing.h -- the ingress side of credit control and usage events
 * (docs/billing.md: "Checklist for the ingress side", "Credit control
 * and the overdraft bound").
 *
 * One billing thread owns:
 *   - a req0 socket dialing cfg->accountant_url (non-blocking dial,
 *     NNG_OPT_REQ_RESENDTIME infinite, PF_BILLING_CONTEXTS contexts, each
 *     request with its own timeout) for grant.request / grant.release /
 *     usage / usage.batch;
 *   - a sub0 socket dialing cfg->accountant_pub_url: a `balance` notice
 *     for a user forgets that the user had no credit, so a top-up is
 *     seen by the next request;
 *   - the usage spool in cfg->spool_dir (pf_reclog, prefix "spool"):
 *     each finished request's `usage` event is appended (write(2)) and
 *     then sent; events still unacked cfg->spool_sync_after_ms after
 *     their write are made durable by one fdatasync (an acked event is
 *     in the accountant's fsync'ed event log); a segment is deleted
 *     once every event in it was acked
 *     (applied, already present, or rejected).  On start every event
 *     left in the directory is resent.
 *
 * Per (user, token) it mirrors the credit the accountant granted it
 * (ingress/credit.h).  ing_billing_admit holds a request's estimated
 * cost against that credit, asking the accountant for more when it does
 * not fit; the request then waits for the answer (at most
 * PF_BILLING_GRANT_WAIT_MS) parked, not holding a thread
 * (ing_bill_wait).
 * When the request ends (relay.end through ing_billing_end_cb, or the
 * relay's sweeper deciding worker_lost through the same hook, or
 * PF_RELAY_GRACE_MS + PF_BILLING_TIMEOUT_MS past its deadline with no
 * word at all) the billing thread computes the cost by the policy in
 * docs/billing.md, drops the hold, draws the cost from the credit and
 * spools the usage event.  Grants are renewed every PF_BILLING_RENEW_MS
 * while in use; credit unused for PF_BILLING_IDLE_MS is released.
 *
 * Thread-safe.  No PostgreSQL or Redis call anywhere.
 */
#ifndef PF_INGRESS_BILLING_H
#define PF_INGRESS_BILLING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/money.h"
#include "common/msg.h"
#include "ingress/park.h"

typedef struct ing_billing ing_billing;
struct ing_flight;

/* What the request path knows about a request when it admits it. */
typedef struct ing_bill_ticket {
	uint8_t id[PF_ID_LEN]; /* request id = usage event id */
	int64_t user_id;
	int64_t token_id;
	const char *model;       /* as the client named it (copied) */
	pf_price price;          /* from the routing snapshot used */
	int64_t ratio_ppm;       /* the token's group multiplier */
	int64_t estimate;        /* cost held (ing_billing_estimate) */
	int64_t prompt_estimate; /* prompt tokens, for worker_lost */
	int64_t started_ms;      /* unix ms */
	int64_t deadline_ms;     /* the relay's deadline, unix ms */
	int stream;
} ing_bill_ticket;

/* Counters (tests, metrics). */
typedef struct ing_billing_stats {
	uint64_t admitted;    /* requests holding credit */
	uint64_t denied;      /* refused: no credit */
	uint64_t unavailable; /* refused: the accountant did not answer */
	uint64_t settled;     /* usage events spooled */
	uint64_t acked;       /* usage events acked */
	uint64_t pending;     /* spooled, not yet acked */
	uint64_t open;        /* admitted, not yet ended */
	uint64_t syncs;       /* spool fdatasyncs (events left unacked) */
	uint64_t asks;        /* grant.requests for more credit queued */
	uint64_t answers;     /* ... and their answers applied (or timeouts) */
	uint64_t waits;       /* admissions that waited for credit */
} ing_billing_stats;

/*
 * ing_billing_start opens the spool (cfg->spool_dir), reads the events
 * left in it, opens and dials the accountant's sockets (non-blocking:
 * the accountant may start later) and starts the billing thread.  cfg
 * must outlive b.  *ret written only on success.  Errors (message in
 * errbuf): PF_EEXIST (another ingress owns the spool directory), PF_EIO,
 * PF_EPROTO (a spool segment is corrupt in the middle: errbuf names it),
 * PF_ENET, PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_billing_start(
    const pf_config *cfg, ing_billing **ret, char *errbuf, size_t errlen);

/*
 * ing_billing_estimate computes a request's estimated cost: prompt
 * tokens + completion_cap tokens at price x ratio (a per-call price:
 * that price), rounded up.  *ret written on PF_OK.  Errors: PF_EINVAL,
 * PF_EOVERFLOW (as pf_money_cost).
 */
PF_NODISCARD pf_err ing_billing_estimate(const pf_price *price,
    int64_t ratio_ppm, int64_t quota_per_unit, int64_t prompt_tokens,
    int64_t completion_cap, int64_t *ret);

/* ing_billing_prompt_tokens estimates the prompt tokens of a request
 * body: ceil(units / 4) over all of it (ASCII bytes 1 unit, a non-ASCII
 * code point 4, as the workers count), so never below the text's. */
int64_t ing_billing_prompt_tokens(const char *body, size_t len);

/*
 * A request waiting for the accountant's answer without holding a
 * thread: the HTTP side readies one (ing_bill_wait_init) when an
 * admission without a wait answered PF_EPENDING, admits with it, parks
 * its connection when that returns PF_EPENDING (ing_bill_wait_park) and
 * calls ing_billing_admit again once resumed.
 * The waits on one credit form a queue, oldest first: credit that comes
 * in (a grant answer, a request ending) is held for the oldest waits it
 * covers, and only those are woken, already admitted; the rest stay
 * parked and the next ask covers them all.  An answer that decides
 * against them (a refusal, no verdict), the deadline and
 * ing_billing_close_waits end every wait they reach.  A woken wait
 * resumes its connection only if it is parked (park.h).  The
 * _-prefixed fields are guarded by the billing's lock.
 */
typedef struct ing_bill_wait {
	ing_park park; /* the connection's suspension */
	/* private to billing.c */
	int _listed;            /* on a credit's wait list */
	int _why;               /* how the last wait ended */
	int32_t _status;        /* the answer's status, when it was one */
	int64_t _deadline_ms;   /* of the whole admission (0: not yet) */
	void *_cr;              /* the credit waited on, while listed */
	void *_req;             /* the request to open, while listed */
	int64_t _hold;          /* its hold, while listed */
	uint8_t _id[PF_ID_LEN]; /* admitted while parked, not yet taken up */
	struct ing_bill_wait *_prev, *_next;
} ing_bill_wait;

/* ing_bill_wait_init readies w for conn (no allocation). */
void ing_bill_wait_init(
    ing_bill_wait *w, void *conn, void (*resume)(void *conn));

/*
 * ing_bill_wait_park parks conn through suspend(conn) (ing_park_suspend),
 * unless the wait already ended.  Returns 1 when parked (resume will be
 * called), 0 when the caller must call ing_billing_admit again now.
 */
int ing_bill_wait_park(ing_bill_wait *w, void (*suspend)(void *conn));

/* ing_bill_wait_fini takes w off any wait list of b (b may be NULL),
 * drops the hold of a request admitted while parked that
 * ing_billing_admit never handed out (the connection went away), and
 * destroys w's lock.  Call it before w's memory goes, also when the wait
 * was never used. */
void ing_bill_wait_fini(ing_billing *b, ing_bill_wait *w);

/*
 * ing_billing_admit holds t->estimate against the credit of (t->user_id,
 * t->token_id).  When it does not fit, it asks the accountant for more
 * and returns PF_EPENDING with w on the credit's wait list: park the
 * connection (ing_bill_wait_park) and call again (same t->id, same w)
 * when it is resumed.  The admission as a whole waits at most
 * PF_BILLING_GRANT_WAIT_MS from its first call with w.  w may be NULL
 * (a caller that allocates its wait only when it must wait): then an
 * admission that would wait asks nothing, holds nothing, counts nothing
 * and returns PF_EPENDING, and the caller admits again with a wait;
 * every other answer is as with a fresh w.  Never blocks.  On
 * PF_OK the request is open: end it with a relay.end
 * (ing_billing_end_cb) or ing_billing_abort.  Errors: PF_EDENIED (the
 * accountant granted too little, or knows no such user or token:
 * insufficient quota), PF_EAGAIN (no answer from the accountant in
 * time, or it could not decide (its database is down), or
 * PF_BILLING_PENDING_MAX usage events still wait for its ack),
 * PF_EEXIST (id already open), PF_ECLOSED (stopping), PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_billing_admit(
    ing_billing *b, const ing_bill_ticket *t, ing_bill_wait *w);

/* ing_billing_close_waits ends every wait with PF_ECLOSED and refuses
 * new ones (their admissions answer PF_ECLOSED): call it before the
 * HTTP daemon stops, so no connection stays parked. */
void ing_billing_close_waits(ing_billing *b);

/*
 * ing_billing_track ties the open request id to its flight (a reference
 * is taken): once the request's usage event is written to the spool
 * file (pf_reclog_flush; an fdatasync follows only if it stays unacked)
 * the billing thread calls ing_flight_billed(f), so a client never sees
 * a request complete whose event a SIGKILL of the ingress could still
 * lose.  Returns 1
 * when tracked (set f->billing to it before the flight is shared), 0
 * when id is not open.
 */
int ing_billing_track(
    ing_billing *b, const uint8_t id[PF_ID_LEN], struct ing_flight *f);

/* ing_billing_abort closes an open request that never reached a worker:
 * its hold is dropped and no usage event is written.  Unknown ids are
 * ignored. */
void ing_billing_abort(ing_billing *b, const uint8_t id[PF_ID_LEN]);

/*
 * ing_billing_end_cb is the relay end hook (arg is the ing_billing): it
 * copies what billing needs from e and hands it to the billing thread.
 * Never blocks on I/O.  A relay.end for an id that is not open (a
 * probe, a second end) is ignored by the thread.  The relay's sweeper
 * reports a flight it gave up on as reason PF_END_WORKER_LOST with seq =
 * the relay.data received.
 */
void ing_billing_end_cb(void *arg, const pf_relay_end *e);

/* ing_billing_end_later is ing_billing_end_cb without waking the billing
 * thread: ing_billing_end_flush (or the thread's next tick) handles the
 * batch. */
void ing_billing_end_later(void *arg, const pf_relay_end *e);

/* ing_billing_end_flush settles the ends queued and appends their usage
 * events to the spool on the calling thread when there are a few (arg is
 * the ing_billing; the relay's end flush hook), so their answers go out
 * without a hand-over to the billing thread; more are left to the
 * billing thread, which it wakes.  Writes the spool file (no fsync: the
 * syncer thread does it for events left unacked); must not be called
 * with a relay lock held. */
void ing_billing_end_flush(void *arg);

/* ing_billing_end_spool is ing_billing_end_flush for a thread that owns
 * the answers waiting for the spool write (serve's HTTP loop, once per
 * loop turn): it spools every end queued itself, however many, as a
 * hand-over to the billing thread would add a thread wake-up and a loop
 * turn to each answer.  At 64 connections that took ~0.3 system calls
 * per request off serve, 0.17 of them futex calls
 * (bench/results/2026-11-27-vm-inline-spool.md). */
void ing_billing_end_spool(void *arg);

/* ing_billing_get_stats copies the counters. */
void ing_billing_get_stats(ing_billing *b, ing_billing_stats *ret);

/*
 * ing_billing_stop settles the requests still open (worker_lost), makes
 * every event durable, waits up to PF_BILLING_TIMEOUT_MS for the acks
 * of those pending (granted credit is not released: the accountant's
 * pools lapse after PF_ACCT_GRANT_TTL_MS), closes the sockets and the spool (events not acked stay there for the next
 * start) and frees b.  Blocks.  NULL is a no-op.
 */
void ing_billing_stop(ing_billing *b);

#endif /* PF_INGRESS_BILLING_H */
