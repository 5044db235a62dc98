/* test_billing_wait.c -- who a grant answer wakes (ingress/billing.h,
 * ing_bill_wait), against a fake accountant on inproc:// that the test
 * answers by hand.
 *
 * A waiter stands for a parked HTTP connection: suspend does nothing,
 * resume counts; the test plays the HTTP thread and admits a resumed
 * waiter again, as the server does.  Checked: a grant wakes the oldest
 * waiters its credit covers and no other; the rest stay parked and the
 * next ask covers them all; credit freed by an ending request serves a
 * waiter at once; a refusal, an answer without a verdict, the deadline
 * and close_waits end every wait; a wait granted but never taken up
 * gives its hold back; the credit is asked for ahead, sized by the holds
 * open, so admissions in a row do not wait; under random answers no
 * waiter is left parked.
 * Waits are bounded (a missing wake fails, it does not hang); nothing
 * asserts how fast. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/limits.h"
#include "common/msg.h"
#include "ingress/billing.h"
#include "tests/tap.h"

#define E 100 /* every waiter's estimate */
#define MAXW 64

typedef struct waiter {
	ing_bill_wait w;
	ing_bill_ticket t;
	int resumed;  /* resume calls (atomic) */
	int taken;    /* resumes the "HTTP thread" acted on */
	int parked;   /* suspended, not yet resumed */
	int done;     /* admission over */
	pf_err err;   /* its result */
	int released; /* fini'd */
	int has_wait; /* admits with w (else first without, as the server) */
} waiter;

static nng_socket rep, pub;
static ing_billing *bill;
static uint64_t next_id = 1;

static void
resume_cb(void *conn)
{
	waiter *x = conn;

	__atomic_add_fetch(&x->resumed, 1, __ATOMIC_ACQ_REL);
}

static void
suspend_cb(void *conn)
{
	(void)conn;
}

/* admit runs one admission step on the "HTTP thread" as the server
 * does: first without a wait, then (PF_EPENDING) with one, parked on
 * PF_EPENDING unless the answer came first. */
static void
admit(waiter *x)
{
	if (!x->has_wait) {
		pf_err err = ing_billing_admit(bill, &x->t, NULL);
		if (err != PF_EPENDING) {
			x->err = err;
			x->done = 1;
			return;
		}
		x->has_wait = 1;
	}
	for (;;) {
		pf_err err = ing_billing_admit(bill, &x->t, &x->w);
		if (err != PF_EPENDING) {
			x->err = err;
			x->done = 1;
			x->parked = 0;
			return;
		}
		if (ing_bill_wait_park(&x->w, suspend_cb)) {
			x->parked = 1;
			return;
		}
	}
}

static void
waiter_start(waiter *x, int64_t user_id)
{
	memset(x, 0, sizeof(*x));
	ing_bill_wait_init(&x->w, x, resume_cb);
	memcpy(x->t.id, &next_id, sizeof(next_id));
	next_id++;
	x->t.user_id = user_id;
	x->t.token_id = user_id;
	x->t.model = "m";
	x->t.estimate = E;
	x->t.started_ms = pf_clock_ms();
	x->t.deadline_ms = x->t.started_ms + 60000;
	admit(x);
}

/* pump admits again every waiter that was resumed; returns how many are
 * still parked. */
static int
pump(waiter *ws, int n)
{
	int left = 0;

	for (int i = 0; i < n; i++) {
		waiter *x = &ws[i];
		int r = __atomic_load_n(&x->resumed, __ATOMIC_ACQUIRE);
		if (x->parked && r > x->taken) {
			x->taken = r;
			x->parked = 0;
			admit(x);
		}
		left += x->parked;
	}
	return left;
}

/* pump_until pumps until no waiter is parked (bounded: 10 s). */
static int
pump_until_done(waiter *ws, int n)
{
	for (int i = 0; i < 10000; i++) {
		if (pump(ws, n) == 0)
			return 1;
		usleep(1000);
	}
	return 0;
}

