/*
 * server.h -- the ingress role: the client-facing HTTP API.
 *
 * Listens on cfg->listen (libmicrohttpd), authenticates sk- tokens
 * (PostgreSQL lookups cached in memory), picks candidate channels, sends
 * relay.request to workers over NNG (dialing cfg->worker_url) and writes
 * the worker's replies, received on cfg->reply_url, back to the client.
 */
#ifndef PF_INGRESS_SERVER_H
#define PF_INGRESS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <signal.h>

#include "common/config.h"
#include "common/err.h"

typedef struct ing_server ing_server;
struct pf_lane;

/*
 * ing_server_start connects to PostgreSQL, loads the routing snapshot,
 * opens the NNG sockets and starts serving HTTP.  cfg must outlive the
 * server.  Errors: PF_EDB, PF_ENET, PF_EIO (cannot listen, e.g. PF_LISTEN
 * already in use without PF_LISTEN_REUSEPORT=1; logged as PF-HTTP-LISTEN
 * with the address and the cause), PF_ECONFIG, PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_server_start(const pf_config *cfg, ing_server **ret);

/* ing_server_start_lane is ing_server_start with the relay to the worker
 * in this process over lane (ing_relay_start_lane); NULL lane = NNG. */
PF_NODISCARD pf_err ing_server_start_lane(
    const pf_config *cfg, struct pf_lane *lane, ing_server **ret);

/* ing_server_port returns the TCP port actually bound (useful with
 * PF_LISTEN=127.0.0.1:0). */
/*
 * ing_server_start_loops is ing_server_start_lane with n_loops HTTP
 * daemons that have no thread of their own (n_loops 0: one daemon with
 * cfg->http_threads threads, as ing_server_start_lane).  The caller runs
 * daemon i in a loop of its own (`serve`'s fused loops, workers/worker.h
 * wrk_loop_hook): it watches ing_server_loop_fd(srv, i), calls
 * ing_server_loop_run(srv, i) every turn, and sleeps no longer than
 * ing_server_loop_timeout(srv, i); each i on one thread only.  Those
 * loops must have stopped before ing_server_stop.  Errors as
 * ing_server_start.
 */
PF_NODISCARD pf_err ing_server_start_loops(const pf_config *cfg,
    struct pf_lane *lane, unsigned n_loops, ing_server **ret);

/* ing_server_loop_fd returns the descriptor of daemon i's epoll set
 * (readable: ing_server_loop_run has work), or -1. */
int ing_server_loop_fd(ing_server *srv, unsigned i);

/* ing_server_loop_run runs daemon i without blocking: accepts, reads,
 * answers, resumes; leaves the port when a drain asked (see
 * ing_server_drain_begin). */
void ing_server_loop_run(ing_server *srv, unsigned i);

/* ing_server_loop_timeout returns the ms until daemon i must run again
 * (0: at once), or -1 when it has no timeout. */
int64_t ing_server_loop_timeout(ing_server *srv, unsigned i);

/* ing_server_set_waker makes wake(arg, i) end the sleep of the loop
 * running daemon i (any thread may call it): a connection resumed from
 * another thread, or a drain's quiesce, needs that loop to run.  Call
 * before any request comes in. */
void ing_server_set_waker(
    ing_server *srv, void (*wake)(void *arg, unsigned i), void *arg);

unsigned ing_server_port(const ing_server *srv);

/*
 * ing_server_drain_begin starts a graceful stop: GET /health answers 503
 * and new relayed requests are refused with 503, while requests in flight
 * go on.  With PF_LISTEN_REUSEPORT=1 it also closes the listening socket,
 * so new connections go to the other gateway on the port (a handover).
 * Idempotent; never blocks; call it from one thread.
 */
void ing_server_drain_begin(ing_server *srv);

/* ing_server_inflight returns how many relayed requests are in flight. */
size_t ing_server_inflight(ing_server *srv);

/* ing_server_stop stops accepting, ends in-flight requests and joins the
 * server's threads.  Blocks; idempotent. */
void ing_server_stop(ing_server *srv);

/* ing_server_free stops (if needed) and frees srv; NULL is a no-op. */
void ing_server_free(ing_server *srv);

/* ing_server_drain_wait begins draining srv and blocks until requests in
 * flight have finished, PF_DRAIN_GRACE_MS has passed, or a signal of set
 * (blocked by the caller) arrives.  Call from the main thread only. */
void ing_server_drain_wait(ing_server *srv, const sigset_t *set);

/* ing_cmd is `planktonfly ingress`: argv[0] is "ingress". */
int ing_cmd(int argc, char **argv);

#endif /* PF_INGRESS_SERVER_H */
