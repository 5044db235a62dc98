/* test_snapshot.c -- candidate order: tiers, weights, zero weights,
 * model_mapping, and the model list. */
#include <string.h>

#include "common/msg.h"
#include "ingress/snapshot.h"
#include "tests/tap.h"

static void
add(ing_snapshot *s, int64_t id, const char *mapping)
{
	ing_channel_row row = {
		.id = id,
		.type = PF_API_OPENAI,
		.base_url = "http://127.0.0.1:9/v1",
		.key = "k",
		.proxy = "",
		.model_mapping = mapping,
	};
	pf_err err = ing_snapshot_add_channel(s, &row);

	ok(err == PF_OK || (err == PF_EINVAL && mapping[0] != '\0'),
	    "channel %lld added", (long long)id);
}

static int
count_model_cb(const char *model, const ing_channel *ch, void *arg)
{
	(void)ch;
	(void)model;
	(*(int *)arg)++;
	return 0;
}

int
main(void)
{
	ing_snapshot *s = ing_snapshot_new();
	ing_pick p;
	uint64_t rng = 42;

	add(s, 1, "");
	add(s, 2, "{\"gpt-4o\":\"gpt-4o-2024\"}");
	add(s, 3, "");
	add(s, 4, "not json");
	add(s, 5, "");
	add(s, 6, "");
	/* tier 10: channels 1 (w 1) and 2 (w 3); tier 0: 3 (w 0), 4 (w 0) */
	ok(ing_snapshot_add_ability(s, "default", "gpt-4o", 1, 10, 1) == PF_OK,
	    "ability");
	ok(ing_snapshot_add_ability(s, "default", "gpt-4o", 2, 10, 3) == PF_OK,
	    "ability");
	ok(ing_snapshot_add_ability(s, "default", "gpt-4o", 3, 0, 0) == PF_OK,
	    "ability");
	ok(ing_snapshot_add_ability(s, "default", "gpt-4o", 4, 0, 0) == PF_OK,
	    "ability");
	ok(ing_snapshot_add_ability(s, "default", "gpt-4o", 99, 50, 1) == PF_OK,
	    "ability of an unknown channel is accepted, dropped at seal");
	/* mixed tier: 5 has weight 0, 6 weight 5 */
	ok(ing_snapshot_add_ability(s, "vip", "m", 5, 1, 0) == PF_OK, "ab");
	ok(ing_snapshot_add_ability(s, "vip", "m", 6, 1, 5) == PF_OK, "ab");
	ok(ing_snapshot_add_ability(s, "vip", "a-model", 6, 1, 5) == PF_OK,
	    "ab");
	/* "off": its only channel is disabled; gpt-4o: one disabled channel
	 * next to enabled ones */
	ok(ing_snapshot_add_disabled(s, "default", "off") == PF_OK,
	    "disabled mark");
	ok(ing_snapshot_add_disabled(s, "default", "gpt-4o") == PF_OK,
	    "disabled mark next to enabled channels");
	ok(ing_snapshot_seal(s, 1700000000) == PF_OK, "sealed");
	ok(ing_snapshot_pick(s, "default", "off", &rng, &p) == PF_EAGAIN,
	    "a model whose channels are all disabled: PF_EAGAIN");
	ok(ing_snapshot_pick(s, "vip", "off", &rng, &p) == PF_ENOTFOUND,
	    "... of another group: PF_ENOTFOUND");

	ok(ing_snapshot_pick(s, "default", "nope", &rng, &p) == PF_ENOTFOUND,
	    "unknown model");
	ok(ing_snapshot_pick(s, "vip", "gpt-4o", &rng, &p) == PF_ENOTFOUND,
	    "model of another group");

	int first2 = 0, tier_ok = 1, zero_both = 1, first3 = 0;
	for (int i = 0; i < 4000; i++) {
		if (ing_snapshot_pick(s, "default", "gpt-4o", &rng, &p)
		    != PF_OK) {
			tier_ok = 0;
			break;
		}
		if (p.n != 4)
			tier_ok = 0;
		/* high tier first, both of its channels, then the low one */
		int64_t a = p.channel[0]->id, b = p.channel[1]->id;
		if (!((a == 1 && b == 2) || (a == 2 && b == 1)))
			tier_ok = 0;
		int64_t c = p.channel[2]->id, d = p.channel[3]->id;
		if (!((c == 3 && d == 4) || (c == 4 && d == 3)))
			zero_both = 0;
		first2 += a == 2;
		first3 += c == 3;
	}
	ok(tier_ok, "priority tiers in order, no channel twice");
	ok(zero_both, "all-zero tier still yields both channels");
	/* weight 3 vs 1: expect ~3000 of 4000; generous bounds */
	ok(first2 > 2600 && first2 < 3400, "weights respected (%d/4000)",
	    first2);
	ok(first3 > 1600 && first3 < 2400, "zero weights uniform (%d/4000)",
	    first3);
	ok(ing_snapshot_pick(s, "default", "gpt-4o", &rng, &p) == PF_OK,
	    "pick");
	for (unsigned i = 0; i < p.n; i++) {
		if (p.channel[i]->id == 2)
			ok(strcmp(p.upstream_model[i], "gpt-4o-2024") == 0,
			    "model_mapping applied");
		if (p.channel[i]->id == 1)
			ok(strcmp(p.upstream_model[i], "gpt-4o") == 0,
			    "no mapping keeps the name");
		if (p.channel[i]->id == 4)
			ok(strcmp(p.upstream_model[i], "gpt-4o") == 0,
			    "malformed mapping ignored");
	}

	int zero_last = 1;
	for (int i = 0; i < 200; i++) {
		if (ing_snapshot_pick(s, "vip", "m", &rng, &p) != PF_OK
		    || p.n != 2 || p.channel[0]->id != 6)
			zero_last = 0;
	}
	ok(zero_last, "weight-0 channel comes after weighted ones in a tier");

	int n = 0;
	ok(ing_snapshot_each_model(s, "vip", count_model_cb, &n) == 0 && n == 2,
	    "vip group lists 2 models");
	n = 0;
	ing_snapshot_each_model(s, "default", count_model_cb, &n);
	ok(n == 1, "default group lists 1 model");

	/* deterministic with the same seed */
	uint64_t r1 = 7, r2 = 7;
	ing_pick p1, p2;
	ok(ing_snapshot_pick(s, "default", "gpt-4o", &r1, &p1) == PF_OK
	        && ing_snapshot_pick(s, "default", "gpt-4o", &r2, &p2) == PF_OK
	        && p1.channel[0] == p2.channel[0]
	        && p1.channel[2] == p2.channel[2],
	    "same seed, same order");

	/* more than PF_RELAY_MAX_CANDIDATES channels: capped */
	ing_snapshot *big = ing_snapshot_new();
	for (int64_t id = 1; id <= 40; id++) {
		ing_channel_row row = { .id = id, .type = 1, .base_url = "u" };
		if (ing_snapshot_add_channel(big, &row) != PF_OK
		    || ing_snapshot_add_ability(big, "g", "m", id, id % 3, 1)
		        != PF_OK)
			break;
	}
	ok(ing_snapshot_seal(big, 0) == PF_OK, "big sealed");
	ok(ing_snapshot_pick(big, "g", "m", &rng, &p) == PF_OK
	        && p.n == PF_RELAY_MAX_CANDIDATES,
	    "capped at PF_RELAY_MAX_CANDIDATES");
	int desc = 1;
	for (unsigned i = 1; i < p.n; i++) {
		if (p.channel[i]->id % 3 > p.channel[i - 1]->id % 3)
			desc = 0;
	}
	ok(desc, "priorities non-increasing");
	ing_snapshot_unref(big);

	ing_snapshot *ref = ing_snapshot_ref(s);
	ing_snapshot_unref(s);
	ok(ing_snapshot_channels(ref) == 6, "still alive through a ref");
	ing_snapshot_unref(ref);
	ing_snapshot_unref(NULL);
	return tap_done();
}
