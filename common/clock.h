/*
 * clock.h -- milliseconds from the two clocks every role reads.
 *
 * pf_clock_ms: wall clock (unix ms), for deadlines and times that cross
 * processes or reach the database.  pf_mono_ms: monotonic ms, for
 * intervals inside one process (immune to clock steps).  pf_deadline_ts:
 * an absolute time on either clock for pthread_cond_timedwait.
 */
#ifndef PF_COMMON_CLOCK_H
#define PF_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* pf_clock_ms returns CLOCK_REALTIME in milliseconds since the epoch. */
static inline int64_t
pf_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pf_mono_ms returns CLOCK_MONOTONIC in milliseconds. */
static inline int64_t
pf_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* pf_deadline_ts sets *ts to ms milliseconds from now on clock
 * (CLOCK_REALTIME, or CLOCK_MONOTONIC for a condition variable set to it),
 * for pthread_cond_timedwait. */
static inline void
pf_deadline_ts(clockid_t clock, uint64_t ms, struct timespec *ts)
{
	clock_gettime(clock, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

#endif /* PF_COMMON_CLOCK_H */
