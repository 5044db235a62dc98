/*
 * credit.h -- the ingress's mirror of the credit the accountant granted it
 * for one (user, token), and the holds of requests in flight against it
 * (docs/billing.md, "Credit control and the overdraft bound").
 *
 *   admit a request with estimate e    only if granted - held >= e;
 *                                      then held += e
 *   a grant reply of g                 granted += g
 *   the request ends costing c         held -= e; granted -= min(c, granted)
 *                                      (the accountant draws the same
 *                                      from its pool when it commits)
 *   release                            give back granted - held
 *   the pool lapses (no renewal)       granted = 0
 *   the accountant restarted (a reply  granted = 0, holds kept
 *   carries a new epoch)
 *
 * Plain arithmetic on a struct the caller locks; no allocation.
 */
#ifndef PF_INGRESS_CREDIT_H
#define PF_INGRESS_CREDIT_H

#include <stdint.h>

typedef struct ing_credit {
	int64_t granted;    /* L: granted to us and not yet drawn */
	int64_t held;       /* estimates of admitted, unsettled requests */
	int64_t expires_ms; /* the pool lapses then unless renewed */
} ing_credit;

/* ing_credit_lapse drops the granted credit once now_ms reaches
 * expires_ms (the accountant's pool lapsed too). */
void ing_credit_lapse(ing_credit *c, int64_t now_ms);

/* ing_credit_free_amount returns granted - held (may be negative). */
int64_t ing_credit_free_amount(const ing_credit *c);

/* ing_credit_try_hold holds e (>= 0) and returns 1 when granted - held >=
 * e; otherwise changes nothing and returns 0. */
int ing_credit_try_hold(ing_credit *c, int64_t e);

/* ing_credit_shortfall returns how much more credit a hold of e needs
 * (0 when it fits). */
int64_t ing_credit_shortfall(const ing_credit *c, int64_t e);

/* ing_credit_grant adds a grant reply's amount (>= 0) and moves the
 * expiry to expires_ms. */
void ing_credit_grant(ing_credit *c, int64_t granted, int64_t expires_ms);

/* ing_credit_renewed moves the expiry (a renewal was answered). */
void ing_credit_renewed(ing_credit *c, int64_t expires_ms);

/* ing_credit_settle drops a request's hold and draws its cost:
 * held -= hold (not below 0), granted -= min(cost, granted). */
void ing_credit_settle(ing_credit *c, int64_t hold, int64_t cost);

/* ing_credit_release takes the surplus (granted - held, when positive)
 * out of granted and returns it (the amount of a grant.release). */
int64_t ing_credit_release(ing_credit *c);

/* ing_credit_forget drops the granted credit and keeps the holds: the
 * accountant that granted it restarted and its pool is gone (requests
 * already admitted still settle against their holds). */
void ing_credit_forget(ing_credit *c);

/* ing_credit_epoch_changed notes the accountant epoch a grant.reply
 * carried in *known.  Returns 1 when seen is nonzero and differs from a
 * nonzero *known: the accountant restarted, the caller must
 * ing_credit_forget every credit of it.  seen 0 (an older accountant)
 * changes nothing; the first nonzero epoch is just remembered. */
int ing_credit_epoch_changed(uint64_t *known, uint64_t seen);

#endif /* PF_INGRESS_CREDIT_H */
