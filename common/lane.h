/*
 * lane.h -- relay messages between an ingress and a worker in one process
 * (`planktonfly serve`) without NNG.
 *
 * Over inproc:// every NNG send or receive costs an aio, a random number
 * and a hand-off to NNG's task threads.  A lane carries the same messages
 * with no thread of its own:
 *
 *  - requests (relay.request, and relay.cancel before a head named a
 *    control address), ingress -> workers: messages (relay.request as a
 *    pf_msg_clone, others encoded) in a FIFO queue of at most
 *    PF_LANE_QUEUE_MAX.  pf_lane_fd is readable while the queue is not
 *    empty (an eventfd), so a worker thread sleeps on it beside its other
 *    descriptors, as on an NNG socket's receive fd.  A thread that both
 *    sends and takes requests (`serve`'s fused loops) has a queue of its
 *    own besides (pf_lane_bind_local).
 *  - replies (relay.head / relay.data / relay.end), workers -> ingress:
 *    the worker thread hands each message to the receiver the ingress
 *    registered for its reply address, which files it before returning
 *    (the message is only borrowed for the call).
 *
 * relay.cancel and relay.credit sent to a worker thread's control address
 * still travel over NNG.
 *
 * Thread safety: every function may be called from any thread.  The lane
 * must outlive both roles using it.
 */
#ifndef PF_COMMON_LANE_H
#define PF_COMMON_LANE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"

typedef struct pf_lane pf_lane;

/* A reply receiver: files m (borrowed for the call only).  Runs on the
 * sending worker's thread; must not block. */
typedef void (*pf_lane_reply_fn)(void *arg, const pf_msg *m);

/* pf_lane_new makes a lane with its intake open.  Errors: PF_ENOMEM,
 * PF_EIO (no eventfd). */
PF_NODISCARD pf_err pf_lane_new(pf_lane **ret);

/* pf_lane_free drops queued requests and frees l; NULL is a no-op.  No
 * role may use l any more. */
void pf_lane_free(pf_lane *l);

/*
 * pf_lane_push queues the encoded request buf[0..len) (malloc'd) for the
 * workers; on success the lane owns buf, on error the caller keeps it.
 * Errors: PF_ECLOSED (intake closed: no worker takes requests),
 * PF_EAGAIN (PF_LANE_QUEUE_MAX requests wait).
 */
PF_NODISCARD pf_err pf_lane_push(pf_lane *l, uint8_t *buf, size_t len);

/* pf_lane_push_wait is pf_lane_push that, while the queue is full, waits
 * up to wait_ms for a worker to take one (as a send to a busy NNG socket
 * would).  Errors as pf_lane_push. */
PF_NODISCARD pf_err pf_lane_push_wait(
    pf_lane *l, uint8_t *buf, size_t len, uint32_t wait_ms);

/*
 * pf_lane_push_msg is pf_lane_push_wait for a message as it is (on
 * success the lane owns msg, a pf_msg_clone or pf_msg_decode result):
 * within one process a request needs no encoding (pf_lane_take gives it
 * back as it is).  Errors as pf_lane_push.
 */
PF_NODISCARD pf_err pf_lane_push_msg(pf_lane *l, pf_msg *msg, uint32_t wait_ms);

/* pf_lane_take takes the oldest request: returns 1 and gives the caller
 * either an encoded one (*ret_buf, free with free(), and *ret_len;
 * *ret_msg NULL) or a message (*ret_msg, free with pf_msg_free; *ret_buf
 * NULL), or 0 when none waits. */
int pf_lane_take(
    pf_lane *l, uint8_t **ret_buf, size_t *ret_len, pf_msg **ret_msg);

/*
 * pf_lane_bind_local gives the calling thread a request queue of its own
 * on l (`serve`'s fused loops: a thread that both sends requests, from
 * the HTTP daemon it runs, and carries them out).  From then on
 * pf_lane_push on this thread queues there, with no lock and no eventfd
 * signal, and pf_lane_take on this thread takes from there first: a
 * request sent by a loop is carried out by the same loop in the same
 * turn, with no thread hand-off.  When the local queue is full a push
 * goes to the shared one.  A thread binds at most one lane; call
 * pf_lane_unbind_local before the thread ends (it frees what is left).
 * Errors: PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_lane_bind_local(pf_lane *l);

/* pf_lane_unbind_local drops the calling thread's local queue and the
 * requests still in it; a no-op when the thread has none. */
