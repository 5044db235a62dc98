/*
 * h1resp.h -- incremental parser of one HTTP/1.x response (status line,
 * headers, body by Content-Length, chunked or until close).
 *
 * The parser keeps no bytes of its own.  wrk_h1resp_feed consumes what
 * it can and says how much; the caller keeps the rest (an unfinished
 * head or chunk-size line, or body a paused consumer did not take) and
 * presents it again, followed by newer bytes.  The head is parsed only
 * when all of it is present: a caller must be able to hold up to
 * PF_UPSTREAM_HEADER_MAX bytes of it.
 *
 * Interim 1xx heads (100 Continue, 103 Early Hints) are skipped.  The
 * body goes to a callback; it sees the payload only (chunk framing and
 * trailers removed).  Pure code: no I/O, no allocation.
 */
#ifndef PF_WORKERS_H1RESP_H
#define PF_WORKERS_H1RESP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* longest chunk-size line (with extensions) or trailer line */
#define WRK_H1_LINE_MAX 4096u

/*
 * wrk_h1_body_cb takes n > 0 body bytes.  Returns 1 when it took all of
 * them, 0 to pause (it took none: they are presented again later), or -1
 * to abort the response.
 */
typedef int (*wrk_h1_body_cb)(void *arg, const uint8_t *p, size_t n);

enum wrk_h1_state {
	WRK_H1_HEAD,       /* waiting for the (final) head */
	WRK_H1_LENGTH,     /* body of Content-Length bytes */
	WRK_H1_CHUNK_SIZE, /* a chunk-size line */
	WRK_H1_CHUNK_DATA, /* inside a chunk */
	WRK_H1_CHUNK_END,  /* the CRLF after a chunk's data */
	WRK_H1_TRAILER,    /* trailer lines up to the empty one */
	WRK_H1_UNTIL_EOF,  /* body runs to the connection's end */
	WRK_H1_DONE,       /* the response is complete */
};

typedef struct wrk_h1resp {
	/* the final head, valid once state > WRK_H1_HEAD */
	int status;         /* 100..999 */
	uint8_t minor;      /* HTTP/1.minor */
	uint8_t keep_alive; /* the connection may carry another request */
	uint8_t has_ctype;  /* the head has a Content-Type */
	/* its value: ctype_len bytes at ctype_at in the bytes given to the
	 * wrk_h1resp_feed call that parsed the head (a caller that wants
	 * it copies it then: the parser keeps no bytes, and a stream holds
	 * its parser for minutes) */
	uint32_t ctype_at, ctype_len;

	enum wrk_h1_state state;
	uint64_t left;   /* LENGTH / CHUNK_DATA: bytes still to come */
	size_t trailer;  /* trailer bytes so far (capped) */
	uint8_t no_body; /* the request was HEAD */
} wrk_h1resp;

/* wrk_h1resp_init prepares r for a response to a request; head_request:
 * the request was HEAD (no body follows any head). */
void wrk_h1resp_init(wrk_h1resp *r, int head_request);

/*
 * wrk_h1resp_feed parses p[0..n) and sets *used to the bytes consumed.
 * It stops after the final head (so the caller can look at it before any
 * body byte), when the body callback pauses, when the response is done,
 * or when the rest is an unfinished unit (head, line).  Errors:
 * PF_EPROTO (not HTTP/1.x or malformed framing), PF_ETOOBIG (a head over
 * PF_UPSTREAM_HEADER_MAX or a line over WRK_H1_LINE_MAX), PF_ECANCELED
 * (the callback aborted), PF_EAGAIN (the callback paused; *used is
 * still set).  After an error other than PF_EAGAIN, r is spent.
 */
PF_NODISCARD pf_err wrk_h1resp_feed(wrk_h1resp *r, const uint8_t *p, size_t n,
    size_t *used, wrk_h1_body_cb cb, void *arg);

/*
 * wrk_h1resp_eof tells r the connection ended.  PF_OK when the response
 * is complete (a body that runs until close is complete now); PF_EPROTO
 * when it ended early.
 */
PF_NODISCARD pf_err wrk_h1resp_eof(wrk_h1resp *r);

/* wrk_h1resp_has_head: the final head has been parsed. */
static inline int
wrk_h1resp_has_head(const wrk_h1resp *r)
{
	return r->state != WRK_H1_HEAD;
}

/* wrk_h1resp_done: the whole response has been parsed. */
static inline int
wrk_h1resp_done(const wrk_h1resp *r)
{
	return r->state == WRK_H1_DONE;
}

#endif /* PF_WORKERS_H1RESP_H */
