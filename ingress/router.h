/*
 * router.h -- keeps the current routing snapshot fresh.
 *
 * A background thread reloads enabled abilities and channels from
 * PostgreSQL every cfg->channel_refresh_ms and swaps the snapshot; the
 * request path only takes a reference to the current one (no DB call).
 */
#ifndef PF_INGRESS_ROUTER_H
#define PF_INGRESS_ROUTER_H

#include "common/config.h"
#include "common/err.h"
#include "ingress/snapshot.h"

typedef struct ing_router ing_router;

/*
 * ing_router_start loads the first snapshot (synchronously) and starts the
 * reload thread.  cfg must outlive the router.  Errors: PF_EDB (cannot
 * connect or query), PF_ENOMEM, PF_EIO (thread).
 */
PF_NODISCARD pf_err ing_router_start(const pf_config *cfg, ing_router **ret);

/* ing_router_acquire returns a new reference to the current snapshot
 * (never NULL once started); release it with ing_snapshot_unref. */
ing_snapshot *ing_router_acquire(ing_router *r);

/* ing_router_reload_now asks the thread to reload soon (non-blocking). */
void ing_router_reload_now(ing_router *r);

/* ing_router_free stops the thread and frees r; NULL is a no-op.  Blocks. */
void ing_router_free(ing_router *r);

#endif /* PF_INGRESS_ROUTER_H */
