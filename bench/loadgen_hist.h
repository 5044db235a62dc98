/*
 * loadgen_hist.h -- log-linear latency histogram (HdrHistogram-like).
 *
 * Values are nanoseconds in a uint64.  Values below 2^LG_HIST_SUB_BITS are
 * exact; above, each power of two is split into 2^LG_HIST_SUB_BITS equal
 * buckets, so any recorded value is known to within 1/128 (0.8 %).  Fixed
 * size (no allocation when recording), mergeable by addition.
 */
#ifndef PF_BENCH_LOADGEN_HIST_H
#define PF_BENCH_LOADGEN_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 7u
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_MAX_EXP 43u /* 2^43 ns = ~2.4 h; larger values clamp */
#define LG_HIST_BUCKETS                                                        \
	((LG_HIST_MAX_EXP - LG_HIST_SUB_BITS + 2u) * LG_HIST_SUB)

typedef struct lg_hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	uint64_t sum; /* saturates; used for the mean only */
	uint64_t buckets[LG_HIST_BUCKETS];
} lg_hist;

/* lg_hist_init empties h. */
void lg_hist_init(lg_hist *h);

/* lg_hist_record adds one value v (ns) to h.  Never fails. */
void lg_hist_record(lg_hist *h, uint64_t v);

/* lg_hist_merge adds every value of src to dst. */
void lg_hist_merge(lg_hist *dst, const lg_hist *src);

/*
 * lg_hist_quantile returns the value at quantile q_ppm (parts per million:
 * 500000 = p50, 999000 = p99.9): the midpoint of the bucket holding that
 * rank, clamped to [min, max].  An empty histogram gives 0.
 */
uint64_t lg_hist_quantile(const lg_hist *h, uint32_t q_ppm);

/* lg_hist_mean returns the mean value (ns), 0 when empty. */
uint64_t lg_hist_mean(const lg_hist *h);

#endif /* PF_BENCH_LOADGEN_HIST_H */
