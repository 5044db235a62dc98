/*
 * health.h -- channel health: automatic disable and probe re-enable.
 *
 * The reply thread hands every relay.end's attempt list to
 * ing_health_note (memory only, no I/O).  A channel that fails
 * cfg->channel_fail_max times in a row (connect error, timeout, 5xx,
 * broken transfer; 429 and our own failures count neither way) or answers
 * 401/403 is queued for disabling.  A background thread writes
 * channels.status = 3 with disabled_reason, disabled_at and fail_count
 * (never touching a channel an admin disabled, status 2) and asks the
 * router to reload, so the routing snapshot drops it.  Every
 * cfg->channel_probe_ms the same thread probes each status-3 channel
 * through a worker (GET /models with the channel's key, an ordinary
 * relay.request flagged probe) and re-enables the ones that answer 2xx.
 * The request path never waits on any of this.
 */
#ifndef PF_INGRESS_HEALTH_H
#define PF_INGRESS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/msg.h"
#include "ingress/relay.h"
#include "ingress/router.h"

typedef struct ing_health ing_health;

/*
 * ing_health_new makes the in-memory state (no thread yet).  cfg must
 * outlive it.  Errors: PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_health_new(const pf_config *cfg, ing_health **ret);

/*
 * ing_health_start starts the background thread that writes disables to
 * PostgreSQL and probes disabled channels through relay (probes are off
 * when cfg->channel_probe_ms is 0).  relay and router must outlive h.
 * Errors: PF_EIO (thread).
 */
PF_NODISCARD pf_err ing_health_start(
    ing_health *h, ing_relay *relay, ing_router *router);

/*
 * ing_health_note counts the outcomes of one request's attempts; now_s is
 * the unix time used in a disable reason.  Thread-safe; never blocks on
 * I/O.
 */
void ing_health_note(
    ing_health *h, const pf_attempt *a, uint32_t n, int64_t now_s);

/* ing_health_end_cb is ing_health_note shaped as a relay end hook
 * (arg is the ing_health). */
void ing_health_end_cb(void *arg, const pf_relay_end *e);

/*
 * ing_health_pending copies up to max channel ids queued for disabling
 * (not yet written) into ids and returns how many there are; reason, when
 * not NULL, gets the first one's reason (reasonlen bytes).
 */
size_t ing_health_pending(
    ing_health *h, int64_t *ids, size_t max, char *reason, size_t reasonlen);

/* ing_health_quiesce stops probing (draining); disables still go out. */
void ing_health_quiesce(ing_health *h);

/* ing_health_free stops and joins the thread and frees h; NULL is a
 * no-op.  Blocks (at most one probe timeout). */
void ing_health_free(ing_health *h);

#endif /* PF_INGRESS_HEALTH_H */
