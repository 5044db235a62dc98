/*
 * lane.c -- the in-process relay lane: a request ring with an eventfd, and
 * one reply receiver behind a read-write lock.
 */
#include "common/lane.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/limits.h"

struct lane_item {
	uint8_t *buf; /* an encoded message, or NULL: */
	size_t len;
	pf_msg *msg; /* a message as it is (pf_lane_push_msg) */
};

/* A thread's own queue (pf_lane_bind_local); touched only by the thread. */
struct lane_local {
	const pf_lane *lane;
	struct lane_item ring[PF_LANE_LOCAL_MAX];
	size_t head, n;
};

static _Thread_local struct lane_local *tl_local;

struct pf_lane {
	pthread_mutex_t mu; /* guards the ring, closed, the eventfd state */
	struct lane_item ring[PF_LANE_QUEUE_MAX];
	size_t head, n;
	int closed;
	int efd;
	pthread_cond_t room; /* a request was taken (or intake closed) */
	size_t waiters;
	pthread_rwlock_t rw; /* guards the receiver; held (read) by a call */
	char addr[PF_URL_MAX + 1];
	pf_lane_reply_fn fn;
	pf_lane_flush_fn flush;
	void *arg;
};

pf_err
pf_lane_new(pf_lane **ret)
{
	pf_lane *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return PF_ENOMEM;
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		free(l);
		return PF_EIO;
	}
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->room, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&l->mu, NULL);
	pthread_rwlock_init(&l->rw, NULL);
	*ret = l;
	return PF_OK;
}

void
pf_lane_free(pf_lane *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->ring[(l->head + i) % PF_LANE_QUEUE_MAX].buf);
		pf_msg_free(l->ring[(l->head + i) % PF_LANE_QUEUE_MAX].msg);
	}
	close(l->efd);
	pthread_cond_destroy(&l->room);
	pthread_rwlock_destroy(&l->rw);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* signal sets (on) or clears (off) the eventfd's readability (l->mu held). */
static void
signal_fd(pf_lane *l, int on)
{
	uint64_t v = 1;
	ssize_t rv;

	if (on)
		rv = write(l->efd, &v, sizeof(v));
	else
		rv = read(l->efd, &v, sizeof(v));
	(void)rv; /* nonblocking: only "already set" / "already clear" */
}

pf_err
pf_lane_push(pf_lane *l, uint8_t *buf, size_t len)
{
	return pf_lane_push_wait(l, buf, len, 0);
}

/* local_push queues on the calling thread's own queue: 1 when it did. */
static int
local_push(pf_lane *l, const struct lane_item *item)
{
	struct lane_local *q = tl_local;

	if (q == NULL || q->lane != l || q->n == PF_LANE_LOCAL_MAX
	    || __atomic_load_n(&l->closed, __ATOMIC_ACQUIRE))
		return 0;
	q->ring[(q->head + q->n) % PF_LANE_LOCAL_MAX] = *item;
	q->n++;
	return 1;
}

static pf_err push_item(
    pf_lane *l, const struct lane_item *item, uint32_t wait_ms);

pf_err
pf_lane_push_wait(pf_lane *l, uint8_t *buf, size_t len, uint32_t wait_ms)
{
	struct lane_item item = { buf, len, NULL };

	return push_item(l, &item, wait_ms);
}

pf_err
pf_lane_push_msg(pf_lane *l, pf_msg *msg, uint32_t wait_ms)
{
	struct lane_item item = { NULL, 0, msg };

	return push_item(l, &item, wait_ms);
}

/* push_item queues item (the lane owns it on success). */
static pf_err
push_item(pf_lane *l, const struct lane_item *item, uint32_t wait_ms)
{
	pf_err err = PF_OK;

	if (local_push(l, item))
		return PF_OK;
	/* a loop that takes its own requests must not wait for room: it
	 * would only wait for itself */
	if (tl_local != NULL && tl_local->lane == l)
		wait_ms = 0;
	pthread_mutex_lock(&l->mu);
	if (wait_ms > 0 && l->n == PF_LANE_QUEUE_MAX && !l->closed) {
		struct timespec until;

		pf_deadline_ts(CLOCK_MONOTONIC, wait_ms, &until);
		l->waiters++;
		while (l->n == PF_LANE_QUEUE_MAX && !l->closed
		    && pthread_cond_timedwait(&l->room, &l->mu, &until) == 0)
			;
		l->waiters--;
	}
	if (l->closed) {
		err = PF_ECLOSED;
	} else if (l->n == PF_LANE_QUEUE_MAX) {
		err = PF_EAGAIN;
	} else {
		l->ring[(l->head + l->n) % PF_LANE_QUEUE_MAX] = *item;
		if (l->n++ == 0)
			signal_fd(l, 1);
	}
	pthread_mutex_unlock(&l->mu);
	return err;
}

