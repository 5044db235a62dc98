/*
 * mock_timer.c -- a min-heap of (deadline, suspended connection) served by
 * one thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <microhttpd.h>

#include "bench/mock_timer.h"
#include "common/clock.h"

typedef struct timer_entry {
	uint64_t due_ms;
	struct MHD_Connection *conn;
} timer_entry;

struct mock_timer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	timer_entry *heap;
	size_t n, cap;
	bool closed;
	bool joined;
};

uint64_t
mock_now_ms(void)
{
	return (uint64_t)pf_mono_ms();
}

static void
heap_swap(timer_entry *h, size_t a, size_t b)
{
	timer_entry tmp = h[a];

	h[a] = h[b];
	h[b] = tmp;
}

static void
heap_up(timer_entry *h, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (h[parent].due_ms <= h[i].due_ms)
			break;
		heap_swap(h, parent, i);
		i = parent;
	}
}

static void
heap_down(timer_entry *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n && h[l].due_ms < h[m].due_ms)
			m = l;
		if (r < n && h[r].due_ms < h[m].due_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(h, m, i);
		i = m;
	}
}

static void *
timer_main(void *arg)
{
	mock_timer *t = arg;

	pthread_mutex_lock(&t->mu);
	while (!t->closed) {
		uint64_t now;

		if (t->n == 0) {
			pthread_cond_wait(&t->cv, &t->mu);
			continue;
		}
		now = mock_now_ms();
		if (t->heap[0].due_ms > now) {
			uint64_t due = t->heap[0].due_ms;
			struct timespec ts;

			pf_deadline_ts(CLOCK_MONOTONIC, due - now, &ts);
			pthread_cond_timedwait(&t->cv, &t->mu, &ts);
			continue;
		}
		while (t->n > 0 && t->heap[0].due_ms <= now) {
			struct MHD_Connection *conn = t->heap[0].conn;

			t->heap[0] = t->heap[--t->n];
			heap_down(t->heap, t->n, 0);
			MHD_resume_connection(conn);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

pf_err
mock_timer_new(mock_timer **ret)
{
	mock_timer *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	int rc;

	if (t == NULL)
		return PF_ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&t->thread, NULL, timer_main, t);
	if (rc != 0) {
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
		free(t);
		return rc == ENOMEM || rc == EAGAIN ? PF_ENOMEM : PF_EIO;
	}
	*ret = t;
	return PF_OK;
}

pf_err
mock_timer_suspend(mock_timer *t, struct MHD_Connection *conn, uint64_t due_ms)
{
	pf_err err = PF_OK;

	pthread_mutex_lock(&t->mu);
	if (t->closed) {
		err = PF_ECLOSED;
		goto out;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap != 0 ? t->cap * 2 : 256;
		timer_entry *h = realloc(t->heap, cap * sizeof(*h));

		if (h == NULL) {
			err = PF_ENOMEM;
			goto out;
		}
		t->heap = h;
		t->cap = cap;
	}
	MHD_suspend_connection(conn);
	t->heap[t->n].due_ms = due_ms;
	t->heap[t->n].conn = conn;
	heap_up(t->heap, t->n);
	t->n++;
	/* only a new earliest deadline needs the thread to wake early */
	if (t->heap[0].conn == conn)
		pthread_cond_signal(&t->cv);
out:
	pthread_mutex_unlock(&t->mu);
	return err;
}

uint64_t
mock_timer_pending(mock_timer *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = t->n;
	pthread_mutex_unlock(&t->mu);
	return n;
}

void
mock_timer_close(mock_timer *t)
{
	bool join;

	pthread_mutex_lock(&t->mu);
	t->closed = true;
	for (size_t i = 0; i < t->n; i++)
		MHD_resume_connection(t->heap[i].conn);
	t->n = 0;
	pthread_cond_signal(&t->cv);
	join = !t->joined;
	t->joined = true;
	pthread_mutex_unlock(&t->mu);
	if (join)
		pthread_join(t->thread, NULL);
}

void
mock_timer_free(mock_timer *t)
{
	if (t == NULL)
		return;
	mock_timer_close(t);
	free(t->heap);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
