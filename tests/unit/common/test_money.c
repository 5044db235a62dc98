/*
 * test_money.c -- decimal parsing/formatting and exact cost rounding.
 */
#include <string.h>

#include "common/money.h"
#include "tests/tap.h"

static void
test_parse(void)
{
	static const struct {
		const char *s;
		pf_err err;
		int64_t v;
	} cases[] = {
		{ "0.27", PF_OK, 270000 },
		{ "3", PF_OK, 3000000 },
		{ "12.5", PF_OK, 12500000 },
		{ "0.000001", PF_OK, 1 },
		{ "0", PF_OK, 0 },
		{ "0.0", PF_OK, 0 },
		{ "007.50", PF_OK, 7500000 },
		{ "9223372036854.775807", PF_OK, INT64_MAX },
		{ "9223372036854.775808", PF_EOVERFLOW, 0 },
		{ "9223372036855", PF_EOVERFLOW, 0 },
		{ "99999999999999999999999999", PF_EOVERFLOW, 0 },
		{ "-1", PF_EINVAL, 0 },
		{ "+1", PF_EINVAL, 0 },
		{ "1e3", PF_EINVAL, 0 },
		{ "1.2345678", PF_EINVAL, 0 },
		{ "1.0000000", PF_EINVAL, 0 },
		{ "", PF_EINVAL, 0 },
		{ " 1", PF_EINVAL, 0 },
		{ "1 ", PF_EINVAL, 0 },
		{ "1.", PF_EINVAL, 0 },
		{ ".5", PF_EINVAL, 0 },
		{ "1..2", PF_EINVAL, 0 },
		{ "1.2.3", PF_EINVAL, 0 },
		{ "1,5", PF_EINVAL, 0 },
		{ "0x10", PF_EINVAL, 0 },
		{ "abc", PF_EINVAL, 0 },
		{ "nan", PF_EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = -7;
		pf_err err
		    = pf_money_parse_micros(cases[i].s, strlen(cases[i].s), &v);

		if (cases[i].err == PF_OK)
			ok(err == PF_OK && v == cases[i].v,
			    "parse \"%s\" = %lld", cases[i].s,
			    (long long)cases[i].v);
		else
			ok(err == cases[i].err && v == -7,
			    "parse \"%s\" -> %s, ret untouched", cases[i].s,
			    pf_strerror(cases[i].err));
	}
	{
		int64_t v = 0;
		pf_err err = pf_money_parse_micros("1.5xyz", 3, &v);
		ok(err == PF_OK && v == 1500000, "parse honours len");
		err = pf_money_parse_micros("1\0"
		                            "5",
		    3, &v);
		ok(err == PF_EINVAL, "embedded NUL rejected");
		err = pf_money_parse_micros(NULL, 0, &v);
		ok(err == PF_EINVAL, "NULL rejected");
	}
}

static void
test_format(void)
{
	static const struct {
		int64_t v;
		const char *s;
	} cases[] = {
		{ 270000, "0.27" },
		{ 3000000, "3" },
		{ 12500000, "12.5" },
		{ 1, "0.000001" },
		{ 0, "0" },
		{ 100000, "0.1" },
		{ 1000001, "1.000001" },
		{ -1500000, "-1.5" },
		{ INT64_MAX, "9223372036854.775807" },
		{ INT64_MIN, "-9223372036854.775808" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t back = -1;
		pf_err err;

		pf_money_format_micros(cases[i].v, out, sizeof(out));
		ok(strcmp(out, cases[i].s) == 0, "format %lld = %s (got %s)",
		    (long long)cases[i].v, cases[i].s, out);
		if (cases[i].v >= 0) {
			err = pf_money_parse_micros(out, strlen(out), &back);
			ok(err == PF_OK && back == cases[i].v,
			    "parse(format(%lld)) round-trips",
			    (long long)cases[i].v);
		}
	}
	pf_money_format_micros(12500000, out, 3);
	ok(strcmp(out, "12") == 0, "format truncates to outlen");
}

static void
test_cost(void)
{
	static const struct {
		pf_price price;
		int64_t prompt, completion, cached, ratio, qpu;
		pf_err err;
		int64_t cost;
		const char *what;
	} cases[] = {
		/* 900*2.5 + 100*1.25 + 500*10 = 7375 micro-USD... per 1M:
		 * 0.007375 USD * 500000 = 3687.5 -> 3688 */
		{ { 2500000, 10000000, 1250000, 0 }, 1000, 500, 100, 1000000,
		    500000, PF_OK, 3688, "mixed tokens round up once" },
		{ { 1000000, 0, 0, 0 }, 1000000, 0, 0, 1000000, 500000, PF_OK,
		    500000, "exact result is not bumped" },
		{ { 1, 0, 0, 0 }, 1, 0, 0, 1000000, 500000, PF_OK, 1,
		    "a tiny cost rounds up to 1" },
		{ { 1, 1, 1, 0 }, 0, 0, 0, 1000000, 500000, PF_OK, 0,
		    "no tokens cost 0" },
		{ { 1000000, 1000000, 0, 10000 }, 5, 5, 0, 1500000, 500000,
		    PF_OK, 7500, "per-call price ignores tokens" },
		{ { 1000000, 0, 0, 0 }, 10, 0, 20, 1000000, 500000, PF_OK, 0,
		    "cached > prompt is treated as cached = prompt" },
		{ { 1000000, 0, 500000, 0 }, 10, 0, 20, 1000000, 500000, PF_OK,
		    3, "all cached: 10 * 0.5 / 1M * 500000 = 2.5 -> 3" },
		{ { 2500000, 10000000, 0, 0 }, 1000, 500, 0, 0, 500000, PF_OK,
		    0, "ratio 0 is free" },
		{ { 2500000, 10000000, 0, 0 }, 1000, 500, 0, 500000, 500000,
		    PF_OK, 1875, "ratio 0.5: 3750 * 0.5" },
		{ { 0, 0, 0, 1000000 }, 0, 0, 0, 1000000, INT64_MAX, PF_OK,
		    INT64_MAX, "exactly INT64_MAX" },
		{ { 0, 0, 0, 1000001 }, 0, 0, 0, 1000000, INT64_MAX,
		    PF_EOVERFLOW, 0, "one micro over INT64_MAX" },
		{ { INT64_MAX, INT64_MAX, INT64_MAX, 0 }, INT64_MAX, INT64_MAX,
		    0, INT64_MAX, INT64_MAX, PF_EOVERFLOW, 0,
		    "everything at INT64_MAX" },
		{ { INT64_MAX, 0, 0, 0 }, 1000000000, 0, 0, 1, 1, PF_OK,
		    9223372037, "huge numerator, tiny scale, exact" },
		{ { INT64_MAX, 0, 0, 0 }, INT64_MAX, 0, 0, 1, 1, PF_EOVERFLOW,
		    0, "2^126 / 1e18 does not fit" },
		{ { -1, 0, 0, 0 }, 1, 0, 0, 1000000, 500000, PF_EINVAL, 0,
		    "negative price" },
		{ { 1, 0, 0, 0 }, -1, 0, 0, 1000000, 500000, PF_EINVAL, 0,
		    "negative tokens" },
		{ { 1, 0, 0, 0 }, 1, 0, 0, -1, 500000, PF_EINVAL, 0,
		    "negative ratio" },
		{ { 1, 0, 0, 0 }, 1, 0, 0, 1, -1, PF_EINVAL, 0,
		    "negative quota_per_unit" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t cost = -7;
		pf_err err = pf_money_cost(&cases[i].price, cases[i].prompt,
		    cases[i].completion, cases[i].cached, cases[i].ratio,
		    cases[i].qpu, &cost);

		if (cases[i].err == PF_OK)
			ok(err == PF_OK && cost == cases[i].cost,
			    "cost: %s (want %lld, got %lld)", cases[i].what,
			    (long long)cases[i].cost, (long long)cost);
		else
			ok(err == cases[i].err && cost == -7, "cost: %s -> %s",
			    cases[i].what, pf_strerror(cases[i].err));
	}
}

static void
test_add_sub(void)
{
	int64_t r = 0;

	ok(pf_money_add(1, 2, &r) == PF_OK && r == 3, "1 + 2");
	ok(pf_money_add(INT64_MAX, 1, &r) == PF_EOVERFLOW && r == 3,
	    "INT64_MAX + 1 overflows, ret untouched");
	ok(pf_money_add(INT64_MIN, -1, &r) == PF_EOVERFLOW, "MIN - 1 via add");
	ok(pf_money_sub(5, 7, &r) == PF_OK && r == -2, "5 - 7");
	ok(pf_money_sub(INT64_MIN, 1, &r) == PF_EOVERFLOW, "MIN - 1");
	ok(pf_money_sub(0, INT64_MIN, &r) == PF_EOVERFLOW, "0 - MIN");
}

int
main(void)
{
	test_parse();
	test_format();
	test_cost();
	test_add_sub();
	return tap_done();
}
