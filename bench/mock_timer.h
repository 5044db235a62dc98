/*
 * mock_timer.h -- resumes suspended libmicrohttpd connections when their
 * delay expires.
 *
 * One thread sleeps on a condition variable until the earliest deadline
 * of a min-heap; MHD callbacks never sleep.  A connection is suspended and
 * scheduled under the same lock, so the timer never resumes a connection
 * that is not suspended, and after mock_timer_close nothing can be
 * suspended any more (MHD_stop_daemon requires no suspended connection).
 */
#ifndef PF_BENCH_MOCK_TIMER_H
#define PF_BENCH_MOCK_TIMER_H

#include <stdint.h>

#include "common/err.h"

struct MHD_Connection;

typedef struct mock_timer mock_timer;

/* mock_now_ms returns CLOCK_MONOTONIC in milliseconds. */
uint64_t mock_now_ms(void);

/* mock_timer_new starts the timer thread.  Errors: PF_ENOMEM, PF_EIO
 * (thread creation failed). */
PF_NODISCARD pf_err mock_timer_new(mock_timer **ret);

/*
 * mock_timer_suspend suspends conn (MHD_suspend_connection; call it only
 * from an MHD callback of conn) and resumes it at due_ms (mock_now_ms
 * clock).  Errors: PF_ECLOSED after mock_timer_close (conn is left
 * running), PF_ENOMEM.
 */
PF_NODISCARD pf_err mock_timer_suspend(
    mock_timer *t, struct MHD_Connection *conn, uint64_t due_ms);

/* mock_timer_pending returns the number of suspended connections. */
uint64_t mock_timer_pending(mock_timer *t);

/* mock_timer_close resumes every scheduled connection now, refuses new
 * ones and joins the thread; idempotent.  Never call it from an MHD
 * callback. */
void mock_timer_close(mock_timer *t);

/* mock_timer_free closes and frees t; NULL is a no-op. */
void mock_timer_free(mock_timer *t);

#endif /* PF_BENCH_MOCK_TIMER_H */
