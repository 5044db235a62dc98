/*
 * relay.h -- requests in flight between the ingress and the workers.
 *
 * The relay owns NNG sockets: a push socket per worker URL, dialing it
 * (relay.request goes out there) and a pull socket listening on
 * cfg->reply_url, read by one long-lived receive whose callback (on an NNG
 * thread) files relay.head / relay.data / relay.end into the matching
 * flight and wakes its client connection; a worker may pack several
 * replies into one transport message (relay.request's batch flag).  In
 * `serve` an in-process lane replaces both sockets (ing_relay_start_lane;
 * the worker's thread files its replies itself).  A sweeper thread ends
 * flights that outlive their deadline by PF_RELAY_GRACE_MS
 * (PF_END_WORKER_LOST), and wakes parked connections whose client hung up
 * (MHD does not notice that while a connection is suspended; the parked
 * sockets sit in one epoll set, read each sweep).
 *
 * Worker loss: a flight whose head came is tied to the pipe it came
 * through; when that pipe drops (the worker died or its connection
 * broke) the flight ends at once as PF_END_WORKER_LOST.  A flight with no
 * head yet is tied to the worker it was pushed to (one push socket per
 * worker URL, round-robin by hand): when that socket's pipe drops, it
 * ends at once too; also when no worker is connected at all (no request
 * pipe and no reply pipe left); otherwise at its deadline +
 * PF_RELAY_GRACE_MS.
 *
 * Control: a worker names its control address in relay.head; relay.cancel
 * and relay.credit for that flight go there (one cached push socket per
 * address, at most PF_CTL_SOCKETS_MAX), or round-robin through the push
 * socket before the head came.  Flow control: a stream request carries a
 * credit window (PF_STREAM_CREDIT_WINDOW); as the HTTP reader takes bytes
 * (ing_flight_took_locked) the flight grants them back in steps of
 * PF_STREAM_CREDIT_STEP, so a stalled client stalls its upstream and the
 * queue stays under PF_STREAM_BUFFER_FLOW_MAX.
 *
 * A flight is shared by the HTTP thread serving the client and the reply
 * thread; it is reference-counted and every field below the mutex is
 * guarded by it.  The HTTP side parks its connection by setting suspended
 * under the lock (then suspending it); whoever changes a flight so that
 * ing_flight_ready_locked() becomes true resumes a parked connection,
 * under the same lock.
 */
#ifndef PF_INGRESS_RELAY_H
#define PF_INGRESS_RELAY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/ctype.h"
#include "common/err.h"
#include "common/msg.h"

#define PF_RELAY_GRACE_MS 5000 /* past the deadline before worker_lost */
/* a request sent this long ago with no word from its worker yet is counted
 * in the sweeper's PF-RELAY-QUIET line, written at most this often */
#define PF_RELAY_QUIET_MS 10000

typedef struct ing_relay ing_relay;
struct ing_ctl;
struct pf_lane;

/* longest reason a flight keeps (ing_flight.error), bytes */
#define ING_FLIGHT_ERROR_MAX 255u

/* Fields are ordered so that the struct has no holes: a stream holds one
 * for its whole life. */
typedef struct ing_flight {
	pthread_mutex_t mu;
	uint8_t id[PF_ID_LEN];
	int stream; /* client asked for SSE */
	int fd;     /* client socket (-1 unknown), polled while parked */
	int64_t deadline_ms; /* unix ms */
	/* the client connection and how to wake it; conn is NULL once the
	 * connection completed */
	void *conn;
	void (*resume)(void *conn);
	int suspended;   /* conn parked by the HTTP side */
	int client_gone; /* the client hung up while parked */
	int responded;   /* streaming response queued: reader phase */
	/* what the worker sent */
	int head;
	int status;
	uint32_t next_seq;
	pf_ctype content_type; /* none: application/json */
	/* stream: the worker's completion estimate with the last relay.data
	 * filed (0 from older workers); billed when the worker is lost */
	int64_t completion;
	uint8_t *buf; /* stream: queue [off, len); else the whole body */
	size_t off, len, cap;
	int ended;
	int reason; /* pf_end_reason, valid when ended */
	/* the end is not shown to the client until ing_flight_billed (its
	 * usage event is in the spool file); set before the send */
	int billing;
	int upstream_status;
	char *error; /* why it failed or ended (ING_FLIGHT_ERROR_MAX), owned;
	                NULL: nothing said (or no memory to say it) */
	int failed;  /* cut: overflow or a protocol error */
	/* flow control (set by the head) */
	int flow;             /* the worker waits for relay.credit */
	uint32_t credit_owed; /* bytes the reader took, not yet granted */
	/* private to relay.c */
	int _credit;          /* the request offered a credit window */
	struct ing_ctl *_ctl; /* the worker's control socket, or NULL */
	ing_relay *_relay;
	int64_t _seen_ms; /* the sweeper first saw it (0: not yet), unix ms */
	uint32_t _pipe;   /* NNG pipe the head came through (0: none yet) */
	uint32_t _push;   /* push socket (index + 1) the request went out on */
	uint8_t _watched; /* fd is in the relay's hang-up epoll set */
	uint8_t _in_table;
	int _refs;
	struct ing_flight *_next;
} ing_flight;

