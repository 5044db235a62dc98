/*
 * money.h -- quota arithmetic.  int64 quota units only; no floating point.
 *
 * quota_per_unit quota units = 1 USD (default 500000).  Prices are exact
 * decimals held as integer micro-USD (1e-6 USD): per million tokens for
 * token prices, per call for per-call prices.  A request's cost is computed
 * exactly as a rational number and rounded up once to whole quota units.
 */
#ifndef PF_COMMON_MONEY_H
#define PF_COMMON_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define PF_QUOTA_PER_UNIT_DEFAULT 500000
#define PF_PPM 1000000 /* parts per million: ratios, micro-USD */

/* A model's price, all in micro-USD. */
typedef struct pf_price {
	int64_t input;  /* per 1M prompt tokens (not cached) */
	int64_t output; /* per 1M completion tokens */
	int64_t cached; /* per 1M cached prompt tokens */
	int64_t call;   /* per call; if > 0 tokens are not charged */
} pf_price;

/*
 * pf_money_parse_micros parses a non-negative decimal string such as "0.27",
 * "3", "12.5", "0.000001" into micro-units (0.27 -> 270000).  At most 6
 * fractional digits; no sign, exponent, or spaces; a digit is required on
 * both sides of a '.' ("1." and ".5" are rejected).  Errors: PF_EINVAL,
 * PF_EOVERFLOW.  *ret written only on success.
 */
PF_NODISCARD pf_err pf_money_parse_micros(
    const char *s, size_t len, int64_t *ret);

/* pf_money_format_micros writes v (micro-units) as a minimal decimal
 * ("0.27", "3", "-1.5") into out (outlen bytes, truncated like snprintf). */
void pf_money_format_micros(int64_t v, char *out, size_t outlen);

/*
 * pf_money_cost computes the quota cost of one request:
 *   n    = call>0 ? call*1e6 : (prompt-cached)*input + cached*cached_price
 *                               + completion*output
 *   cost = ceil(n * group_ratio_ppm * quota_per_unit / (1e6*1e6*1e6))
 * (n is micro-USD x 1e6: token prices are per 1e6 tokens, a call price is
 * per call.)  Computed exactly with 128-bit intermediates and rounded up
 * once.  cached > prompt is treated as cached = prompt.  A zero ratio or
 * quota_per_unit costs 0.  Errors: PF_EINVAL (negative input),
 * PF_EOVERFLOW (cost > INT64_MAX).  *ret_cost written only on success.
 */
PF_NODISCARD pf_err pf_money_cost(const pf_price *price, int64_t prompt,
    int64_t completion, int64_t cached, int64_t group_ratio_ppm,
    int64_t quota_per_unit, int64_t *ret_cost);

/* pf_money_add / pf_money_sub: checked int64 arithmetic.  Errors:
 * PF_EOVERFLOW. */
PF_NODISCARD pf_err pf_money_add(int64_t a, int64_t b, int64_t *ret);
PF_NODISCARD pf_err pf_money_sub(int64_t a, int64_t b, int64_t *ret);

#endif /* PF_COMMON_MONEY_H */
