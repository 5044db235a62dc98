/*
 * prices.h -- model prices and group multipliers as of one routing
 * snapshot (model_prices, groups), read on the request path without a
 * database call.
 *
 * Built once (new, add_*, seal), then read-only from any thread; the
 * routing snapshot owns it (ing_snapshot_set_prices).
 */
#ifndef PF_INGRESS_PRICES_H
#define PF_INGRESS_PRICES_H

#include <stdint.h>

#include "common/err.h"
#include "common/money.h"

typedef struct ing_prices ing_prices;

/* ing_prices_new returns an empty, unsealed table, or NULL when out of
 * memory. */
ing_prices *ing_prices_new(void);

/* ing_prices_free; NULL is a no-op. */
void ing_prices_free(ing_prices *p);

/*
 * ing_prices_add_model records model's price (unsealed p; model copied).
 * Errors: PF_EINVAL (empty model, negative price), PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_prices_add_model(
    ing_prices *p, const char *model, const pf_price *price);

/*
 * ing_prices_add_group records group's multiplier in parts per million
 * (unsealed p).  Errors: PF_EINVAL (empty name, negative), PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_prices_add_group(
    ing_prices *p, const char *group, int64_t ratio_ppm);

/* ing_prices_seal sorts p for lookups; afterwards it is read-only. */
void ing_prices_seal(ing_prices *p);

/*
 * ing_prices_model writes model's price to *ret and returns 1, or returns
 * 0 (and leaves *ret alone) when the model has no price.  p may be NULL.
 */
int ing_prices_model(const ing_prices *p, const char *model, pf_price *ret);

/* ing_prices_group_ratio returns group's multiplier (ppm), PF_PPM (x1)
 * when the group is unknown or p is NULL. */
int64_t ing_prices_group_ratio(const ing_prices *p, const char *group);

#endif /* PF_INGRESS_PRICES_H */