static void
release_all(waiter *ws, int n)
{
	for (int i = 0; i < n; i++) {
		if (ws[i].done && ws[i].err == PF_OK)
			ing_billing_abort(bill, ws[i].t.id);
		if (!ws[i].released)
			ing_bill_wait_fini(bill, &ws[i].w);
		ws[i].released = 1;
	}
}

/* acct_answer replies to the last grant.request received. */
static void
acct_answer(const pf_msg *req, int64_t granted, int32_t status, uint64_t epoch)
{
	pf_msg r = { .kind = PF_MSG_GRANT_REPLY };
	pf_buf b;
	nng_msg *nm = NULL;

	r.u.grant_reply.corr = req->u.grant_request.corr;
	r.u.grant_reply.user_id = req->u.grant_request.user_id;
	r.u.grant_reply.token_id = req->u.grant_request.token_id;
	r.u.grant_reply.granted = granted;
	r.u.grant_reply.expires_ms = pf_clock_ms() + 60000;
	r.u.grant_reply.status = status;
	r.u.grant_reply.epoch = epoch;
	pf_buf_init(&b);
	if (pf_msg_encode(&r, &b) == PF_OK && nng_msg_alloc(&nm, 0) == 0) {
		if (nng_msg_append(nm, b.data, b.len) != 0
		    || nng_sendmsg(rep, nm, 0) != 0)
			nng_msg_free(nm);
	}
	pf_buf_fini(&b);
}

/* acct_recv waits (pumping ws meanwhile; at most ms) for the next
 * grant.request; renewals are answered and skipped, other requests
 * (releases) skipped.  Returns NULL when none came. */
static pf_msg *
acct_recv(waiter *ws, int n, int ms)
{
	int64_t until = pf_clock_ms() + ms;

	while (pf_clock_ms() < until) {
		nng_msg *nm = NULL;
		pf_msg *m = NULL;
		if (ws != NULL)
			pump(ws, n);
		if (nng_recvmsg(rep, &nm, 0) != 0)
			continue; /* NNG_ETIMEDOUT: 20 ms */
		if (pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), &m)
		        == PF_OK
		    && m->kind == PF_MSG_GRANT_REQUEST) {
			nng_msg_free(nm);
			return m;
		}
		pf_msg_free(m);
		nng_msg_free(nm);
	}
	return NULL;
}

static int
count_resumed(waiter *ws, int from, int to)
{
	int n = 0;

	for (int i = from; i < to; i++)
		n += __atomic_load_n(&ws[i].resumed, __ATOMIC_ACQUIRE) > 0;
	return n;
}

static int
count_err(waiter *ws, int n, pf_err err)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += ws[i].done && ws[i].err == err;
	return k;
}

static int
max_resumed(waiter *ws, int n)
{
	int m = 0;

	for (int i = 0; i < n; i++) {
		int r = __atomic_load_n(&ws[i].resumed, __ATOMIC_ACQUIRE);
		if (r > m)
			m = r;
	}
	return m;
}

/* A grant covering 5 of 20 parked waiters wakes the 5 oldest alone; the
 * next ask covers the other 15 and its grant wakes them. */
