/*
 * credit.c -- granted credit and holds of one (user, token).
 */
#include "ingress/credit.h"

static int64_t
sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

void
ing_credit_lapse(ing_credit *c, int64_t now_ms)
{
	if (now_ms >= c->expires_ms)
		c->granted = 0;
}

int64_t
ing_credit_free_amount(const ing_credit *c)
{
	return sat_add(c->granted, -c->held);
}

int
ing_credit_try_hold(ing_credit *c, int64_t e)
{
	if (e < 0 || ing_credit_free_amount(c) < e)
		return 0;
	c->held = sat_add(c->held, e);
	return 1;
}

int64_t
ing_credit_shortfall(const ing_credit *c, int64_t e)
{
	int64_t free_amount = ing_credit_free_amount(c);

	if (e <= free_amount)
		return 0;
	return sat_add(e, -free_amount);
}

void
ing_credit_grant(ing_credit *c, int64_t granted, int64_t expires_ms)
{
	if (granted > 0)
		c->granted = sat_add(c->granted, granted);
	if (expires_ms > c->expires_ms)
		c->expires_ms = expires_ms;
}

void
ing_credit_renewed(ing_credit *c, int64_t expires_ms)
{
	if (expires_ms > c->expires_ms)
		c->expires_ms = expires_ms;
}

void
ing_credit_settle(ing_credit *c, int64_t hold, int64_t cost)
{
	if (hold > 0)
		c->held = hold >= c->held ? 0 : c->held - hold;
	if (cost > 0)
		c->granted = cost >= c->granted ? 0 : c->granted - cost;
}

int64_t
ing_credit_release(ing_credit *c)
{
	int64_t surplus = ing_credit_free_amount(c);

	if (surplus <= 0)
		return 0;
	c->granted -= surplus;
	return surplus;
}

void
ing_credit_forget(ing_credit *c)
{
	c->granted = 0;
}

int
ing_credit_epoch_changed(uint64_t *known, uint64_t seen)
{
	int changed;

	if (seen == 0)
		return 0;
	changed = *known != 0 && *known != seen;
	*known = seen;
	return changed;
}