/* take_item takes the oldest request (the calling thread's own first):
 * 1, or 0 when none waits. */
static int
take_item(pf_lane *l, struct lane_item *ret)
{
	struct lane_local *q = tl_local;
	int got = 0;

	if (q != NULL && q->lane == l && q->n > 0) {
		*ret = q->ring[q->head];
		q->head = (q->head + 1) % PF_LANE_LOCAL_MAX;
		q->n--;
		return 1;
	}
	pthread_mutex_lock(&l->mu);
	if (l->n > 0) {
		*ret = l->ring[l->head];
		l->head = (l->head + 1) % PF_LANE_QUEUE_MAX;
		if (--l->n == 0)
			signal_fd(l, 0);
		if (l->waiters > 0)
			pthread_cond_signal(&l->room);
		got = 1;
	}
	pthread_mutex_unlock(&l->mu);
	return got;
}

int
pf_lane_take(pf_lane *l, uint8_t **ret_buf, size_t *ret_len, pf_msg **ret_msg)
{
	struct lane_item it;

	if (!take_item(l, &it))
		return 0;
	*ret_buf = it.buf;
	*ret_len = it.len;
	*ret_msg = it.msg;
	return 1;
}

pf_err
pf_lane_bind_local(pf_lane *l)
{
	struct lane_local *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return PF_ENOMEM;
	pf_lane_unbind_local();
	q->lane = l;
	tl_local = q;
	return PF_OK;
}

void
pf_lane_unbind_local(void)
{
	struct lane_local *q = tl_local;

	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n; i++) {
		free(q->ring[(q->head + i) % PF_LANE_LOCAL_MAX].buf);
		pf_msg_free(q->ring[(q->head + i) % PF_LANE_LOCAL_MAX].msg);
	}
	tl_local = NULL;
	free(q);
}

size_t
pf_lane_local_pending(const pf_lane *l)
{
	const struct lane_local *q = tl_local;

	return q != NULL && q->lane == l ? q->n : 0;
}

size_t
pf_lane_pending(pf_lane *l)
{
	size_t n;

	pthread_mutex_lock(&l->mu);
	n = l->n;
	pthread_mutex_unlock(&l->mu);
	return n;
}

int
pf_lane_fd(const pf_lane *l)
{
	return l->efd;
}

void
pf_lane_close_intake(pf_lane *l)
{
	pthread_mutex_lock(&l->mu);
	__atomic_store_n(&l->closed, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&l->room);
	pthread_mutex_unlock(&l->mu);
}

pf_err
pf_lane_set_reply(pf_lane *l, const char *addr, pf_lane_reply_fn fn, void *arg)
{
	size_t n = strlen(addr);

	if (n > PF_URL_MAX || fn == NULL)
		return PF_EINVAL;
	/* the write lock waits for every running call to the old receiver */
	pthread_rwlock_wrlock(&l->rw);
	memcpy(l->addr, addr, n + 1);
	l->fn = fn;
	l->arg = arg;
	pthread_rwlock_unlock(&l->rw);
	return PF_OK;
}

void
pf_lane_clear_reply(pf_lane *l)
{
	/* the write lock waits for every running call */
	pthread_rwlock_wrlock(&l->rw);
	l->addr[0] = '\0';
	l->fn = NULL;
	l->flush = NULL;
	l->arg = NULL;
	pthread_rwlock_unlock(&l->rw);
}

void
pf_lane_set_flush(pf_lane *l, pf_lane_flush_fn fn)
{
	pthread_rwlock_wrlock(&l->rw);
	l->flush = fn;
	pthread_rwlock_unlock(&l->rw);
}

void
pf_lane_flush(pf_lane *l)
{
	pthread_rwlock_rdlock(&l->rw);
	if (l->fn != NULL && l->flush != NULL)
		l->flush(l->arg);
	pthread_rwlock_unlock(&l->rw);
}

/* matches says whether the receiver is registered for addr (l->rw held). */
static int
matches(const pf_lane *l, const uint8_t *addr, size_t len)
{
	return l->fn != NULL && strlen(l->addr) == len
	    && memcmp(l->addr, addr, len) == 0;
}

int
pf_lane_has_reply(pf_lane *l, const uint8_t *addr, size_t len)
{
	int yes;

	pthread_rwlock_rdlock(&l->rw);
	yes = matches(l, addr, len);
	pthread_rwlock_unlock(&l->rw);
	return yes;
}

pf_err
pf_lane_reply(pf_lane *l, const uint8_t *addr, size_t len, const pf_msg *m)
{
	pf_err err = PF_ENET;

	pthread_rwlock_rdlock(&l->rw);
	if (matches(l, addr, len)) {
		l->fn(l->arg, m);
		err = PF_OK;
	}
	pthread_rwlock_unlock(&l->rw);
	return err;
}
