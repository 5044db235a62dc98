/*
 * snapshot.c -- immutable routing snapshot and candidate choice.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ingress/snapshot.h"

/* the channel_id of an ability that only says a model is served by
 * channels that are all disabled (ing_snapshot_add_disabled) */
#define NO_CHANNEL_ID INT64_MIN

typedef struct ability {
	char *group;
	char *model;
	int64_t channel_id;
	int64_t priority;
	uint32_t weight;
} ability;

typedef struct route_ref {
	const ing_channel *channel;
	int64_t priority;
	uint32_t weight;
} route_ref;

/* all channels able to serve (group, model), priority descending; n 0:
 * the model has channels for the group, all of them disabled */
typedef struct route {
	const char *group;
	const char *model;
	size_t n;
	route_ref *refs;
} route;

struct ing_snapshot {
	atomic_int refs;
	int sealed;
	int64_t built_at;
	ing_channel *channels; /* sorted by id once sealed */
	size_t n_channels, cap_channels;
	ability *abilities; /* sorted by group, model, priority desc */
	size_t n_abilities, cap_abilities;
	route *routes; /* sorted by group, model */
	size_t n_routes;
	route_ref *ref_pool;
	ing_prices *prices; /* owned; NULL = none loaded */
};

uint64_t
ing_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

ing_snapshot *
ing_snapshot_new(void)
{
	ing_snapshot *s = calloc(1, sizeof(*s));

	if (s != NULL)
		atomic_init(&s->refs, 1);
	return s;
}

static void
channel_fini(ing_channel *c)
{
	free(c->base_url);
	free(c->key);
	free(c->proxy);
	for (size_t i = 0; i < c->n_map; i++) {
		free(c->map_from[i]);
		free(c->map_to[i]);
	}
	free(c->map_from);
	free(c->map_to);
}

static void
snapshot_free(ing_snapshot *s)
{
	for (size_t i = 0; i < s->n_channels; i++)
		channel_fini(&s->channels[i]);
	free(s->channels);
	for (size_t i = 0; i < s->n_abilities; i++) {
		free(s->abilities[i].group);
		free(s->abilities[i].model);
	}
	free(s->abilities);
	free(s->routes);
	free(s->ref_pool);
	ing_prices_free(s->prices);
	free(s);
}

ing_snapshot *
ing_snapshot_ref(ing_snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void
ing_snapshot_unref(ing_snapshot *s)
{
	if (s == NULL)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snapshot_free(s);
}

int64_t
ing_snapshot_built_at(const ing_snapshot *s)
{
	return s->built_at;
}

size_t
ing_snapshot_channels(const ing_snapshot *s)
{
	return s->n_channels;
}

void
ing_snapshot_set_prices(ing_snapshot *s, ing_prices *p)
{
	ing_prices_free(s->prices);
	s->prices = p;
}

const ing_prices *
ing_snapshot_prices(const ing_snapshot *s)
{
	return s->prices;
}

static char *
dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

/* parse_mapping fills c->map_* from a JSON object of string values. */
static pf_err
parse_mapping(ing_channel *c, const char *text)
{
	json_t *root;
	const char *k;
	json_t *v;
	size_t n;
	pf_err err = PF_OK;

	if (text == NULL || text[0] == '\0')
		return PF_OK;
	root = json_loads(text, 0, NULL);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return PF_EINVAL;
	}
	n = json_object_size(root);
	c->map_from = calloc(n + 1, sizeof(char *));
	c->map_to = calloc(n + 1, sizeof(char *));
	if (c->map_from == NULL || c->map_to == NULL) {
		json_decref(root);
		return PF_ENOMEM;
	}
	json_object_foreach(root, k, v)
	{
		if (!json_is_string(v) || json_string_length(v) == 0) {
			err = PF_EINVAL;
			continue;
		}
		char *from = strdup(k);
		char *to = strdup(json_string_value(v));
		if (from == NULL || to == NULL) {
			free(from);
			free(to);
			err = PF_ENOMEM;
			break;
		}
		c->map_from[c->n_map] = from;
		c->map_to[c->n_map] = to;
		c->n_map++;
	}
	json_decref(root);
	return err;
}

