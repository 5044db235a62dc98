/*
 * loadgen_http.h -- incremental HTTP/1.1 response parser for the load
 * generator: status line, the few headers that frame a body
 * (Content-Length, Transfer-Encoding: chunked, Connection, Content-Type)
 * and x-request-id (for the billing check),
 * chunked decoding, and, for text/event-stream bodies, SSE event
 * boundaries, the "data: [DONE]" marker and usage token counts.
 *
 * Bytes are fed as they arrive; nothing is allocated; the body is not
 * kept (only a small tail, to find the usage object).  Every line is
 * capped by PF_LOADGEN_LINE_MAX and an oversized one is malformed.
 */
#ifndef PF_BENCH_LOADGEN_HTTP_H
#define PF_BENCH_LOADGEN_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

typedef enum lg_http_rc {
	LG_HTTP_MORE = 0,  /* response not complete yet */
	LG_HTTP_DONE,      /* response complete; *used bytes consumed */
	LG_HTTP_MALFORMED, /* not a valid HTTP/1.x response */
} lg_http_rc;

typedef struct lg_http {
	/* results, valid as described */
	int status;       /* after headers_done */
	int headers_done; /* the header block ended */
	int sse;          /* Content-Type text/event-stream */
	int keep_alive;   /* connection reusable after DONE */
	int until_close;  /* body delimited by the end of the connection */
	int done_marker;  /* saw "data: [DONE]" or Anthropic's message_stop */
	uint64_t events;  /* SSE events completed so far */
	uint64_t body_bytes;
	int64_t prompt_tokens;     /* -1 until a usage object was seen */
	int64_t completion_tokens; /* -1 until a usage object was seen */
	/* x-request-id header ("" if absent, too long or not [0-9A-Za-z_-]) */
	char request_id[PF_LOADGEN_REQUEST_ID_MAX + 1];
	/* private */
	int _state;
	int _chunked;
	uint64_t _remaining; /* Content-Length or chunk bytes left */
	int _ev_nl;          /* last body byte of this event was '\n' */
	size_t _ev_len;      /* bytes of the current event kept in _ev */
	size_t _line_len;
	char _line[PF_LOADGEN_LINE_MAX];
	char _ev
	    [PF_LOADGEN_EVENT_KEEP]; /* event start (SSE) or body tail (other) */
} lg_http;

/* lg_http_reset prepares p for the next response on a connection. */
void lg_http_reset(lg_http *p);

/*
 * lg_http_feed parses data[0..len).  Returns LG_HTTP_MORE when every byte
 * was consumed and more are needed, LG_HTTP_DONE when the response ended
 * after *used bytes (the rest belongs to no request: a pipelined response
 * is not expected), LG_HTTP_MALFORMED on a protocol error.  *new_events
 * counts the SSE events that completed within this call.
 */
lg_http_rc lg_http_feed(lg_http *p, const char *data, size_t len, size_t *used,
    uint32_t *new_events);

/*
 * lg_http_eof tells p the peer closed the connection.  Returns
 * LG_HTTP_DONE when that ends a body delimited by close, else
 * LG_HTTP_MALFORMED (a truncated response).
 */
lg_http_rc lg_http_eof(lg_http *p);

#endif /* PF_BENCH_LOADGEN_HTTP_H */
