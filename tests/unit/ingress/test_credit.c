/* test_credit.c -- hold arithmetic (ingress/credit.h), cost estimates and
 * price lookups used by ingress billing. */
#include <stdint.h>
#include <string.h>

#include "ingress/billing.h"
#include "ingress/credit.h"
#include "ingress/prices.h"
#include "tests/tap.h"

/* accountant side of the simulation: quota and one pool */
typedef struct acct_sim {
	int64_t quota;
	int64_t pool;
} acct_sim;

static int64_t
sim_grant(acct_sim *a, int64_t amount)
{
	int64_t avail = a->quota - a->pool;
	int64_t g = amount < avail ? amount : avail;

	if (g < 0)
		g = 0;
	a->pool += g;
	return g;
}

static void
sim_commit(acct_sim *a, int64_t cost)
{
	a->quota -= cost;
	a->pool -= cost < a->pool ? cost : a->pool;
}

static void
test_holds(void)
{
	ing_credit c = { 0 };

	ok(!ing_credit_try_hold(&c, 10), "no credit: a hold of 10 fails");
	ok(ing_credit_shortfall(&c, 10) == 10, "shortfall 10");
	ok(ing_credit_try_hold(&c, 0), "a hold of 0 always fits");
	ing_credit_grant(&c, 25, 1000);
	ok(c.granted == 25 && c.expires_ms == 1000, "grant adds 25");
	ok(ing_credit_try_hold(&c, 10) && c.held == 10, "hold 10 of 25");
	ok(ing_credit_try_hold(&c, 15) && c.held == 25, "hold 15 more: full");
	ok(!ing_credit_try_hold(&c, 1) && c.held == 25,
	    "a third hold does not fit and changes nothing");
	ok(ing_credit_shortfall(&c, 7) == 7, "shortfall when full: all");
	ing_credit_settle(&c, 10, 4);
	ok(c.held == 15 && c.granted == 21,
	    "settle: hold 10 dropped, cost 4 drawn (L 21, held 15)");
	ok(ing_credit_free_amount(&c) == 6, "free = L - held = 6");
	ok(ing_credit_shortfall(&c, 10) == 4, "shortfall of 10 is 4");
	ing_credit_settle(&c, 15, 100);
	ok(c.held == 0 && c.granted == 0,
	    "a cost above L draws L only (min(c, L)), never below 0");
	ing_credit_settle(&c, 5, 0);
	ok(c.held == 0, "dropping a hold never goes below 0");

	memset(&c, 0, sizeof(c));
	ing_credit_grant(&c, 100, 5000);
	ok(ing_credit_try_hold(&c, 30), "hold 30 of 100");
	ok(ing_credit_release(&c) == 70 && c.granted == 30,
	    "release gives back the surplus 70, keeps what is held");
	ok(ing_credit_release(&c) == 0, "nothing more to release");
	ing_credit_lapse(&c, 4999);
	ok(c.granted == 30, "before expiry the credit stays");
	ing_credit_renewed(&c, 9000);
	ing_credit_lapse(&c, 5000);
	ok(c.granted == 30 && c.expires_ms == 9000,
	    "a renewal moves the expiry");
	ing_credit_lapse(&c, 9000);
	ok(c.granted == 0 && c.held == 30,
	    "lapsed: granted 0, holds stay until their requests end");
	ok(!ing_credit_try_hold(&c, 1) && ing_credit_shortfall(&c, 1) == 31,
	    "after a lapse the holds still count against new credit");
	ing_credit_grant(&c, -5, 0);
	ok(c.granted == 0 && c.expires_ms == 9000,
	    "a negative grant adds nothing; an older expiry is ignored");
	memset(&c, 0, sizeof(c));
	ing_credit_grant(&c, INT64_MAX, 1);
	ing_credit_grant(&c, INT64_MAX, 1);
	ok(c.granted == INT64_MAX, "grants saturate instead of overflowing");
}

/* The overdraft bound (docs/billing.md): 200 requests in flight at once
 * by a user whose balance covers 10 estimates; each ends costing more
 * than its estimate by d.  The balance ends >= -(admitted x d). */
