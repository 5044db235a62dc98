/*
 * loadgen_billing.h -- `planktonfly bench --check-billing`: compares what
 * the ledger (usage_events) charged the bench's token during a run with
 * the cost the bench expects from the usage it saw and the model's price.
 *
 * Only this module includes libpq.  Nothing here logs; results and
 * reasons are returned for the command to print.
 */
#ifndef PF_BENCH_LOADGEN_BILLING_H
#define PF_BENCH_LOADGEN_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include "bench/loadgen_run.h"
#include "common/err.h"

typedef struct lg_billing lg_billing;

typedef struct lg_billing_result {
	int skipped;     /* 1: nothing to compare (see why) */
	char why[256];   /* reason for skipped, or "" */
	int64_t events;  /* ledger rows written for the token in the run */
	int64_t charged; /* sum(cost) of those rows, quota units */
	int64_t prompt_tokens;
	int64_t completion_tokens;
} lg_billing_result;

/*
 * lg_billing_begin connects to url, finds the token of key (by its
 * sha256), reads model's price and the token's group ratio into o (sets
 * o->have_price), and remembers the ledger's last id.  On success
 * *ret owns a handle for lg_billing_end / lg_billing_free.  Errors:
 * PF_EDB (connect/query failed), PF_ENOTFOUND (no such token or no price
 * for the model; msg says which), PF_ENOMEM.  msg (msglen bytes) gets a
 * human reason on failure, never the key or the URL's password.
 */
PF_NODISCARD pf_err lg_billing_begin(const char *url, const char *key,
    const char *model, lg_opts *o, lg_billing **ret, char *msg, size_t msglen);

/*
 * lg_billing_end waits (up to wait_ms) until the ledger holds `expected`
 * new rows for the token or stops growing for 2 s, then sums them into
 * *res.  res->skipped is set when the ledger stayed empty (billing not
 * running).  Errors: PF_EDB with msg.
 */
PF_NODISCARD pf_err lg_billing_end(lg_billing *b, int64_t expected,
    uint32_t wait_ms, lg_billing_result *res, char *msg, size_t msglen);

/* lg_billing_free closes the connection; NULL is a no-op. */
void lg_billing_free(lg_billing *b);

#endif /* PF_BENCH_LOADGEN_BILLING_H */
