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
#include "common/lane.h"

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

/*
 * ing_server_start_loops is ing_server_start_lane with n_loops HTTP
 * daemons that have no thread of their own (n_loops 0: one daemon with
 * cfg->http_threads threads, as ing_server_start_lane).  The caller runs
 * daemon i in a loop of its own (`serve`'s fused loops), through the hook
 * ing_server_loop_hook describes; each i on one thread only.  A daemon's
 * loop runs its requests' callbacks and is woken for a connection
 * resumed from another thread.  Those loops must have stopped before
 * ing_server_stop.  Errors as ing_server_start.
 */
PF_NODISCARD pf_err ing_server_start_loops(const pf_config *cfg,
    struct pf_lane *lane, unsigned n_loops, ing_server **ret);

/* ing_server_loop_hook describes, in *ret, how a loop of the caller's
 * runs the daemons of ing_server_start_loops (common/lane.h pf_loop_hook;
 * ret->n = n_loops). */
void ing_server_loop_hook(ing_server *srv, pf_loop_hook *ret);

/* ing_server_port returns the TCP port actually bound (useful with
 * PF_LISTEN=127.0.0.1:0). */
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
