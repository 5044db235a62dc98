/*
 * snapshot.h -- an immutable, reference-counted view of the routing index
 * (channels and abilities) and the choice of candidates for a request.
 *
 * A snapshot is built once (new, add_channel, add_ability, seal), then only
 * read, from any number of threads, by whoever holds a reference.
 */
#ifndef PF_INGRESS_SNAPSHOT_H
#define PF_INGRESS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"
#include "ingress/prices.h"

typedef struct ing_snapshot ing_snapshot;

/* One enabled channel as the ingress sends it to a worker. */
typedef struct ing_channel {
	int64_t id;
	int32_t type; /* pf_api_type */
	char *base_url;
	char *key; /* secret: never logged */
	char *proxy;
	uint32_t connect_timeout_ms; /* 0 = configured default */
	uint32_t first_byte_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t total_timeout_ms;
	int64_t created_at; /* unix s */
	size_t n_map;       /* model_mapping pairs */
	char **map_from;
	char **map_to;
} ing_channel;

/* Input row for ing_snapshot_add_channel; strings are copied. */
typedef struct ing_channel_row {
	int64_t id;
	int32_t type;
	const char *base_url;
	const char *key;
	const char *proxy;
	const char *model_mapping; /* JSON object text, "" = none */
	uint32_t connect_timeout_ms;
	uint32_t first_byte_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t total_timeout_ms;
	int64_t created_at;
} ing_channel_row;

/* Candidates for one request, in try order.  Pointers stay valid while the
 * snapshot they came from is referenced. */
typedef struct ing_pick {
	unsigned n;
	const ing_channel *channel[PF_RELAY_MAX_CANDIDATES];
	const char *upstream_model[PF_RELAY_MAX_CANDIDATES];
} ing_pick;

/* ing_snapshot_new returns an empty, unsealed snapshot with one reference,
 * or NULL when out of memory. */
ing_snapshot *ing_snapshot_new(void);

/*
 * ing_snapshot_add_channel copies row into s (unsealed).  A malformed
 * model_mapping is ignored and reported as PF_EINVAL after the channel
 * was added (the caller may log it).  Errors: PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_snapshot_add_channel(
    ing_snapshot *s, const ing_channel_row *row);

/*
 * ing_snapshot_add_ability records that channel_id serves model for group
 * with priority and weight (unsealed s).  Abilities whose channel was never
 * added are dropped at seal.  Errors: PF_ENOMEM, PF_EINVAL (empty names).
 */
PF_NODISCARD pf_err ing_snapshot_add_ability(ing_snapshot *s, const char *group,
    const char *model, int64_t channel_id, int64_t priority, int64_t weight);

/*
 * ing_snapshot_add_disabled records that model has channels for group
 * that are all disabled now (unsealed s), so a pick for it answers
 * PF_EAGAIN rather than PF_ENOTFOUND.  Ignored when an enabled channel
 * serves it.  Errors: PF_ENOMEM, PF_EINVAL (empty names).
 */
PF_NODISCARD pf_err ing_snapshot_add_disabled(
    ing_snapshot *s, const char *group, const char *model);

/* ing_snapshot_seal indexes s; afterwards it is read-only.
 * Errors: PF_ENOMEM (s stays unsealed and must be released). */
PF_NODISCARD pf_err ing_snapshot_seal(ing_snapshot *s, int64_t built_at);

/* ing_snapshot_ref adds a reference and returns s. */
ing_snapshot *ing_snapshot_ref(ing_snapshot *s);

/* ing_snapshot_unref drops a reference, freeing s with the last one; NULL
 * is a no-op. */
void ing_snapshot_unref(ing_snapshot *s);

/* ing_snapshot_built_at returns the built_at given to seal (unix s). */
int64_t ing_snapshot_built_at(const ing_snapshot *s);

/* ing_snapshot_channels returns how many channels s holds. */
size_t ing_snapshot_channels(const ing_snapshot *s);

/* ing_snapshot_set_prices gives s (unsealed) the price table p (taken:
 * freed with s; a previous one is freed). */
void ing_snapshot_set_prices(ing_snapshot *s, ing_prices *p);

/* ing_snapshot_prices returns the prices routed with s (NULL when none
 * were loaded; the ing_prices_* lookups accept NULL). */
const ing_prices *ing_snapshot_prices(const ing_snapshot *s);

/*
 * ing_snapshot_pick orders the channels serving (group, model): priority
 * tiers from high to low, weighted random without replacement inside a
 * tier (a tier whose remaining weights are all 0 is uniform), at most
 * PF_RELAY_MAX_CANDIDATES; upstream_model is model after the channel's
 * model_mapping.  *rng is a random state the caller seeds and owns.
 * Errors: PF_ENOTFOUND (no channel serves it), PF_EAGAIN (channels serve
 * it, all of them disabled); *ret untouched.
 */
PF_NODISCARD pf_err ing_snapshot_pick(const ing_snapshot *s, const char *group,
    const char *model, uint64_t *rng, ing_pick *ret);

/*
 * ing_snapshot_each_model calls fn(model, ch, arg) once per model that
 * group can use, in byte order of the names; ch is the model's first
 * channel (highest priority, lowest id).  Stops early when fn returns non-zero and
 * returns that value; else 0.
 */
int ing_snapshot_each_model(const ing_snapshot *s, const char *group,
    int (*fn)(const char *model, const ing_channel *ch, void *arg), void *arg);

/* ing_rng_next advances a splitmix64 state and returns 64 random bits. */
uint64_t ing_rng_next(uint64_t *state);

#endif /* PF_INGRESS_SNAPSHOT_H */