pf_err
ing_snapshot_add_channel(ing_snapshot *s, const ing_channel_row *row)
{
	ing_channel *c;
	pf_err err;

	if (s->n_channels == s->cap_channels) {
		size_t cap = s->cap_channels ? s->cap_channels * 2 : 16;
		ing_channel *p = realloc(s->channels, cap * sizeof(*p));
		if (p == NULL)
			return PF_ENOMEM;
		s->channels = p;
		s->cap_channels = cap;
	}
	c = &s->channels[s->n_channels];
	memset(c, 0, sizeof(*c));
	c->id = row->id;
	c->type = row->type;
	c->connect_timeout_ms = row->connect_timeout_ms;
	c->first_byte_timeout_ms = row->first_byte_timeout_ms;
	c->idle_timeout_ms = row->idle_timeout_ms;
	c->total_timeout_ms = row->total_timeout_ms;
	c->created_at = row->created_at;
	c->base_url = dup_or_empty(row->base_url);
	c->key = dup_or_empty(row->key);
	c->proxy = dup_or_empty(row->proxy);
	if (c->base_url == NULL || c->key == NULL || c->proxy == NULL) {
		channel_fini(c);
		return PF_ENOMEM;
	}
	err = parse_mapping(c, row->model_mapping);
	if (err == PF_ENOMEM) {
		channel_fini(c);
		return err;
	}
	s->n_channels++;
	return err;
}

pf_err
ing_snapshot_add_ability(ing_snapshot *s, const char *group, const char *model,
    int64_t channel_id, int64_t priority, int64_t weight)
{
	ability *a;

	if (group == NULL || model == NULL || model[0] == '\0')
		return PF_EINVAL;
	if (s->n_abilities == s->cap_abilities) {
		size_t cap = s->cap_abilities ? s->cap_abilities * 2 : 32;
		ability *p = realloc(s->abilities, cap * sizeof(*p));
		if (p == NULL)
			return PF_ENOMEM;
		s->abilities = p;
		s->cap_abilities = cap;
	}
	a = &s->abilities[s->n_abilities];
	a->group = strdup(group);
	a->model = strdup(model);
	if (a->group == NULL || a->model == NULL) {
		free(a->group);
		free(a->model);
		return PF_ENOMEM;
	}
	a->channel_id = channel_id;
	a->priority = priority;
	if (weight < 0)
		weight = 0;
	a->weight = weight > UINT32_MAX ? UINT32_MAX : (uint32_t)weight;
	s->n_abilities++;
	return PF_OK;
}

pf_err
ing_snapshot_add_disabled(ing_snapshot *s, const char *group, const char *model)
{
	return ing_snapshot_add_ability(s, group, model, NO_CHANNEL_ID,
	    INT64_MIN, 0); /* lowest priority: sorted after every channel */
}

