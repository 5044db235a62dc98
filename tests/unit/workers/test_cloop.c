/* Unit tests of the loop's cross-thread wakeup (workers/cloop.c): two
 * threads announce work in bursts while the loop takes it; every
 * announcement must end a wait (a lost one leaves the loop asleep until
 * its timeout).  The wakeup writes its eventfd only when the loop has
 * taken the previous one, so this also checks the flag never stays set
 * with nothing left to read. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "tests/tap.h"
#include "workers/cloop.h"

#define WAKERS 2
#define POSTS 200000 /* per waker */
/* a wait that lasts this long has lost a wakeup (bounded, not timed) */
#define WAIT_MS 10000

typedef struct shared {
	wrk_cloop *loop;
	atomic_long posted; /* work announced, all wakers */
} shared;

static void *
waker_main(void *arg)
{
	shared *sh = arg;

	for (int i = 0; i < POSTS; i++) {
		atomic_fetch_add(&sh->posted, 1);
		wrk_cloop_wakeup(sh->loop);
		/* bursts and gaps, so wakeups land on every part of a turn */
		if (i % 64 == 63)
			sched_yield();
	}
	return NULL;
}

int
main(void)
{
	shared sh = { 0 };
	pthread_t th[WAKERS];
	long seen = 0, turns = 0, timed_out = 0;

	ok(wrk_cloop_new(NULL, &sh.loop) == PF_OK, "a loop without curl");
	for (int i = 0; i < WAKERS; i++)
		pthread_create(&th[i], NULL, waker_main, &sh);
	while (seen < (long)WAKERS * POSTS) {
		/* the work announced before the wait must end it at once */
		if (wrk_cloop_wait(sh.loop, NULL, 0, WAIT_MS) != 0
		    && atomic_load(&sh.posted) > seen)
			timed_out++;
		wrk_cloop_run(sh.loop);
		seen = atomic_load(&sh.posted);
		turns++;
		if (timed_out > 0)
			break;
	}
	for (int i = 0; i < WAKERS; i++)
		pthread_join(th[i], NULL);
	ok(timed_out == 0,
	    "every announcement ended a wait (%ld turns for %d posts; %ld "
	    "waits ran out with work announced)",
	    turns, WAKERS * POSTS, timed_out);
	ok(turns < (long)WAKERS * POSTS,
	    "wakeups that came while one was pending cost no extra turn");
	wrk_cloop_free(sh.loop);
	return tap_done();
}
