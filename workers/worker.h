/*
 * worker.h -- the worker role: relays requests to upstream providers.
 *
 * A worker listens on every URL in cfg->worker_url (NNG pull), takes
 * relay.request messages, runs the upstream transfers with libcurl multi
 * (event-driven, many per thread), fails over across the candidates, and
 * sends relay.head / relay.data / relay.end to the request's reply_addr.
 */
#ifndef PF_WORKERS_WORKER_H
#define PF_WORKERS_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/lane.h"

typedef struct wrk_worker wrk_worker;
struct pf_lane;

/*
 * wrk_worker_start starts a worker with cfg->worker_threads transfer
 * threads.  cfg must outlive the worker.  On success *ret owns the
 * worker.  Errors: PF_ENET (cannot listen), PF_ENOMEM, PF_EIO.
 */
PF_NODISCARD pf_err wrk_worker_start(const pf_config *cfg, wrk_worker **ret);

/*
 * wrk_worker_start_lane is wrk_worker_start for `serve`: requests come off
 * lane instead of a pull socket on cfg->worker_url, and replies to the
 * ingress registered on lane go through it (common/lane.h).  lane must
 * outlive the worker.  Errors as wrk_worker_start.
 */
PF_NODISCARD pf_err wrk_worker_start_lane(
    const pf_config *cfg, struct pf_lane *lane, wrk_worker **ret);

/*
 * wrk_worker_start_hooked is wrk_worker_start_lane with hook->n threads
 * (cfg->worker_threads is not used), each running the hook in its loop
 * (common/lane.h pf_loop_hook; run before the turn takes requests, so a
 * request the hook sent through the lane is taken in the same turn) and
 * bound to lane's local queue (pf_lane_bind_local).  hook is copied; its
 * arg must outlive the worker's threads (wrk_worker_stop).  Errors as
 * wrk_worker_start.
 */
PF_NODISCARD pf_err wrk_worker_start_hooked(const pf_config *cfg,
    struct pf_lane *lane, const pf_loop_hook *hook, wrk_worker **ret);

/* wrk_worker_close_intake stops taking new requests: the listeners close
 * (ingresses send to other workers), requests already received still
 * run.  Not thread-safe against itself; call from the owner. */
void wrk_worker_close_intake(wrk_worker *w);

/* wrk_worker_live returns how many relays are in flight (as of each
 * thread's last loop turn). */
size_t wrk_worker_live(wrk_worker *w);

/* wrk_worker_drain closes intake, waits until no relay is in flight or
 * grace_ms passed, then stops (wrk_worker_stop).  Blocks. */
void wrk_worker_drain(wrk_worker *w, uint32_t grace_ms);

/* wrk_worker_stop stops accepting requests, ends transfers and joins the
 * threads.  Blocks; idempotent; never call from a worker callback. */
void wrk_worker_stop(wrk_worker *w);

/* wrk_worker_free stops (if needed) and frees w; NULL is a no-op. */
void wrk_worker_free(wrk_worker *w);

/* wrk_cmd is `planktonfly worker`: argv[0] is "worker". */
int wrk_cmd(int argc, char **argv);

#endif /* PF_WORKERS_WORKER_H */