void pf_lane_unbind_local(void);

/* pf_lane_local_pending returns how many requests wait in the calling
 * thread's local queue on l (never signalled: the thread's loop must not
 * sleep while it is not 0). */
size_t pf_lane_local_pending(const pf_lane *l);

/* pf_lane_pending returns how many requests wait (shared queue only). */
size_t pf_lane_pending(pf_lane *l);

/* pf_lane_fd returns a descriptor readable while requests wait (for
 * poll; never read it). */
int pf_lane_fd(const pf_lane *l);

/* pf_lane_close_intake refuses new requests (pf_lane_push: PF_ECLOSED);
 * requests already queued can still be popped.  Idempotent. */
void pf_lane_close_intake(pf_lane *l);

/*
 * pf_lane_set_reply makes fn(arg, m) the receiver of replies sent to addr
 * (the ingress's reply URL; copied, at most PF_URL_MAX bytes).  One
 * receiver per lane: a second call replaces the first.  Errors: PF_EINVAL
 * (addr too long, fn NULL).
 */
PF_NODISCARD pf_err pf_lane_set_reply(
    pf_lane *l, const char *addr, pf_lane_reply_fn fn, void *arg);

/* A flush receiver: the sender handed over every reply of its turn.
 * Runs on the sending worker's thread; must not block. */
typedef void (*pf_lane_flush_fn)(void *arg);

/*
 * pf_lane_set_flush makes fn(arg) (arg: the one given to
 * pf_lane_set_reply) run on each pf_lane_flush while a receiver is
 * registered, so the receiver can wake whoever it deferred once per turn
 * instead of once per reply.  fn NULL: none.  pf_lane_clear_reply clears
 * it too.
 */
void pf_lane_set_flush(pf_lane *l, pf_lane_flush_fn fn);

/* pf_lane_flush tells the receiver that the calling sender handed over
 * the replies of its turn (see pf_lane_set_flush); a no-op without one. */
void pf_lane_flush(pf_lane *l);

/* pf_lane_clear_reply removes the receiver and returns once no call to it
 * is running; later replies fail with PF_ENET.  Idempotent. */
void pf_lane_clear_reply(pf_lane *l);

/* pf_lane_has_reply says whether a receiver is registered for
 * addr[0..len). */
int pf_lane_has_reply(pf_lane *l, const uint8_t *addr, size_t len);

/*
 * pf_lane_reply hands m to the receiver registered for addr[0..len) and
 * returns once it filed m.  Errors: PF_ENET (no receiver there any more:
 * the reply is lost, as on a closed socket).
 */
PF_NODISCARD pf_err pf_lane_reply(
    pf_lane *l, const uint8_t *addr, size_t len, const pf_msg *m);

/*
 * A loop hook: work that a role's event loops run for another role in the
 * same process (`serve`'s fused loops: each transfer thread of the worker
 * runs one HTTP daemon of the ingress).  Loop i watches fd(arg, i) beside
 * its own descriptors (readable: work is waiting), calls run(arg, i) at the
 * start of a turn when fd was readable or timeout_ms(arg, i) is 0, and
 * sleeps no longer than timeout_ms(arg, i) (< 0: no limit of the hook's);
 * all three on loop i's thread only.  timeout_ms must be 0 whenever the
 * hook has work that fd does not show (a wake below included).  Before
 * the loops start, the loops' owner calls attach(arg, wake, wake_arg):
 * from then on wake(wake_arg, i), from any thread, ends loop i's sleep.
 */
typedef struct pf_loop_hook {
	void *arg;
	unsigned n; /* loops */
	int (*fd)(void *arg, unsigned i);
	void (*run)(void *arg, unsigned i);
	int64_t (*timeout_ms)(void *arg, unsigned i);
	void (*attach)(void *arg, void (*wake)(void *wake_arg, unsigned i),
	    void *wake_arg);
} pf_loop_hook;

#endif /* PF_COMMON_LANE_H */