/*
 * ing_relay_start opens the sockets (dials cfg->worker_url non-blocking,
 * listens on cfg->reply_url), starts receiving and the sweeper.  cfg must
 * outlive the relay.  Errors: PF_ENET, PF_ENOMEM, PF_EIO.
 */
PF_NODISCARD pf_err ing_relay_start(const pf_config *cfg, ing_relay **ret);

/*
 * ing_relay_start_lane is ing_relay_start for `serve`: requests go to the
 * worker in this process over lane and its replies come back there
 * (common/lane.h); no NNG push/pull socket is opened (control messages to
 * a worker thread still use NNG).  lane must outlive the relay.  Errors
 * as ing_relay_start.
 */
PF_NODISCARD pf_err ing_relay_start_lane(
    const pf_config *cfg, struct pf_lane *lane, ing_relay **ret);

/*
 * ing_flight_new returns a flight with one reference for the caller, or
 * NULL when out of memory.  resume(conn) is called (under the flight lock)
 * to wake a parked connection.
 */
ing_flight *ing_flight_new(const uint8_t id[PF_ID_LEN], int stream,
    int64_t deadline_ms, void *conn, void (*resume)(void *conn));

/* ing_flight_billed clears f->billing and wakes a parked connection
 * that now has its end to answer.  Takes f's lock. */
void ing_flight_billed(ing_flight *f);

/* ing_flight_ref adds a reference and returns f. */
ing_flight *ing_flight_ref(ing_flight *f);

/* ing_flight_unref drops a reference; NULL is a no-op. */
void ing_flight_unref(ing_flight *f);

/*
 * ing_flight_ready_locked says (f locked) whether the HTTP side has
 * something to do: the flight ended (and is not waiting for billing) or
 * failed, or a streaming head came (before the response), or queued
 * bytes (after it).
 */
int ing_flight_ready_locked(const ing_flight *f);

/*
 * ing_relay_send files f under its id and sends req (a relay.request with
 * the same id) to a worker without blocking for long.  Errors: PF_EAGAIN
 * (no worker took it), PF_ECLOSED (relay stopping), PF_ETOOBIG,
 * PF_ENOMEM, PF_ENET; f is then not filed.
 */
PF_NODISCARD pf_err ing_relay_send(
    ing_relay *r, ing_flight *f, const pf_msg *req);

/*
 * ing_relay_cancel tells the worker running f that its client left
 * (relay.cancel), best effort: never blocks, and a message the worker
 * cannot take now is dropped.  It goes to the worker's control address
 * once the head named one; before that it is round-robined through the
 * push socket (with several workers it may reach one that does not run
 * the request, which ignores it); the reply path then answers the head
 * of a flight no longer filed with a relay.cancel to its control address.
 */
void ing_relay_cancel(ing_relay *r, ing_flight *f);

/*
 * ing_flight_took_locked (f locked) records that the HTTP reader took n
 * bytes of a stream's queue, and frees the queue once it is empty (an
 * idle stream holds no buffer); on a flow-controlled flight it sends
 * relay.credit once PF_STREAM_CREDIT_STEP bytes are owed (a grant that
 * cannot be sent now is retried by the next call or the sweeper).
 */
void ing_flight_took_locked(ing_flight *f, size_t n);

/*
 * ing_relay_set_end_hook makes the reply path call fn(arg, e) for every
 * relay.end it receives (also for flights already forgotten), before the
 * flight sees it, and for every flight its sweeper ends without one (a
 * made-up relay.end: reason PF_END_WORKER_LOST, seq = relay.data
 * received, no usage, no attempts) (under the relay's table lock: fn must not block or
 * call back into the relay).  flush(arg) (may be NULL) follows each batch
 * of such calls: the replies of one transport message or one worker loop
 * turn, a lost flight; fn may defer its work until then.  flush runs
 * outside the lock, on the thread that filed the batch, and may still be
 * running after a call with fn NULL returns (until ing_relay_free
 * returns); once that call returns, no fn call is running.
 */
void ing_relay_set_end_hook(ing_relay *r,
    void (*fn)(void *arg, const pf_relay_end *e), void (*flush)(void *arg),
    void *arg);

/* ing_relay_inflight returns how many flights are filed. */
size_t ing_relay_inflight(ing_relay *r);

/* ing_relay_forget unfiles f (late replies are then dropped).  Idempotent. */
void ing_relay_forget(ing_relay *r, ing_flight *f);

/*
 * ing_relay_close_all refuses new flights and ends every filed one
 * (PF_END_WORKER_LOST, "server shutting down"; not waiting for billing),
 * waking parked connections.  Call before stopping the HTTP daemon.
 */
void ing_relay_close_all(ing_relay *r);

/* ing_relay_free stops receiving, joins the sweeper, closes the sockets
 * and frees r;
 * NULL is a no-op.  Blocks. */
void ing_relay_free(ing_relay *r);

#endif /* PF_INGRESS_RELAY_H */