static void
test_bound(void)
{
	const int64_t e = 1000, d = 70;
	acct_sim a = { .quota = 10 * e, .pool = 0 };
	ing_credit c = { 0 };
	int admitted = 0;

	for (int i = 0; i < 200; i++) {
		if (!ing_credit_try_hold(&c, e)) {
			int64_t want = ing_credit_shortfall(&c, e) + 4 * e;
			ing_credit_grant(&c, sim_grant(&a, want), 30000);
			if (!ing_credit_try_hold(&c, e))
				continue;
		}
		admitted++;
	}
	ok(admitted == 10, "200 concurrent asks, balance for 10: %d admitted",
	    admitted);
	for (int i = 0; i < admitted; i++) {
		ing_credit_settle(&c, e, e + d);
		sim_commit(&a, e + d);
	}
	ok(a.quota == -(int64_t)admitted * d && a.quota >= -admitted * d,
	    "balance %lld >= -(sum of cost - estimate) %lld",
	    (long long)a.quota, (long long)(-admitted * d));
	ok(c.granted == 0 && c.held == 0 && a.pool == 0,
	    "mirror and pool both drained to 0");
}

static void
test_estimate(void)
{
	pf_price p = { .input = 500000, .output = 1500000, .cached = 500000 };
	pf_price call = { .call = 20000 };
	int64_t cost = -1;

	ok(ing_billing_estimate(&p, 1000000, 500000, 1000, 1000, &cost) == PF_OK
	        && cost == 1000,
	    "1000 prompt + 1000 completion at 0.5/1.5 USD per M: 1000 quota");
	ok(ing_billing_estimate(&p, 2000000, 500000, 1000, 1000, &cost) == PF_OK
	        && cost == 2000,
	    "group ratio x2 doubles it");
	ok(ing_billing_estimate(&p, 1000000, 500000, 1, 0, &cost) == PF_OK
	        && cost == 1,
	    "a fraction of a unit rounds up");
	ok(ing_billing_estimate(&call, 1000000, 500000, 5000, 4096, &cost)
	            == PF_OK
	        && cost == 10000,
	    "a per-call price ignores tokens: 0.02 USD = 10000 quota");
	ok(ing_billing_prompt_tokens("abcd", 4) == 1, "4 ASCII bytes: 1 token");
	ok(ing_billing_prompt_tokens("abcde", 5) == 2, "5 bytes round up");
	ok(ing_billing_prompt_tokens("\xe4\xbd\xa0\xe5\xa5\xbd", 6) == 2,
	    "two CJK characters: 2 tokens (4 units each)");
	ok(ing_billing_prompt_tokens("", 0) == 0, "empty body: 0");
}

static void
test_prices(void)
{
	ing_prices *p = ing_prices_new();
	pf_price a = { .input = 1, .output = 2 };
	pf_price b = { .call = 3 };
	pf_price got = { 0 };

	ok(p != NULL, "prices table");
	ok(ing_prices_add_model(p, "zeta", &a) == PF_OK
	        && ing_prices_add_model(p, "alpha", &b) == PF_OK,
	    "two models added");
	ok(ing_prices_add_model(p, "", &a) == PF_EINVAL, "empty name refused");
	pf_price neg = { .input = -1 };
	ok(ing_prices_add_model(p, "neg", &neg) == PF_EINVAL,
	    "a negative price refused");
	ok(ing_prices_add_group(p, "vip", 800000) == PF_OK, "group added");
	ing_prices_seal(p);
	ok(ing_prices_model(p, "zeta", &got) && got.output == 2, "lookup zeta");
	ok(ing_prices_model(p, "alpha", &got) && got.call == 3, "lookup alpha");
	ok(!ing_prices_model(p, "nope", &got), "unknown model: no price");
	ok(ing_prices_group_ratio(p, "vip") == 800000, "group ratio");
	ok(ing_prices_group_ratio(p, "other") == PF_PPM, "unknown group: x1");
	ok(ing_prices_group_ratio(NULL, "vip") == PF_PPM
	        && !ing_prices_model(NULL, "zeta", &got),
	    "NULL table: x1, no prices");
	ing_prices_free(p);
	ing_prices_free(NULL);
}

