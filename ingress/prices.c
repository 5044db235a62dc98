/*
 * prices.c -- model prices and group multipliers of a routing snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include "ingress/prices.h"

typedef struct entry {
	char *name;
	pf_price price;    /* models */
	int64_t ratio_ppm; /* groups */
} entry;

typedef struct table {
	entry *v;
	size_t n, cap;
} table;

struct ing_prices {
	table models;
	table groups;
};

ing_prices *
ing_prices_new(void)
{
	return calloc(1, sizeof(ing_prices));
}

static void
table_fini(table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
}

void
ing_prices_free(ing_prices *p)
{
	if (p == NULL)
		return;
	table_fini(&p->models);
	table_fini(&p->groups);
	free(p);
}

static entry *
table_add(table *t, const char *name)
{
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 16;
		entry *nv = realloc(t->v, nc * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		t->v = nv;
		t->cap = nc;
	}
	entry *e = &t->v[t->n];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (e->name == NULL)
		return NULL;
	t->n++;
	return e;
}

pf_err
ing_prices_add_model(ing_prices *p, const char *model, const pf_price *price)
{
	entry *e;

	if (model[0] == '\0' || price->input < 0 || price->output < 0
	    || price->cached < 0 || price->call < 0)
		return PF_EINVAL;
	e = table_add(&p->models, model);
	if (e == NULL)
		return PF_ENOMEM;
	e->price = *price;
	return PF_OK;
}

pf_err
ing_prices_add_group(ing_prices *p, const char *group, int64_t ratio_ppm)
{
	entry *e;

	if (group[0] == '\0' || ratio_ppm < 0)
		return PF_EINVAL;
	e = table_add(&p->groups, group);
	if (e == NULL)
		return PF_ENOMEM;
	e->ratio_ppm = ratio_ppm;
	return PF_OK;
}

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int
cmp_key(const void *key, const void *elem)
{
	return strcmp(key, ((const entry *)elem)->name);
}

void
ing_prices_seal(ing_prices *p)
{
	if (p->models.n > 1)
		qsort(p->models.v, p->models.n, sizeof(entry), cmp_entry);
	if (p->groups.n > 1)
		qsort(p->groups.v, p->groups.n, sizeof(entry), cmp_entry);
}

static const entry *
find(const table *t, const char *name)
{
	if (t->n == 0)
		return NULL;
	return bsearch(name, t->v, t->n, sizeof(entry), cmp_key);
}

int
ing_prices_model(const ing_prices *p, const char *model, pf_price *ret)
{
	const entry *e = p != NULL ? find(&p->models, model) : NULL;

	if (e == NULL)
		return 0;
	*ret = e->price;
	return 1;
}

int64_t
ing_prices_group_ratio(const ing_prices *p, const char *group)
{
	const entry *e = p != NULL ? find(&p->groups, group) : NULL;

	return e != NULL ? e->ratio_ppm : PF_PPM;
}
