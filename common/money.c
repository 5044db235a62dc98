/*
 * money.c -- exact quota arithmetic on integers.
 *
 * Decimal strings: digits, optionally '.' and 1 to 6 more digits.  Both
 * sides of the point need a digit: "1." and ".5" are rejected, as are
 * signs, exponents, spaces and a seventh fractional digit (even "0").
 */
#include "common/money.h"

#include <stdio.h>

#define MICROS 1000000

/* __extension__ keeps -Wpedantic quiet about the GNU 128-bit type. */
__extension__ typedef unsigned __int128 u128;

pf_err
pf_money_parse_micros(const char *s, size_t len, int64_t *ret)
{
	uint64_t whole = 0, frac = 0;
	size_t i = 0, int_digits = 0, frac_digits = 0;
	int64_t v;

	if (s == NULL || len == 0)
		return PF_EINVAL;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		/* 19 digits always fit in uint64; check before the 20th */
		if (whole > (UINT64_MAX - 9) / 10)
			return PF_EOVERFLOW;
		whole = whole * 10 + (uint64_t)(s[i] - '0');
		int_digits++;
	}
	if (int_digits == 0)
		return PF_EINVAL;
	if (i < len) {
		if (s[i] != '.')
			return PF_EINVAL;
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			if (++frac_digits > 6)
				return PF_EINVAL;
			frac = frac * 10 + (uint64_t)(s[i] - '0');
		}
		if (frac_digits == 0 || i < len)
			return PF_EINVAL;
	}
	for (size_t k = frac_digits; k < 6; k++)
		frac *= 10;
	if (whole > (uint64_t)(INT64_MAX - (int64_t)frac) / MICROS)
		return PF_EOVERFLOW;
	v = (int64_t)whole * MICROS + (int64_t)frac;
	*ret = v;
	return PF_OK;
}

void
pf_money_format_micros(int64_t v, char *out, size_t outlen)
{
	uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	uint64_t whole = mag / MICROS;
	uint64_t frac = mag % MICROS;
	char fbuf[8];
	int digits = 6;

	if (out == NULL || outlen == 0)
		return;
	if (frac == 0) {
		snprintf(out, outlen, "%s%llu", v < 0 ? "-" : "",
		    (unsigned long long)whole);
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(
	    fbuf, sizeof(fbuf), "%0*llu", digits, (unsigned long long)frac);
	snprintf(out, outlen, "%s%llu.%s", v < 0 ? "-" : "",
	    (unsigned long long)whole, fbuf);
}

pf_err
pf_money_cost(const pf_price *price, int64_t prompt, int64_t completion,
    int64_t cached, int64_t group_ratio_ppm, int64_t quota_per_unit,
    int64_t *ret_cost)
{
	/* All three scale factors: tokens per "per million", micro-USD per
	 * USD, ppm per ratio 1.0. */
	const u128 den = (u128)1000000000000000000u;
	u128 num, t, hi, lo;
	uint64_t q;

	if (price == NULL || ret_cost == NULL)
		return PF_EINVAL;
	if (price->input < 0 || price->output < 0 || price->cached < 0
	    || price->call < 0 || prompt < 0 || completion < 0 || cached < 0
	    || group_ratio_ppm < 0 || quota_per_unit < 0)
		return PF_EINVAL;
	if (cached > prompt)
		cached = prompt;

	/* num is in micro-USD x tokens-per-million: below 3 * 2^126, so
	 * it fits unsigned 128 bits. */
	if (price->call > 0) {
		num = (u128)price->call * MICROS;
	} else {
		num = (u128)(prompt - cached) * (uint64_t)price->input
		    + (u128)cached * (uint64_t)price->cached
		    + (u128)completion * (uint64_t)price->output;
	}
	if (num == 0 || group_ratio_ppm == 0 || quota_per_unit == 0) {
		*ret_cost = 0;
		return PF_OK;
	}
	/* t = num * ratio.  If that exceeds 128 bits the cost is at least
	 * 2^128 / 1e18 > INT64_MAX (quota_per_unit >= 1): overflow. */
	if (num > ~(u128)0 / (uint64_t)group_ratio_ppm)
		return PF_EOVERFLOW;
	t = num * (uint64_t)group_ratio_ppm;
	/* cost = ceil(t * q / den) = hi * q + ceil(lo * q / den) with
	 * t = hi * den + lo; lo * q < 2^60 * 2^63 fits. */
	q = (uint64_t)quota_per_unit;
	hi = t / den;
	lo = t % den;
	lo = (lo * q + den - 1) / den; /* 0 .. q */
	if (hi > (u128)INT64_MAX / q)
		return PF_EOVERFLOW;
	hi = hi * q;
	if (hi + lo > (u128)INT64_MAX)
		return PF_EOVERFLOW;
	*ret_cost = (int64_t)(hi + lo);
	return PF_OK;
}

pf_err
pf_money_add(int64_t a, int64_t b, int64_t *ret)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return PF_EOVERFLOW;
	*ret = r;
	return PF_OK;
}

pf_err
pf_money_sub(int64_t a, int64_t b, int64_t *ret)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return PF_EOVERFLOW;
	*ret = r;
	return PF_OK;
}