static void
test_fifo(void)
{
	static waiter ws[20];
	pf_msg *req, *req2;
	ing_billing_stats st;

	for (int i = 0; i < 20; i++)
		waiter_start(&ws[i], 1);
	ok(pump(ws, 20) == 20, "fifo: 20 waiters parked on one user");
	req = acct_recv(NULL, 0, 5000);
	ok(req != NULL && req->u.grant_request.amount >= E,
	    "fifo: one grant asked for");
	if (req == NULL)
		return;
	acct_answer(req, 5 * E, PF_OK, 7);
	pf_msg_free(req);
	/* the ask for the rest comes once the answer was applied */
	req2 = acct_recv(NULL, 0, 5000);
	ok(req2 != NULL, "fifo: asked again for the waiters left");
	ok(count_resumed(ws, 0, 5) == 5, "fifo: the 5 oldest were woken");
	ok(count_resumed(ws, 5, 20) == 0, "fifo: none of the other 15");
	pump(ws, 20);
	ok(count_err(ws, 20, PF_OK) == 5, "fifo: the 5 woken are admitted");
	ok(req2 != NULL && req2->u.grant_request.amount >= 15 * E,
	    "fifo: the second ask covers all 15 left");
	if (req2 == NULL)
		return;
	acct_answer(req2, req2->u.grant_request.amount, PF_OK, 7);
	pf_msg_free(req2);
	ok(pump_until_done(ws, 20), "fifo: no waiter left parked");
	ok(count_err(ws, 20, PF_OK) == 20, "fifo: all 20 admitted");
	ok(max_resumed(ws, 20) == 1, "fifo: each waiter woken once");
	ing_billing_get_stats(bill, &st);
	ok(st.open == 20, "fifo: 20 requests open");
	release_all(ws, 20);
}

/* Credit given back by a request that ends serves a parked waiter
 * without an answer from the accountant. */
static void
test_freed(void)
{
	static waiter ws[2];
	pf_msg *req;

	waiter_start(&ws[0], 2);
	req = acct_recv(NULL, 0, 5000);
	if (req != NULL)
		acct_answer(req, E, PF_OK, 7); /* exactly one estimate */
	pf_msg_free(req);
	ok(pump_until_done(ws, 1) && ws[0].err == PF_OK,
	    "freed: the first request admitted");
	waiter_start(&ws[1], 2);
	ok(ws[1].parked, "freed: the second waits for credit");
	req = acct_recv(NULL, 0, 5000);
	ok(req != NULL, "freed: and asked for it");
	ing_billing_abort(bill, ws[0].t.id);
	ws[0].err = PF_ECLOSED; /* released */
	ok(pump_until_done(&ws[1], 1) && ws[1].err == PF_OK,
	    "freed: the credit the first gave back admits the second");
	if (req != NULL)
		acct_answer(req, req->u.grant_request.amount, PF_OK, 7);
	pf_msg_free(req);
	release_all(ws, 2);
}

/* An answer that ends every wait: a refusal (no credit), or no verdict
 * (the accountant's database failed). */
static void
test_ends_all(int64_t user_id, int32_t status, pf_err want, const char *what)
{
	static waiter ws[8];
	pf_msg *req;

	for (int i = 0; i < 8; i++)
		waiter_start(&ws[i], user_id);
	req = acct_recv(NULL, 0, 5000);
	if (req != NULL)
		acct_answer(req, 0, status, 7);
	pf_msg_free(req);
	ok(pump_until_done(ws, 8), "%s: no waiter left parked", what);
	ok(count_err(ws, 8, want) == 8, "%s: all 8 end %s", what,
	    pf_strerror(want));
	ok(max_resumed(ws, 8) == 1, "%s: each woken once", what);
	release_all(ws, 8);
}

/* The accountant never answers: the deadline ends each wait. */
static void
test_deadline(void)
{
	static waiter ws[4];
	pf_msg *req;

	for (int i = 0; i < 4; i++)
		waiter_start(&ws[i], 4);
	req = acct_recv(NULL, 0, 5000);
	ok(req != NULL, "deadline: asked");
	ok(pump_until_done(ws, 4), "deadline: no waiter left parked");
	ok(count_err(ws, 4, PF_EAGAIN) == 4, "deadline: all 4 unavailable");
	release_all(ws, 4);
	if (req != NULL) /* late: its credit stays for the next requests */
		acct_answer(req, req->u.grant_request.amount, PF_OK, 7);
	pf_msg_free(req);
}

/* A wait the grant served but whose connection went away before it was
 * taken up gives its hold back. */
