/*
 * xfer.h -- relays: one relay.request carried out against upstream.
 *
 * A relay tries its candidates in order, one curl easy transfer at a time
 * on its thread's CURLM.  Before anything went to the ingress, a connect
 * error, a timeout, a 429 or a 5xx moves on to the next candidate; after
 * the first byte went out the relay ends where it stands.  Streams are
 * split into SSE events and each event is sent as its own relay.data the
 * moment it is complete; other bodies are collected (capped) and sent as
 * one relay.data.  relay.end always comes last, with the usage found or
 * estimated.
 *
 * Flow control: when the request carries a credit window and this thread
 * has a control address (sent in relay.head), stream data is sent only
 * while credit is left; relay.credit from the ingress adds to it.  With
 * none left the curl transfer is paused, so a slow client slows the
 * upstream instead of growing buffers.
 *
 * Timeouts: connect is enforced by curl; first byte (from attempt start to
 * the first body byte), idle gap (between body bytes, not counted while
 * the relay waits for the ingress), total per attempt and the request
 * deadline are enforced by wrk_env_tick.
 *
 * Everything here runs on the owning thread; nothing is locked.
 */
#ifndef PF_WORKERS_XFER_H
#define PF_WORKERS_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/msg.h"
#include "workers/buf.h"
#include "workers/reply.h"

typedef struct wrk_xfer wrk_xfer;

/* What one transfer thread lends to its relays. */
/* curl easy handles kept for reuse per thread and kind */
#define WRK_EASY_POOL 16

struct wrk_h1;

typedef struct wrk_env {
	void *multi; /* the thread's CURLM *, made at its first curl transfer
	                (wrk_env_curl); NULL until then */
	/* the thread's own HTTP/1.1 client (h1.h), NULL: curl only; set
	 * by the thread loop after wrk_env_init */
	struct wrk_h1 *h1;
	void *loop; /* its wrk_cloop (transfers get its sockopt callback) */
	const pf_config *cfg;
	wrk_replies *replies;
	const char *ctl_addr; /* this thread's control URL, "" or NULL: none */
	pf_buf enc;           /* reusable message encoding buffer */
	wrk_buf scratch;      /* reusable event data buffer */
	wrk_xfer *_head;      /* live relays */
	size_t n_live;
	wrk_xfer **_by_id; /* live relays by id: chained, power of two */
	size_t _n_buckets;
	wrk_xfer *_pend; /* relays the next tick must visit */
	wrk_xfer *_wait; /* relays waiting for a reply socket, oldest first */
	wrk_xfer **_wait_end; /* the last one's pnext, or &_wait */
	size_t _n_wait;
	/* set by the thread loop before a tick: no reply socket became
	 * writable since the last one, so _wait needs no visit (0, the
	 * default, visits it every tick) */
	int replies_blocked;
	int64_t _next_scan;      /* earliest relay deadline, INT64_MAX none */
	struct wrk_host *_hosts; /* attempt.c; NULL until needed */
	/* attempt.c: finished curl handles, reset, for the next transfers
	 * ([1]: streams, with their smaller receive buffer) */
	void *_easy[2][WRK_EASY_POOL];
	size_t _n_easy[2];
} wrk_env;

/* wrk_now_ms returns a monotonic clock in milliseconds. */
int64_t wrk_now_ms(void);

/* wrk_env_init prepares env for a thread; multi is its CURLM *, rs its
 * reply socket cache (both stay owned by the caller).  Without memory for
 * the id table, lookups fall back to walking the relays. */
void wrk_env_init(
    wrk_env *env, void *multi, const pf_config *cfg, wrk_replies *rs);

/*
 * wrk_env_curl makes env's CURLM * (and initialises libcurl, once per
 * process) unless it has one: curl's global set-up (OpenSSL's among it)
 * costs ~2 MB of memory that a worker whose upstreams all go through the
 * own HTTP/1.1 client (h1.h) never needs.  Errors: PF_EIO (curl's global
 * set-up failed), PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_env_curl(wrk_env *env);

/* wrk_env_fini ends every live relay (relay.end "worker stopping", best
 * effort, no waiting) and frees them and env's buffers. */
void wrk_env_fini(wrk_env *env);

/*
 * wrk_env_take handles one decoded message from the ingress and takes
 * ownership of msg.  A relay.request starts a relay; failures to start
 * are answered with relay.end where a reply address is usable.  Other
 * kinds are dropped (the thread loop routes relay.cancel itself).
 */
void wrk_env_take(wrk_env *env, pf_msg *msg);

/* wrk_env_cancel ends the relay with this id, if it lives here: its
 * transfer stops and relay.end (PF_END_CLIENT_GONE, with the usage of what
 * was delivered) is sent.  Unknown ids are ignored.  O(1). */
void wrk_env_cancel(wrk_env *env, const uint8_t id[PF_ID_LEN]);

/* wrk_env_credit adds bytes to the flow-control credit of the relay with
 * this id (relay.credit); a relay paused for want of credit resumes at
 * the next tick.  Unknown ids are ignored. */
void wrk_env_credit(wrk_env *env, const uint8_t id[PF_ID_LEN], uint32_t bytes);

/* wrk_env_reap collects the transfers that finished, curl's and the own
 * client's (call after wrk_cloop_run). */
void wrk_env_reap(wrk_env *env);

/*
 * wrk_env_tick resumes relays whose ingress became writable, enforces
 * timeouts and frees finished relays.  now is wrk_now_ms().  Returns the
 * milliseconds until the next deadline, or -1 when none.  It visits only
 * the relays that asked for it (a queue waiting for the ingress, credit
 * for a paused transfer, an end) unless a deadline may have come; then it
 * walks them all.
 */
int64_t wrk_env_tick(wrk_env *env, int64_t now);

#endif /* PF_WORKERS_XFER_H */
