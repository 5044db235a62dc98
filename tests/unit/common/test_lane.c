/*
 * test_lane.c -- the in-process relay lane: request order, the readiness
 * descriptor, closed intake, the queue cap, and the reply receiver
 * (registered address only; cleared means lost); pf_deadline_ts, its
 * push wait's deadline; a thread's local queue (pf_lane_bind_local).
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/lane.h"
#include "common/limits.h"
#include "tests/tap.h"

static int
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/* pop takes the oldest request, which must be an encoded one: 1, 0 when
 * none waits, -1 for a message (freed). */
static int
pop(pf_lane *l, uint8_t **buf, size_t *len)
{
	pf_msg *m = NULL;
	int got = pf_lane_take(l, buf, len, &m);

	if (m != NULL) {
		pf_msg_free(m);
		return -1;
	}
	return got;
}

static uint8_t *
dup_bytes(const char *s)
{
	uint8_t *b = malloc(strlen(s) + 1);

	if (b != NULL)
		memcpy(b, s, strlen(s) + 1);
	return b;
}

static void
test_requests(void)
{
	pf_lane *l = NULL;
	uint8_t *buf;
	size_t len;
	int order = 1;

	ok(pf_lane_new(&l) == PF_OK, "lane: new");
	if (l == NULL)
		return;
	ok(!readable(pf_lane_fd(l)), "lane: empty, fd not readable");
	ok(pop(l, &buf, &len) == 0, "lane: nothing to pop");
	ok(pf_lane_push(l, dup_bytes("one"), 3) == PF_OK
	        && pf_lane_push(l, dup_bytes("two"), 3) == PF_OK,
	    "lane: two pushed");
	ok(readable(pf_lane_fd(l)), "lane: requests wait, fd readable");
	for (int i = 0; i < 2; i++) {
		if (pop(l, &buf, &len) != 1) {
			order = 0;
			break;
		}
		order = order && len == 3
		    && memcmp(buf, i == 0 ? "one" : "two", 3) == 0;
		free(buf);
	}
	ok(order, "lane: popped in order");
	ok(!readable(pf_lane_fd(l)), "lane: drained, fd not readable");

	/* the cap */
	size_t pushed = 0;
	for (size_t i = 0; i < PF_LANE_QUEUE_MAX + 1; i++) {
		uint8_t *b = dup_bytes("x");
		pf_err err = pf_lane_push(l, b, 1);

		if (err != PF_OK) {
			ok(err == PF_EAGAIN && i == PF_LANE_QUEUE_MAX,
			    "lane: full after %zu requests (PF_EAGAIN)", i);
			free(b);
			break;
		}
		pushed++;
	}
	ok(pushed == PF_LANE_QUEUE_MAX, "lane: holds PF_LANE_QUEUE_MAX");
	{
		uint8_t *b = dup_bytes("y");

		ok(pf_lane_push_wait(l, b, 1, 20) == PF_EAGAIN,
		    "lane: full, a bounded wait gives up (PF_EAGAIN)");
		free(b);
	}
	while (pop(l, &buf, &len) == 1)
		free(buf);

	pf_lane_close_intake(l);
	buf = dup_bytes("late");
	ok(pf_lane_push(l, buf, 4) == PF_ECLOSED,
	    "lane: closed intake refuses (PF_ECLOSED), caller keeps buf");
	free(buf);
	/* queued requests are freed with the lane (ASan checks) */
	pf_lane_free(l);
}

struct got {
	int n;
	pf_msg_kind kind;
};

static void
receiver(void *arg, const pf_msg *m)
{
	struct got *g = arg;

	g->n++;
	g->kind = m->kind;
}

static void
test_replies(void)
{
	pf_lane *l = NULL;
	struct got g = { 0, 0 };
	pf_msg m = { .kind = PF_MSG_RELAY_END };
	const char *addr = "inproc://reply";
	const uint8_t *a = (const uint8_t *)addr;

	ok(pf_lane_new(&l) == PF_OK, "lane: new");
	if (l == NULL)
		return;
	ok(!pf_lane_has_reply(l, a, strlen(addr)), "reply: none registered");
	ok(pf_lane_reply(l, a, strlen(addr), &m) == PF_ENET,
	    "reply: no receiver, PF_ENET");
	ok(pf_lane_set_reply(l, addr, receiver, &g) == PF_OK,
	    "reply: receiver set");
	ok(pf_lane_has_reply(l, a, strlen(addr))
	        && !pf_lane_has_reply(l, a, strlen(addr) - 1)
	        && !pf_lane_has_reply(l, (const uint8_t *)"inproc://other", 14),
	    "reply: only the registered address matches");
	ok(pf_lane_reply(l, a, strlen(addr), &m) == PF_OK && g.n == 1
	        && g.kind == PF_MSG_RELAY_END,
	    "reply: handed to the receiver");
	ok(pf_lane_reply(l, (const uint8_t *)"inproc://other", 14, &m)
	            == PF_ENET
	        && g.n == 1,
	    "reply: another address is not delivered");
	pf_lane_clear_reply(l);
	ok(pf_lane_reply(l, a, strlen(addr), &m) == PF_ENET && g.n == 1,
	    "reply: cleared, PF_ENET");
	ok(pf_lane_set_reply(l, addr, NULL, NULL) == PF_EINVAL,
	    "reply: a NULL receiver is refused");
	pf_lane_free(l);
	pf_lane_free(NULL);
}