static void
test_granted_gone(void)
{
	static waiter ws[1];
	ing_billing_stats before, after;
	pf_msg *req;

	ing_billing_get_stats(bill, &before);
	waiter_start(&ws[0], 5);
	req = acct_recv(NULL, 0, 5000);
	if (req != NULL)
		acct_answer(req, E, PF_OK, 7);
	pf_msg_free(req);
	for (int i = 0; i < 5000 && !ws[0].resumed; i++)
		usleep(1000);
	ok(ws[0].resumed == 1, "gone: woken by the grant");
	ing_bill_wait_fini(bill, &ws[0].w); /* not admitted again */
	ws[0].released = 1;
	ing_billing_get_stats(bill, &after);
	ok(after.open == before.open, "gone: no request left open");
	/* its credit is there for the next one, without an ask */
	waiter_start(&ws[0], 5);
	ok(ws[0].done && ws[0].err == PF_OK, "gone: its hold was given back");
	release_all(ws, 1);
}

/* Random partial grants, refusals, failures, a new accountant epoch,
 * new waiters and requests ending, over three users: every wait ends,
 * and every open request is one that was admitted. */
static void
test_random(void)
{
	static waiter ws[MAXW];
	unsigned seed = 12345;
	int n = 0, asks = 0;
	ing_billing_stats before, after;

	ing_billing_get_stats(bill, &before);
	for (int round = 0; round < 300; round++) {
		int r = (int)(rand_r(&seed) % 16);
		if (n < MAXW && r < 6) {
			waiter_start(&ws[n], 10 + (int64_t)(rand_r(&seed) % 3));
			n++;
		} else if (r < 8 && n > 0) { /* a request ends */
			waiter *x = &ws[rand_r(&seed) % (unsigned)n];
			if (x->done && x->err == PF_OK) {
				ing_billing_abort(bill, x->t.id);
				x->err = PF_ECLOSED;
			}
		}
		pf_msg *req = r < 12 ? acct_recv(ws, n, 20) : NULL;
		if (req == NULL) {
			pump(ws, n);
			continue;
		}
		int64_t amt = req->u.grant_request.amount;
		int k = (int)(rand_r(&seed) % 20);
		asks++;
		if (k == 0)
			acct_answer(req, 0, PF_EDB, 7);
		else if (k == 1)
			acct_answer(req, 0, PF_OK, 7); /* refused */
		else if (k < 5)
			acct_answer(req, amt / 4, PF_OK, k == 2 ? 8 : 7);
		else
			acct_answer(req, amt, PF_OK, 7);
		pf_msg_free(req);
	}
	ok(pump_until_done(ws, n),
	    "random: no waiter left parked (%d waiters, %d asks)", n, asks);
	int admitted = count_err(ws, n, PF_OK);
	ok(admitted + count_err(ws, n, PF_ECLOSED) + count_err(ws, n, PF_EAGAIN)
	            + count_err(ws, n, PF_EDENIED)
	        == n,
	    "random: every admission ended");
	ing_billing_get_stats(bill, &after);
	ok(after.open - before.open == (uint64_t)admitted,
	    "random: the %d admitted are the requests open", admitted);
	release_all(ws, n);
}

/* acct_recv_user waits (at most ms) for the next grant.request for
 * user_id; the others (renewals of earlier tests' credit) are granted
 * what they ask.  NULL when none came. */
static pf_msg *
acct_recv_user(int64_t user_id, int ms)
{
	int64_t until = pf_clock_ms() + ms;
	int64_t left;

	while ((left = until - pf_clock_ms()) > 0) {
		pf_msg *m = acct_recv(NULL, 0, (int)left);
		if (m == NULL)
			return NULL;
		if (m->u.grant_request.user_id == user_id)
			return m;
		acct_answer(m, m->u.grant_request.amount, PF_OK, 7);
		pf_msg_free(m);
	}
	return NULL;
}

static int
same_stats(const ing_billing_stats *a, const ing_billing_stats *b)
{
	return a->admitted == b->admitted && a->denied == b->denied
	    && a->unavailable == b->unavailable && a->open == b->open;
}

/* Admissions without a wait (ing_billing_admit with w NULL): one that
 * would wait asks nothing, holds nothing and counts nothing; the same
 * admission with a wait then waits, is resumed by the grant and
 * admitted; one the credit covers is admitted at once, one refused
 * lately is refused at once. */
