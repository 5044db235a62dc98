/*
 * reply.h -- the worker's reply sockets and per-relay send queues.
 *
 * Each transfer thread keeps one push0 socket per distinct reply address
 * (cached, dialed non-blocking, redialed by NNG in the background).  All
 * replies of one relay go through one socket, so their order holds.
 *
 * An ingress that reads packed replies (pf_relay_request.batch; say so
 * with wrk_replies_batch) gets a loop turn's replies to it packed back to
 * back into one transport message, sent by wrk_replies_flush at the end
 * of the turn (or as soon as PF_REPLY_BATCH_BYTES are packed).
 *
 * An ingress in the same process (wrk_replies_set_lane) gets each reply
 * handed over directly: no socket, no encoding, never queued.
 *
 * Sends never block the thread: a message the socket cannot take now
 * (NNG_EAGAIN) waits in the relay's wrk_outq, and every later message of
 * that relay queues behind it.  The owner stops reading upstream while its
 * queue is not empty (back-pressure) and retries wrk_reply_flush when the
 * socket's send fd (wrk_replies_poll_fds) says it is writable again.
 */
#ifndef PF_WORKERS_REPLY_H
#define PF_WORKERS_REPLY_H

#include <stddef.h>

#include "common/err.h"
#include "common/msg.h"

typedef struct wrk_replies wrk_replies;
typedef struct wrk_reply wrk_reply;
struct wrk_outmsg;
struct pf_lane;

/* A relay's queue of encoded messages not yet taken by its socket. */
typedef struct wrk_outq {
	wrk_reply *reply; /* NULL until wrk_outq_open */
	struct wrk_outmsg *_head, *_tail;
	size_t n;
} wrk_outq;

/* wrk_replies_new makes an empty cache.  Errors: PF_ENOMEM. */
PF_NODISCARD pf_err wrk_replies_new(wrk_replies **ret);

/* wrk_replies_set_lane makes replies to an address that has a receiver on
 * lane (pf_lane_set_reply: the ingress in this process) go through the
 * lane instead of a socket; lane must outlive rs.  Call before the first
 * wrk_outq_open. */
void wrk_replies_set_lane(wrk_replies *rs, struct pf_lane *lane);

/* wrk_replies_free closes every socket; the queues using them must have
 * been closed.  NULL is a no-op. */
void wrk_replies_free(wrk_replies *rs);

/*
 * wrk_outq_open binds q to the socket for addr (opening and dialing it
 * non-blocking when new; at most PF_REPLY_SOCKETS_MAX per thread, unused
 * ones are closed to make room).  Errors: PF_EINVAL (bad address),
 * PF_ENET (cannot open/dial), PF_EAGAIN (too many in use), PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_outq_open(
    wrk_replies *rs, wrk_outq *q, const uint8_t *addr, size_t len);

/* wrk_outq_close drops queued messages and releases the socket; safe on
 * an unopened or closed queue. */
void wrk_outq_close(wrk_outq *q);

/*
 * wrk_replies_batch marks the socket for addr (opening it as
 * wrk_outq_open does) as one whose ingress reads packed replies.  Errors
 * as wrk_outq_open.
 */
PF_NODISCARD pf_err wrk_replies_batch(
    wrk_replies *rs, const uint8_t *addr, size_t len);

/*
 * wrk_outq_send encodes m (into the reusable enc) and sends it, or queues it
 * behind earlier ones when the socket is busy (check q->n afterwards).
 * Errors: PF_ETOOBIG / PF_EINVAL (encoding), PF_ENOMEM, PF_ENET (socket
 * closed).  On error nothing was queued.
 */
PF_NODISCARD pf_err wrk_outq_send(wrk_outq *q, const pf_msg *m, pf_buf *enc);

/*
 * wrk_outq_flush sends queued messages until the socket is busy.
 * Returns PF_OK when the queue is empty, PF_EAGAIN while messages wait,
 * PF_ENET when the socket failed (the queue is dropped).
 */
PF_NODISCARD pf_err wrk_outq_flush(wrk_outq *q);

/* wrk_replies_flush sends the packed replies of every socket that takes
 * them now; the rest wait for the next flush (their sockets' send fds are
 * in wrk_replies_poll_fds), and tells a lane that got replies this turn
 * (pf_lane_flush).  Call once per loop turn, before sleeping. */
void wrk_replies_flush(wrk_replies *rs);

/* wrk_replies_new_turn forgets which sockets refused a send: once one
 * did, sends on it queue without trying until the next loop turn (each
 * failed try costs NNG an allocation and a random number). */
void wrk_replies_new_turn(wrk_replies *rs);

/* wrk_replies_poll_fds writes up to max send-readiness fds of sockets
 * that have waiting queues or packed replies; returns how many. */
size_t wrk_replies_poll_fds(wrk_replies *rs, int *fds, size_t max);

#endif /* PF_WORKERS_REPLY_H */
