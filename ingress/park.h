/*
 * park.h -- a suspended HTTP connection waiting for an answer from
 * another thread (an API-key lookup, a credit grant).
 *
 * The HTTP thread parks the connection unless the answer came first; the
 * answering thread marks the park woken and resumes the connection when
 * it was parked.  The mutex orders the two, so a resume is never lost and
 * never issued for a connection that was not suspended.
 */
#ifndef PF_INGRESS_PARK_H
#define PF_INGRESS_PARK_H

#include <pthread.h>

typedef struct ing_park {
	pthread_mutex_t mu;
	void *conn;
	void (*resume)(void *conn);
	int suspended; /* conn parked */
	int woken;     /* the wait ended (before or after the park) */
} ing_park;

/* ing_park_init readies p for conn (no allocation). */
void ing_park_init(ing_park *p, void *conn, void (*resume)(void *conn));

/* ing_park_suspend parks conn through suspend(conn), under p->mu, unless
 * the wait already ended.  Returns 1 when parked (resume will be called),
 * 0 when the caller must look for the answer now. */
int ing_park_suspend(ing_park *p, void (*suspend)(void *conn));

/* ing_park_wake marks the wait ended and resumes conn when parked. */
void ing_park_wake(ing_park *p);

/* ing_park_rearm readies p for another wait (not woken, not parked). */
void ing_park_rearm(ing_park *p);

/* ing_park_fini destroys p's lock. */
void ing_park_fini(ing_park *p);

#endif /* PF_INGRESS_PARK_H */
