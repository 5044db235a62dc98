/*
 * sse.h -- incremental splitter for server-sent events from upstream.
 *
 * Upstream bytes arrive in arbitrary slices (an event, a line, even a CRLF
 * can be split across curl write callbacks).  The splitter finds the end of
 * each event (a blank line; line ends LF, CRLF or CR) and hands every
 * complete event to a callback at once, verbatim including its terminating
 * blank line, so nothing waits behind the next event.  Blank lines before
 * an event are dropped.  Only the unfinished tail is buffered, capped.
 *
 * A lone CR at the very end of a slice is only known to end a line when
 * the next byte arrives (it may be the first half of a CRLF); streams that
 * use bare CR line ends therefore see an event when the next byte comes.
 */
#ifndef PF_WORKERS_SSE_H
#define PF_WORKERS_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "workers/buf.h"

/* wrk_sse_event_cb receives one complete event; the bytes are valid only
 * during the call.  A non-zero return stops wrk_sse_feed with that
 * error. */
typedef pf_err (*wrk_sse_event_cb)(void *arg, const uint8_t *ev, size_t len);

typedef struct wrk_sse {
	wrk_buf _tail;    /* unfinished event (bytes before this slice) */
	size_t _max;      /* cap on one event, bytes */
	size_t _line;     /* bytes in the current line, terminator excluded */
	uint8_t _cr;      /* last byte seen was a CR */
	uint8_t _content; /* current event has a non-empty line */
} wrk_sse;

/* wrk_sse_init prepares s for a new stream; events over max bytes are
 * refused.  No allocation. */
void wrk_sse_init(wrk_sse *s, size_t max);

/* wrk_sse_fini frees s's buffer; s may be re-initialised. */
void wrk_sse_fini(wrk_sse *s);

/*
 * wrk_sse_feed scans len bytes and calls cb for every event completed by
 * them, in order.  Errors: PF_ETOOBIG (an event exceeds the cap),
 * PF_ENOMEM, or cb's error; after an error s must only be finalised.
 */
PF_NODISCARD pf_err wrk_sse_feed(
    wrk_sse *s, const void *data, size_t len, wrk_sse_event_cb cb, void *arg);

/*
 * wrk_sse_finish is called at the end of the stream.  A CR that was the
 * last byte still ends its line (and may complete an event, passed to
 * cb); an event the stream ended inside is discarded, as the SSE spec's
 * parser does -- check wrk_sse_buffered first to notice one.  Errors as
 * wrk_sse_feed.
 */
PF_NODISCARD pf_err wrk_sse_finish(wrk_sse *s, wrk_sse_event_cb cb, void *arg);

/* wrk_sse_buffered returns the bytes held for the unfinished event. */
size_t wrk_sse_buffered(const wrk_sse *s);

/*
 * wrk_sse_data extracts the data of one event: the values of its "data:"
 * lines (one leading space removed) joined by "\n", into out (reset first,
 * NUL-terminated).  Returns 1 when the event has at least one data line,
 * 0 when none (comments, other fields); -1 on allocation failure.
 */
int wrk_sse_data(const uint8_t *ev, size_t len, wrk_buf *out);

#endif /* PF_WORKERS_SSE_H */