static int64_t
ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void
test_deadline(void)
{
	static const uint64_t ms[] = { 0, 1, 999, 1000, 1001, 1999, 123456 };

	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		struct timespec before, d, after;
		int64_t add = (int64_t)ms[i] * 1000000;

		clock_gettime(CLOCK_MONOTONIC, &before);
		pf_deadline_ts(CLOCK_MONOTONIC, ms[i], &d);
		clock_gettime(CLOCK_MONOTONIC, &after);
		ok(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L
		        && ts_ns(&d) >= ts_ns(&before) + add
		        && ts_ns(&d) <= ts_ns(&after) + add,
		    "deadline: %llu ms from now, normalised",
		    (unsigned long long)ms[i]);
	}
}

/* other_pop: pops once on a thread that has no local queue */
static void *
other_pop(void *arg)
{
	pf_lane *l = arg;
	uint8_t *buf = NULL;
	size_t len;

	if (pop(l, &buf, &len) == 1) {
		free(buf);
		return l; /* got one */
	}
	return NULL;
}

static void
test_local(void)
{
	pf_lane *l = NULL;
	uint8_t *buf;
	size_t len;
	pthread_t th;
	void *got = l;
	size_t pushed = 0;
	int order = 1;

	ok(pf_lane_new(&l) == PF_OK, "local: new lane");
	if (l == NULL)
		return;
	ok(pf_lane_local_pending(l) == 0, "local: none before bind");
	ok(pf_lane_bind_local(l) == PF_OK, "local: bound");
	ok(pf_lane_push(l, dup_bytes("a"), 1) == PF_OK
	        && pf_lane_push(l, dup_bytes("b"), 1) == PF_OK,
	    "local: two pushed");
	ok(pf_lane_local_pending(l) == 2 && pf_lane_pending(l) == 0,
	    "local: queued on the thread's own queue, not the shared one");
	ok(!readable(pf_lane_fd(l)), "local: nothing signalled");
	ok(pthread_create(&th, NULL, other_pop, l) == 0
	        && pthread_join(th, &got) == 0 && got == NULL,
	    "local: another thread cannot take them");
	for (int i = 0; i < 2; i++) {
		if (pop(l, &buf, &len) != 1) {
			order = 0;
			break;
		}
		order = order && len == 1 && buf[0] == (i == 0 ? 'a' : 'b');
		free(buf);
	}
	ok(order && pf_lane_local_pending(l) == 0,
	    "local: popped by the thread, in order");
	/* a full local queue overflows into the shared one */
	while (pushed < PF_LANE_LOCAL_MAX + 1
	    && pf_lane_push(l, dup_bytes("x"), 1) == PF_OK)
		pushed++;
	ok(pushed == PF_LANE_LOCAL_MAX + 1
	        && pf_lane_local_pending(l) == PF_LANE_LOCAL_MAX
	        && pf_lane_pending(l) == 1 && readable(pf_lane_fd(l)),
	    "local: full, the next push goes to the shared queue");
	ok(pthread_create(&th, NULL, other_pop, l) == 0
	        && pthread_join(th, &got) == 0 && got == l,
	    "local: the overflow is taken by another thread");
	pf_lane_close_intake(l);
	buf = dup_bytes("late");
	ok(pf_lane_push(l, buf, 4) == PF_ECLOSED, "local: closed intake");
	free(buf);
	/* frees what is left in the local queue (valgrind/ASan check) */
	pf_lane_unbind_local();
	ok(pf_lane_local_pending(l) == 0, "local: unbound");
	pf_lane_free(l);
}

/* a message pushed as it is comes back as it is (pf_lane_take); encoded
 * requests and messages keep one order */
static void
test_msgs(void)
{
	pf_lane *l = NULL;
	pf_msg m = { .version = PF_MSG_VERSION, .kind = PF_MSG_RELAY_CANCEL };
	pf_msg *c = NULL, *got = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	ok(pf_lane_new(&l) == PF_OK, "msgs: new lane");
	if (l == NULL)
		return;
	memset(m.u.relay_cancel.id, 7, PF_ID_LEN);
	ok(pf_msg_clone(&m, &c) == PF_OK
	        && pf_lane_push(l, dup_bytes("enc"), 3) == PF_OK
	        && pf_lane_push_msg(l, c, 0) == PF_OK,
	    "msgs: an encoded request and a message pushed");
	ok(pf_lane_take(l, &buf, &len, &got) == 1 && got == NULL && len == 3
	        && memcmp(buf, "enc", 3) == 0,
	    "msgs: the encoded one first, as bytes");
	free(buf);
	buf = NULL;
	ok(pf_lane_take(l, &buf, &len, &got) == 1 && got == c && buf == NULL
	        && got->kind == PF_MSG_RELAY_CANCEL,
	    "msgs: then the message itself");
	pf_msg_free(got);
	/* left in the lane: freed with it (ASan checks) */
	ok(pf_msg_clone(&m, &c) == PF_OK && pf_lane_push_msg(l, c, 0) == PF_OK,
	    "msgs: one left for pf_lane_free");
	pf_lane_free(l);
}

int
main(void)
{
	test_requests();
	test_msgs();
	test_local();
	test_replies();
	test_deadline();
	return tap_done();
}
