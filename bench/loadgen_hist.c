/*
 * loadgen_hist.c -- log-linear histogram.
 */
#include "bench/loadgen_hist.h"

#include <string.h>

void
lg_hist_init(lg_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static uint32_t
bucket_of(uint64_t v)
{
	if (v < LG_HIST_SUB)
		return (uint32_t)v;
	uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
	if (e > LG_HIST_MAX_EXP)
		return LG_HIST_BUCKETS - 1u;
	uint32_t shift = e - LG_HIST_SUB_BITS;
	uint32_t sub = (uint32_t)(v >> shift) - LG_HIST_SUB;
	return (shift + 1u) * LG_HIST_SUB + sub;
}

/* The lowest value of bucket b and its width. */
static void
bucket_range(uint32_t b, uint64_t *lo, uint64_t *width)
{
	if (b < LG_HIST_SUB) {
		*lo = b;
		*width = 1;
		return;
	}
	uint32_t shift = b / LG_HIST_SUB - 1u;
	uint64_t sub = b % LG_HIST_SUB + LG_HIST_SUB;
	*lo = sub << shift;
	*width = (uint64_t)1 << shift;
}

void
lg_hist_record(lg_hist *h, uint64_t v)
{
	h->buckets[bucket_of(v)]++;
	h->count++;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	if (h->sum + v >= h->sum)
		h->sum += v;
	else
		h->sum = UINT64_MAX;
}

void
lg_hist_merge(lg_hist *dst, const lg_hist *src)
{
	if (src->count == 0)
		return;
	for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	if (dst->sum + src->sum >= dst->sum)
		dst->sum += src->sum;
	else
		dst->sum = UINT64_MAX;
}

uint64_t
lg_hist_quantile(const lg_hist *h, uint32_t q_ppm)
{
	if (h->count == 0)
		return 0;
	if (q_ppm >= 1000000u)
		return h->max;
	/* rank = ceil(q * count), at least 1 */
	uint64_t rank = h->count / 1000000u * q_ppm
	    + (h->count % 1000000u * q_ppm + 999999u) / 1000000u;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t b = 0; b < LG_HIST_BUCKETS; b++) {
		seen += h->buckets[b];
		if (seen < rank)
			continue;
		uint64_t lo, width;
		bucket_range(b, &lo, &width);
		uint64_t v = lo + width / 2u;
		if (v < h->min)
			v = h->min;
		if (v > h->max)
			v = h->max;
		return v;
	}
	return h->max;
}

uint64_t
lg_hist_mean(const lg_hist *h)
{
	if (h->count == 0)
		return 0;
	return h->sum / h->count;
}