static void
test_no_wait(void)
{
	static waiter ws[3];
	ing_billing_stats before, after;
	pf_msg *req;

	ing_billing_get_stats(bill, &before);
	memset(ws, 0, sizeof(ws));
	ing_bill_wait_init(&ws[0].w, &ws[0], resume_cb);
	memcpy(ws[0].t.id, &next_id, sizeof(next_id));
	next_id++;
	ws[0].t.user_id = ws[0].t.token_id = 20;
	ws[0].t.model = "m";
	ws[0].t.estimate = E;
	ws[0].t.started_ms = pf_clock_ms();
	ws[0].t.deadline_ms = ws[0].t.started_ms + 60000;
	ok(ing_billing_admit(bill, &ws[0].t, NULL) == PF_EPENDING,
	    "no wait: no credit yet answers pending");
	ing_billing_get_stats(bill, &after);
	ok(same_stats(&before, &after), "no wait: pending counts nothing");
	req = acct_recv_user(20, 300);
	ok(req == NULL, "no wait: pending asks nothing");
	pf_msg_free(req);
	ok(ing_billing_admit(bill, &ws[0].t, NULL) == PF_EPENDING,
	    "no wait: asked again, still pending");
	ws[0].has_wait = 1;
	admit(&ws[0]);
	ok(ws[0].parked, "no wait: with a wait it parks");
	req = acct_recv_user(20, 5000);
	ok(req != NULL && req->u.grant_request.amount >= E,
	    "no wait: and the wait asked for credit");
	/* all it asked for: its estimate and some ahead */
	if (req != NULL)
		acct_answer(req, req->u.grant_request.amount, PF_OK, 7);
	pf_msg_free(req);
	ok(pump_until_done(ws, 1) && ws[0].done && ws[0].err == PF_OK
	        && ws[0].resumed == 1,
	    "no wait: resumed by the grant and admitted");
	ing_billing_get_stats(bill, &after);
	ok(after.open == before.open + 1
	        && after.admitted == before.admitted + 1,
	    "no wait: one request open");
	/* the credit left covers the next one: no wait, no ask */
	waiter_start(&ws[1], 20);
	ok(ws[1].done && ws[1].err == PF_OK && !ws[1].has_wait,
	    "no wait: covered admission answered at once without a wait");
	req = acct_recv_user(20, 300);
	ok(req == NULL, "no wait: covered admission asks nothing");
	pf_msg_free(req);
	ok(ing_billing_admit(bill, &ws[1].t, NULL) == PF_EEXIST,
	    "no wait: an id already open is refused");
	/* a refusal is trusted for a while: refused at once, no wait */
	waiter_start(&ws[2], 21);
	ok(ws[2].parked && ws[2].has_wait, "no wait: user 21 waits");
	req = acct_recv_user(21, 5000);
	if (req != NULL)
		acct_answer(req, 0, PF_OK, 7); /* refused */
	pf_msg_free(req);
	ok(pump_until_done(&ws[2], 1) && ws[2].err == PF_EDENIED,
	    "no wait: refused");
	ing_billing_get_stats(bill, &before);
	ws[2].t.id[PF_ID_LEN - 1] ^= 0x5a;
	ok(ing_billing_admit(bill, &ws[2].t, NULL) == PF_EDENIED,
	    "no wait: after a refusal refused at once");
	ing_billing_get_stats(bill, &after);
	ok(after.denied == before.denied + 1, "no wait: and counted denied");
	release_all(ws, 3);
}

/* asks and answers before those answer_asks answered: earlier tests may
 * leave asks unanswered */
static uint64_t asks0, answers0;

/* applied waits (bounded: 5 s) until the billing applied the answers to
 * the asks answered since asks0 (stats.answers); returns 0 when it did
 * not. */
