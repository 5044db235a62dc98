/*
 * guard.c -- header deadline for client connections.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "common/thread.h"
#include "ingress/guard.h"

#define SWEEP_MS 250

struct ing_guard_rec {
	int fd;
	int state;        /* ING_GUARD_* */
	int64_t since_ms; /* monotonic: when the state began */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct ing_guard_rec *prev, *next;
};

struct ing_guard {
	uint32_t header_ms;
	uint32_t body_ms;
	pthread_mutex_t mu; /* guards the list, stop, cut */
	pthread_cond_t cv;
	ing_guard_rec *head;
	int stop;
	uint64_t cut;
	pthread_t thread;
	int started;
};

/* same_peer says whether fd still is the connection rec was made for. */
static int
same_peer(const ing_guard_rec *rec)
{
	struct sockaddr_storage now;
	socklen_t len = sizeof(now);

	memset(&now, 0, sizeof(now));
	if (getpeername(rec->fd, (struct sockaddr *)&now, &len) != 0)
		return 0;
	return len == rec->peer_len && memcmp(&now, &rec->peer, len) == 0;
}

static void *
sweep_main(void *arg)
{
	ing_guard *g = arg;
	pf_thread_name("pf-guard-sweep");

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts;
		int64_t now;

		pf_deadline_ts(CLOCK_REALTIME, SWEEP_MS, &ts);
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		now = pf_mono_ms();
		for (ing_guard_rec *r = g->head; r != NULL; r = r->next) {
			int64_t limit = r->state == ING_GUARD_HEADERS
			    ? g->header_ms
			    : g->body_ms;

			if (r->state == ING_GUARD_RUNNING || r->fd < 0
			    || now - r->since_ms < limit)
				continue;
			/* the owner closes the fd only after removing the
			 * record, under this lock: fd is still this socket */
			if (same_peer(r))
				shutdown(r->fd, SHUT_RDWR);
			r->fd = -1; /* once */
			g->cut++;
		}
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

pf_err
ing_guard_start(uint32_t header_ms, uint32_t body_ms, ing_guard **ret)
{
	ing_guard *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return PF_ENOMEM;
	g->header_ms = header_ms;
	g->body_ms = body_ms;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	if (pthread_create(&g->thread, NULL, sweep_main, g) != 0) {
		ing_guard_free(g);
		return PF_EIO;
	}
	g->started = 1;
	*ret = g;
	return PF_OK;
}

ing_guard_rec *
ing_guard_add(ing_guard *g, int fd)
{
	ing_guard_rec *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->fd = fd;
	r->peer_len = sizeof(r->peer);
	if (getpeername(fd, (struct sockaddr *)&r->peer, &r->peer_len) != 0)
		r->fd = -1; /* cannot tell it apart later: never cut */
	r->since_ms = pf_mono_ms();
	pthread_mutex_lock(&g->mu);
	r->next = g->head;
	if (g->head != NULL)
		g->head->prev = r;
	g->head = r;
	pthread_mutex_unlock(&g->mu);
	return r;
}

void
ing_guard_busy(ing_guard *g, ing_guard_rec *rec, int state)
{
	if (rec == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (rec->state != state) {
		rec->state = state;
		rec->since_ms = pf_mono_ms();
	}
	pthread_mutex_unlock(&g->mu);
}

void
ing_guard_remove(ing_guard *g, ing_guard_rec *rec)
{
	if (rec == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (rec->prev != NULL)
		rec->prev->next = rec->next;
	else
		g->head = rec->next;
	if (rec->next != NULL)
		rec->next->prev = rec->prev;
	pthread_mutex_unlock(&g->mu);
	free(rec);
}

uint64_t
ing_guard_cut(ing_guard *g)
{
	uint64_t n;

	pthread_mutex_lock(&g->mu);
	n = g->cut;
	pthread_mutex_unlock(&g->mu);
	return n;
}

void
ing_guard_free(ing_guard *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (g->started)
		pthread_join(g->thread, NULL);
	while (g->head != NULL) {
		ing_guard_rec *r = g->head;

		g->head = r->next;
		free(r);
	}
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}