static int
cmp_channel(const void *a, const void *b)
{
	const ing_channel *x = a;
	const ing_channel *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int
cmp_ability(const void *a, const void *b)
{
	const ability *x = a;
	const ability *y = b;
	int c = strcmp(x->group, y->group);

	if (c != 0)
		return c;
	c = strcmp(x->model, y->model);
	if (c != 0)
		return c;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return (x->channel_id > y->channel_id)
	    - (x->channel_id < y->channel_id);
}

static const ing_channel *
find_channel(const ing_snapshot *s, int64_t id)
{
	ing_channel key = { .id = id };

	return bsearch(
	    &key, s->channels, s->n_channels, sizeof(ing_channel), cmp_channel);
}

pf_err
ing_snapshot_seal(ing_snapshot *s, int64_t built_at)
{
	size_t nr = 0;

	if (s->n_channels > 1)
		qsort(s->channels, s->n_channels, sizeof(ing_channel),
		    cmp_channel);
	if (s->n_abilities > 1)
		qsort(
		    s->abilities, s->n_abilities, sizeof(ability), cmp_ability);
	s->ref_pool = calloc(s->n_abilities + 1, sizeof(route_ref));
	s->routes = calloc(s->n_abilities + 1, sizeof(route));
	if (s->ref_pool == NULL || s->routes == NULL) {
		free(s->ref_pool);
		free(s->routes);
		s->ref_pool = NULL;
		s->routes = NULL;
		return PF_ENOMEM;
	}
	for (size_t i = 0, used = 0; i < s->n_abilities; i++) {
		const ability *a = &s->abilities[i];
		const ing_channel *c = find_channel(s, a->channel_id);
		route *r;

		if (c == NULL && a->channel_id != NO_CHANNEL_ID)
			continue;
		r = nr > 0 ? &s->routes[nr - 1] : NULL;
		if (r == NULL || strcmp(r->group, a->group) != 0
		    || strcmp(r->model, a->model) != 0) {
			r = &s->routes[nr++];
			r->group = a->group;
			r->model = a->model;
			r->refs = &s->ref_pool[used];
			r->n = 0;
		}
		/* a channel listed twice for one route counts once; a
		 * disabled mark only makes the route known */
		if (c == NULL || (r->n > 0 && r->refs[r->n - 1].channel == c))
			continue;
		r->refs[r->n].channel = c;
		r->refs[r->n].priority = a->priority;
		r->refs[r->n].weight = a->weight;
		r->n++;
		used++;
	}
	s->n_routes = nr;
	s->built_at = built_at;
	s->sealed = 1;
	return PF_OK;
}

static int
cmp_route_key(const void *key, const void *elem)
{
	const route *k = key;
	const route *r = elem;
	int c = strcmp(k->group, r->group);

	return c != 0 ? c : strcmp(k->model, r->model);
}

static const char *
map_model(const ing_channel *c, const char *model)
{
	for (size_t i = 0; i < c->n_map; i++) {
		if (strcmp(c->map_from[i], model) == 0)
			return c->map_to[i];
	}
	return model;
}

#define PICK_STACK 64

pf_err
ing_snapshot_pick(const ing_snapshot *s, const char *group, const char *model,
    uint64_t *rng, ing_pick *ret)
{
	route key = { .group = group, .model = model };
	const route *r;
	route_ref stack[PICK_STACK];
	route_ref *tmp;
	ing_pick pick;

	if (!s->sealed)
		return PF_ENOTFOUND;
	r = bsearch(&key, s->routes, s->n_routes, sizeof(route), cmp_route_key);
	if (r == NULL)
		return PF_ENOTFOUND;
	if (r->n == 0)
		return PF_EAGAIN;
	tmp = r->n <= PICK_STACK ? stack : malloc(r->n * sizeof(route_ref));
	if (tmp == NULL)
		return PF_ENOMEM;
	memcpy(tmp, r->refs, r->n * sizeof(route_ref));
	pick.n = 0;
	for (size_t lo = 0; lo < r->n && pick.n < PF_RELAY_MAX_CANDIDATES;) {
		size_t hi = lo;
		while (hi < r->n && tmp[hi].priority == tmp[lo].priority)
			hi++;
		/* tier [lo, hi): draw without replacement */
		for (size_t k = lo; k < hi && pick.n < PF_RELAY_MAX_CANDIDATES;
		     k++) {
			uint64_t total = 0;
			size_t chosen = k;
			for (size_t j = k; j < hi; j++)
				total += tmp[j].weight;
			if (total == 0) {
				chosen = k + ing_rng_next(rng) % (hi - k);
			} else {
				uint64_t x = ing_rng_next(rng) % total;
				for (size_t j = k; j < hi; j++) {
					if (x < tmp[j].weight) {
						chosen = j;
						break;
					}
					x -= tmp[j].weight;
				}
			}
			route_ref t = tmp[k];
			tmp[k] = tmp[chosen];
			tmp[chosen] = t;
			pick.channel[pick.n] = tmp[k].channel;
			pick.upstream_model[pick.n]
			    = map_model(tmp[k].channel, r->model);
			pick.n++;
		}
		lo = hi;
	}
	if (tmp != stack)
		free(tmp);
	*ret = pick;
	return PF_OK;
}

int
ing_snapshot_each_model(const ing_snapshot *s, const char *group,
    int (*fn)(const char *model, const ing_channel *ch, void *arg), void *arg)
{
	if (!s->sealed)
		return 0;
	for (size_t i = 0; i < s->n_routes; i++) {
		const route *r = &s->routes[i];
		if (strcmp(r->group, group) != 0 || r->n == 0)
			continue;
		int rc = fn(r->model, r->refs[0].channel, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}