static int
applied(uint64_t answered)
{
	ing_billing_stats st;

	for (int i = 0; i < 5000; i++) {
		ing_billing_get_stats(bill, &st);
		if (st.answers - answers0 >= answered - asks0)
			return 1;
		usleep(1000);
	}
	return 0;
}

/* too_big: req asks for more than PF_BILLING_GRANT_AHEAD_MAX + 1
 * estimates (E each) */
static int
too_big(const pf_msg *req)
{
	return req->u.grant_request.amount
	    > (int64_t)(PF_BILLING_GRANT_AHEAD_MAX + 1) * E;
}

/* answer_asks answers in full every grant.request queued since *answered
 * (stats.asks) for user_id, the others as they come, and waits until the
 * answers are applied; returns 0 when an ask did not come or an answer
 * was not applied (bounded: 5 s each).  *big: one was too_big. */
static int
answer_asks(int64_t user_id, uint64_t *answered, int *big)
{
	ing_billing_stats st;

	for (;;) {
		pf_msg *req;
		ing_billing_get_stats(bill, &st);
		if (*answered >= st.asks)
			return applied(*answered);
		req = acct_recv_user(user_id, 5000);
		if (req == NULL)
			return 0;
		(*answered)++;
		if (too_big(req))
			*big = 1;
		acct_answer(req, req->u.grant_request.amount, PF_OK, 7);
		pf_msg_free(req);
	}
}

/* Asking ahead.  With the accountant answering every ask in full, 60
 * admissions in a row on one token, each kept open, wait for credit
 * only the first time: the credit is asked for before it runs short
 * (asking only on exhaustion, for 5 estimates, parked every fifth).
 * Asks are sized by the holds open (at most PF_BILLING_GRANT_AHEAD_MAX
 * estimates): a burst of 16 more, with no answer in between, finds
 * its credit there.  An answer granting less than asked stops the
 * asking ahead for PF_BILLING_DENY_MS: the next admission asks nothing
 * (checked when it came within that time). */
static void
test_ahead(void)
{
	static waiter ws[124];
	ing_billing_stats before, after;
	uint64_t answered;
	int big = 0, lost = 0, n = 0, burst = 0;
	int64_t partial_ms = 0;
	pf_msg *req;

	ing_billing_get_stats(bill, &before);
	answered = asks0 = before.asks;
	answers0 = before.answers;
	for (n = 0; n < 60 && !lost; n++) {
		waiter_start(&ws[n], 30);
		lost = !answer_asks(30, &answered, &big)
		    || !pump_until_done(&ws[n], 1);
	}
	ing_billing_get_stats(bill, &after);
	ok(!lost, "ahead: every ask came, every admission ended");
	ok(count_err(ws, n, PF_OK) == 60, "ahead: all 60 admitted");
	ok(after.waits == before.waits + 1,
	    "ahead: only the first admission waited for credit");
	ok(after.asks > before.asks + 1, "ahead: asked ahead");
	/* a burst, no answer in between, until the credit asks ahead */
	for (; n < 124 && after.asks == answered; n++) {
		waiter_start(&ws[n], 30);
		burst += ws[n].done && ws[n].err == PF_OK && !ws[n].has_wait;
		ing_billing_get_stats(bill, &after);
	}
	ok(burst >= 16 && burst == n - 60,
	    "ahead: a burst of 16 and more admitted without a wait");
	req = after.asks > answered ? acct_recv_user(30, 5000) : NULL;
	ok(req != NULL, "ahead: and asked ahead for more");
	if (req != NULL && too_big(req))
		big = 1;
	if (req != NULL) {
		acct_answer(req, req->u.grant_request.amount, PF_OK, 7);
		answered++;
	}
	pf_msg_free(req);
	ok(!big, "ahead: no ask beyond PF_BILLING_GRANT_AHEAD_MAX");
	ok(applied(answered), "ahead: every answer applied");
	release_all(ws, n);

	/* a partial answer: user 31 */
	ing_billing_get_stats(bill, &before);
	answered = asks0 = before.asks;
	answers0 = before.answers;
	lost = 0;
	for (n = 0; n < 16 && !lost && partial_ms == 0; n++) {
		waiter_start(&ws[n], 31);
		ing_billing_get_stats(bill, &after);
		if (n > 0 && after.asks > answered) {
			req = acct_recv_user(31, 5000);
			lost = req == NULL;
			if (req != NULL) /* one estimate of the more asked */
				acct_answer(req, E, PF_OK, 7);
			pf_msg_free(req);
			answered++;
			lost = lost || !applied(answered);
			partial_ms = pf_clock_ms();
		} else {
			lost = !answer_asks(31, &answered, &big);
		}
		lost = lost || !pump_until_done(&ws[n], 1);
	}
	ok(!lost && partial_ms != 0 && count_err(ws, n, PF_OK) == n,
	    "ahead: user 31 asked ahead, was granted one estimate");
	/* the estimate granted covers one more, which would ask again */
	ing_billing_get_stats(bill, &before);
	waiter_start(&ws[n], 31);
	ing_billing_get_stats(bill, &after);
	ok(ws[n].done && ws[n].err == PF_OK && !ws[n].has_wait,
	    "ahead: the next admission is covered");
	if (pf_clock_ms() - partial_ms < PF_BILLING_DENY_MS)
		ok(after.asks == before.asks,
		    "ahead: and asks nothing after a partial answer");
	else
		ok(1, "# SKIP the admission came after PF_BILLING_DENY_MS");
	release_all(ws, n + 1);
}

