/*
 * xfer_impl.h -- private to xfer.c and attempt.c: the relay struct and the
 * calls between the two files.  xfer.c owns the relay's life, its replies
 * and the scheduling; attempt.c owns one upstream attempt (curl).
 */
#ifndef PF_WORKERS_XFER_IMPL_H
#define PF_WORKERS_XFER_IMPL_H

#include <curl/curl.h>
#include <stdint.h>

#include "common/ctype.h"
#include "common/ids.h"
#include "common/limits.h"
#include "workers/convert.h"
#include "workers/provider.h"
#include "workers/sse.h"
#include "workers/xfer.h"

enum phase {
	PHASE_ATTEMPT, /* an upstream transfer is running */
	PHASE_DRAIN,   /* relay.end queued, waiting for the socket */
	PHASE_DONE,    /* free at the next tick */
};

enum mode {
	MODE_NONE,    /* no body byte yet */
	MODE_SSE,     /* 2xx event stream: event by event */
	MODE_BODY,    /* 2xx other: collect, capped */
	MODE_ERRBODY, /* error status: keep the first bytes */
};

/* Why we aborted a transfer from a callback. */
enum abort_why {
	ABORT_NONE,
	ABORT_HEADERS_BIG,
	ABORT_BODY_BIG,
	ABORT_EVENT_BIG,
	ABORT_NOMEM,
	ABORT_REPLY, /* the ingress cannot be reached any more */
};

/* An upstream (by channel) this thread sends transfers to: see
 * attempt.c, "busy HTTP/1.x upstreams". */
struct wrk_host {
	int64_t channel_id;
	uint32_t live;   /* transfers running to it */
	uint32_t starts; /* transfers started while busy */
	uint8_t busy;    /* HTTP/1.x, and the last look found no free conn */
};

/* Fields are ordered so that the struct has no holes worth naming: a
 * stream holds one for minutes. */
struct wrk_xfer {
	wrk_xfer *next, *prev;
	wrk_xfer *hnext;          /* same id bucket */
	wrk_xfer *pnext, **pprev; /* env->_pend or _wait; NULL: neither */
	wrk_env *env;
	pf_msg *msg;
	const pf_relay_request *rq;
	wrk_outq q;
	int64_t deadline; /* request deadline, monotonic ms */
	enum phase phase;
	uint8_t waits; /* on env->_wait */
	char idhex[PF_ID_HEX_LEN + 1];

	/* current attempt */
	uint32_t cand;
	uint32_t attempts;
	const wrk_provider *prov;
	CURL *easy;             /* the transfer, by curl */
	struct wrk_h1_conn *h1; /* or by our own client (h1.h) */
	struct wrk_host *host;  /* counted in host->live while easy runs */
	struct curl_slist *headers;
	wrk_body body;
	enum mode mode;
	enum abort_why abort_why;
	int sock_errno;      /* socket() failed with it (0: it did not fail) */
	uint8_t easy_stream; /* easy belongs to the stream pool */
	uint8_t fresh;       /* started with CURLOPT_FRESH_CONNECT */
	uint8_t got_byte, paused;
	long status;
	size_t header_bytes;
	int64_t t_attempt, t_last;
	uint32_t connect_ms, first_byte_ms, idle_ms, total_ms;
	pf_ctype ctype; /* the answer's (none: application/json) */
	wrk_sse sse;
	wrk_buf resp;
	wrk_conv *cv; /* its translation state (allocated at the first
	                 such attempt; a stream holds a relay for minutes) */
	uint8_t conv; /* Anthropic client on an OpenAI channel */

	/* whole relay */
	uint8_t att_open; /* the current attempt is not recorded yet */
	uint8_t flow;     /* credit-based flow control is on */
	uint8_t head_sent;
	uint8_t last_timeout;
	uint32_t n_att, max_att;
	pf_attempt *att; /* outcomes, in order: max_att, after the struct */
	int64_t credit;  /* bytes left to send; may dip below 0 by one read */
	uint32_t seq;
	wrk_usage usage;
	long last_status;
};

/* xfer.c */
void wrk_xfer_scan_by(wrk_env *env, int64_t t);
/* wrk_xfer_mark: the next tick must visit x. */
void wrk_xfer_mark(wrk_xfer *x);
/* wrk_xfer_starved: flow control allows no more data now. */
int wrk_xfer_starved(const wrk_xfer *x);
void wrk_xfer_set_phase(wrk_xfer *x, enum phase p);
const pf_candidate *wrk_xfer_candidate(const wrk_xfer *x);
int64_t wrk_xfer_channel(const wrk_xfer *x);
pf_err wrk_xfer_send_head(wrk_xfer *x);
pf_err wrk_xfer_send_data(wrk_xfer *x, const uint8_t *p, size_t n);
/* wrk_xfer_record notes how the current attempt went (once). */
void wrk_xfer_record(wrk_xfer *x, pf_attempt_outcome o, long status);
/* wrk_xfer_finish sends relay.end (usage_too: the delivered usage, else
 * zeros) and lets the relay drain or end. */
void wrk_xfer_finish(wrk_xfer *x, pf_end_reason reason, long status,
    const char *error, int usage_too);

/* attempt.c */
/* wrk_xfer_try_from starts candidates from i on until one runs; ends the
 * relay when none is left. */
void wrk_xfer_try_from(wrk_xfer *x, uint32_t i);
/* wrk_easy_pool_fini frees the curl handles env keeps for reuse (at
 * wrk_env_fini). */
void wrk_easy_pool_fini(wrk_env *env);

/* wrk_xfer_attempt_end releases the current transfer, if any. */
void wrk_xfer_attempt_end(wrk_xfer *x);
/* wrk_xfer_attempt_failed: the current attempt failed (transfer already
 * released) as o says: fail over, or end the relay after its first
 * byte. */
void wrk_xfer_attempt_failed(
    wrk_xfer *x, pf_attempt_outcome o, long status, const char *why);
/* wrk_xfer_attempt_done: curl finished the current transfer with res. */
void wrk_xfer_attempt_done(wrk_xfer *x, CURLcode res);
/* wrk_xfer_h1_reap finishes the relays whose own-client transfers ended
 * (wrk_h1_take_done). */
void wrk_xfer_h1_reap(wrk_env *env);
/* wrk_xfer_running: a transfer (curl's or ours) is under way. */
static inline int
wrk_xfer_running(const wrk_xfer *x)
{
	return x->easy != NULL || x->h1 != NULL;
}
/* wrk_xfer_resume continues a transfer paused for want of room or
 * credit.  Returns 0, or -1 when it failed (the attempt must end). */
int wrk_xfer_resume(wrk_xfer *x);
const char *wrk_xfer_abort_text(enum abort_why why);

#endif /* PF_WORKERS_XFER_IMPL_H */
