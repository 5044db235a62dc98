/*
 * loadgen_billing.h -- `planktonfly bench --check-billing`: looks up each
 * answer the bench saw complete in the ledger (usage_events) by its
 * x-request-id (= the event id) and compares what it was charged with the
 * cost the bench expects from the usage the answer reported, the model's
 * price and the token's group ratio.
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
	int ok;        /* 1: every checked answer billed exactly as expected */
	char why[256]; /* what failed when !ok */
	int64_t checked;       /* completed answers looked up by x-request-id */
	int64_t dup_ids;       /* of them sharing an id with another */
	int64_t found;         /* of them in the ledger */
	int64_t wrong;         /* in the ledger with another cost or token */
	int64_t charged;       /* ledger cost of the found ones, quota units */
	int64_t expected;      /* the bench's cost of all checked ones */
	int64_t prompt_tokens; /* ledger tokens of the found ones */
	int64_t completion_tokens; /* ledger tokens of the found ones */
	int64_t other_rows; /* ledger rows of the token during the run that
	                       are no checked answer (cut, failed, abandoned
	                       or warm-up requests billed by the policy) */
	int64_t other_cost;
} lg_billing_result;

/*
 * lg_billing_begin connects to url, finds the token of key (by its
 * sha256), reads model's price (unless o->price_override: then o->price
 * stays) and the token's group ratio into o (sets o->have_price), and
 * remembers the ledger's last id.  On success
 * *ret owns a handle for lg_billing_end / lg_billing_free.  Errors:
 * PF_EDB (connect/query failed), PF_ENOTFOUND (no such token or no price
 * for the model; msg says which), PF_ENOMEM.  msg (msglen bytes) gets a
 * human reason on failure, never the key or the URL's password.
 */
PF_NODISCARD pf_err lg_billing_begin(const char *url, const char *key,
    const char *model, lg_opts *o, lg_billing **ret, char *msg, size_t msglen);

/*
 * lg_billing_end looks up the n completed answers v[0..n) (x-request-id
 * and expected cost) in the ledger: waits until all are there, the count
 * stops growing for 5 s, or wait_ms pass, then compares.  res->ok is 1
 * only when n > 0, every id is in the ledger once, under the token, with
 * exactly its expected cost (so the charged total equals the expected
 * one); else res->why says what failed.  Ledger rows of the token written
 * during the run for other requests are counted in other_rows /
 * other_cost, not compared.  Errors: PF_EDB, PF_ENOMEM with msg.
 */
PF_NODISCARD pf_err lg_billing_end(lg_billing *b, const lg_billed *v, size_t n,
    uint32_t wait_ms, lg_billing_result *res, char *msg, size_t msglen);

/* lg_billing_free closes the connection; NULL is a no-op. */
void lg_billing_free(lg_billing *b);

#endif /* PF_BENCH_LOADGEN_BILLING_H */