/* close_waits ends the waits still parked. */
static void
test_close(void)
{
	static waiter ws[4];
	pf_msg *req;

	for (int i = 0; i < 4; i++)
		waiter_start(&ws[i], 6);
	req = acct_recv(NULL, 0, 5000);
	ing_billing_close_waits(bill);
	ok(pump_until_done(ws, 4), "close: no waiter left parked");
	ok(count_err(ws, 4, PF_ECLOSED) == 4, "close: all 4 closed");
	release_all(ws, 4);
	waiter_start(&ws[0], 6);
	ok(ws[0].done && ws[0].err == PF_ECLOSED && !ws[0].has_wait,
	    "close: an admission without a wait is closed at once");
	release_all(ws, 1);
	pf_msg_free(req);
}

int
main(void)
{
	static pf_config cfg;
	char dir[] = "/tmp/pf-test-billwait-XXXXXX";
	char errbuf[256];
	ing_billing_stats st;

	pf_config_defaults(&cfg);
	if (mkdtemp(dir) == NULL) {
		ok(0, "temporary spool directory");
		return tap_done();
	}
	snprintf(cfg.spool_dir, sizeof(cfg.spool_dir), "%s", dir);
	snprintf(cfg.accountant_url, sizeof(cfg.accountant_url),
	    "inproc://pf-test-billwait");
	snprintf(cfg.accountant_pub_url, sizeof(cfg.accountant_pub_url),
	    "inproc://pf-test-billwait-pub");
	ok(nng_rep0_open(&rep) == 0
	        && nng_listen(rep, cfg.accountant_url, NULL, 0) == 0,
	    "fake accountant listening");
	nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 20);
	ok(nng_pub0_open(&pub) == 0
	        && nng_listen(pub, cfg.accountant_pub_url, NULL, 0) == 0,
	    "fake accountant publishing");
	ok(ing_billing_start(&cfg, &bill, errbuf, sizeof(errbuf)) == PF_OK,
	    "billing started");
	test_fifo();
	test_freed();
	test_ends_all(3, PF_OK, PF_EDENIED, "refused");
	test_ends_all(7, PF_EDB, PF_EAGAIN, "no verdict");
	test_deadline();
	test_granted_gone();
	test_no_wait();
	test_ahead();
	test_random();
	test_close();
	ing_billing_get_stats(bill, &st);
	ok(st.open == 0, "nothing left open");
	ing_billing_stop(bill);
	nng_close(rep);
	nng_close(pub);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		ok(0, "spool directory removed");
	return tap_done();
}