/* admits one request of estimate e like the ingress: ask when short */
static int
sim_admit(
    ing_credit *c, acct_sim *a, uint64_t *known, uint64_t epoch, int64_t e)
{
	if (ing_credit_try_hold(c, e))
		return 1;
	int64_t g = sim_grant(a, ing_credit_shortfall(c, e) + 4 * e);
	if (ing_credit_epoch_changed(known, epoch))
		ing_credit_forget(c);
	ing_credit_grant(c, g, 30000);
	return ing_credit_try_hold(c, e);
}

/* An accountant restart (docs/billing.md): its pools are gone, so the
 * ingress must drop the credit it mirrored from them when a reply
 * carries a new epoch, or the same balance is granted twice. */
static void
test_epoch(void)
{
	const int64_t e = 1000;
	acct_sim a = { .quota = 10 * e, .pool = 0 };
	ing_credit c = { 0 };
	uint64_t known = 0;
	int admitted = 0, inflight;

	ok(!ing_credit_epoch_changed(&known, 0) && known == 0,
	    "epoch 0 (an older accountant) is no news");
	ok(!ing_credit_epoch_changed(&known, 7) && known == 7,
	    "the first epoch is remembered, not a change");
	ok(!ing_credit_epoch_changed(&known, 7)
	        && !ing_credit_epoch_changed(&known, 0) && known == 7,
	    "the same epoch, or an epoch-less reply, changes nothing");
	ok(ing_credit_epoch_changed(&known, 9) && known == 9,
	    "a different epoch: the accountant restarted");

	/* warm: two requests in flight, L = 5e (3e free) */
	known = 0;
	for (int i = 0; i < 2; i++)
		admitted += sim_admit(&c, &a, &known, 11, e);
	inflight = admitted;
	ok(admitted == 2 && c.granted == 5 * e && c.held == 2 * e,
	    "warm: 2 admitted, L %lld, held %lld", (long long)c.granted,
	    (long long)c.held);

	/* the accountant restarts: pools empty, quota unchanged */
	a.pool = 0;
	ok(ing_credit_try_hold(&c, e), "the old L still admits locally");
	admitted++;
	inflight++;
	/* the next ask gets a reply with the new epoch */
	{
		int64_t g = sim_grant(&a, 4 * e);
		ok(ing_credit_epoch_changed(&known, 12), "new epoch noticed");
		ing_credit_forget(&c);
		ok(c.granted == 0 && c.held == 3 * e,
		    "L dropped to 0, the 3 holds kept");
		ing_credit_grant(&c, g, 60000);
	}
	for (int i = 0; i < 50; i++)
		admitted += sim_admit(&c, &a, &known, 12, e);
	for (int i = 0; i < admitted; i++) {
		ing_credit_settle(&c, e, e);
		sim_commit(&a, e);
	}
	ok(a.quota >= -(int64_t)inflight * e,
	    "balance %lld >= -(in-flight holds at the restart) %lld "
	    "(%d admitted)",
	    (long long)a.quota, (long long)(-(int64_t)inflight * e), admitted);
	ok(admitted <= 10 + inflight, "admitted %d <= 10 + %d", admitted,
	    inflight);

	/* without the reset the old L (2e free) adds to the new grants */
	{
		acct_sim b = { .quota = 10 * e, .pool = 5 * e };
		ing_credit k = { .granted = 5 * e, .held = 0 };
		int n = 0;

		b.pool = 0; /* restarted */
		for (int i = 0; i < 50; i++) {
			if (ing_credit_try_hold(&k, e)) {
				n++;
				continue;
			}
			ing_credit_grant(&k,
			    sim_grant(&b, ing_credit_shortfall(&k, e) + 4 * e),
			    30000);
			n += ing_credit_try_hold(&k, e);
		}
		ok(n == 15,
		    "without the epoch reset %d admitted (15: the "
		    "overdraft the epoch prevents)",
		    n);
	}
}

int
main(void)
{
	test_holds();
	test_bound();
	test_epoch();
	test_estimate();
	test_prices();
	return tap_done();
}
