/*
 * park.c -- a suspended HTTP connection waiting for an answer (park.h).
 */
#include "ingress/park.h"

#include <string.h>

void
ing_park_init(ing_park *p, void *conn, void (*resume)(void *conn))
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	p->conn = conn;
	p->resume = resume;
}

int
ing_park_suspend(ing_park *p, void (*suspend)(void *conn))
{
	int parked = 0;

	pthread_mutex_lock(&p->mu);
	if (!p->woken) {
		p->suspended = 1;
		suspend(p->conn);
		parked = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return parked;
}

void
ing_park_wake(ing_park *p)
{
	pthread_mutex_lock(&p->mu);
	p->woken = 1;
	if (p->suspended && p->conn != NULL) {
		p->suspended = 0;
		p->resume(p->conn);
	}
	pthread_mutex_unlock(&p->mu);
}

void
ing_park_rearm(ing_park *p)
{
	pthread_mutex_lock(&p->mu);
	p->woken = 0;
	p->suspended = 0;
	pthread_mutex_unlock(&p->mu);
}

void
ing_park_fini(ing_park *p)
{
	pthread_mutex_destroy(&p->mu);
}
