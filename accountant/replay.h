/*
 * replay.h -- feeding record log files (accountant event log segments,
 * ingress spool segments: the same reclog format holding encoded usage and
 * payment messages) through the ledger's apply path, in batches.
 *
 * Used by the actor on start (its own log after the checkpoint) and by
 * `planktonfly replay`.  Idempotent: an event already in the ledger is
 * counted "present" and changes nothing.
 */
#ifndef PF_ACCOUNTANT_REPLAY_H
#define PF_ACCOUNTANT_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "accountant/ledger.h"
#include "common/err.h"
#include "common/reclog.h"

typedef struct acct_replay acct_replay;

typedef struct acct_replay_opts {
	int dry_run;      /* roll every transaction back */
	int64_t since_ms; /* skip records logged before (0 = no limit) */
	int64_t until_ms; /* skip records logged at or after (0 = none) */
	FILE *rejects;    /* one line per rejected record, or NULL */
} acct_replay_opts;

typedef struct acct_replay_counts {
	uint64_t read;     /* valid records read */
	uint64_t skipped;  /* outside --since/--until */
	uint64_t applied;  /* new in the ledger */
	uint64_t present;  /* already in the ledger */
	uint64_t rejected; /* refused, undecodable included */
} acct_replay_counts;

/* acct_replay_new: a replayer over l (borrowed).  Errors: PF_ENOMEM. */
PF_NODISCARD pf_err acct_replay_new(
    acct_ledger *l, const acct_replay_opts *opts, acct_replay **ret);

/* acct_replay_free; NULL is a no-op.  Unflushed records are dropped. */
void acct_replay_free(acct_replay *r);

/*
 * acct_replay_file reads the segment at path from byte offset from and
 * applies its records (batches of PF_ACCT_BATCH_MAX; the last partial
 * batch waits for acct_replay_flush).  *ret_scan (may be NULL) as
 * pf_reclog_read_file: a torn tail is not an error here, the caller
 * decides.  Errors: PF_EPROTO (corrupt in the middle: errbuf names path
 * and offset), PF_EIO, PF_ENOTFOUND, PF_EDB (database unusable).
 */
PF_NODISCARD pf_err acct_replay_file(acct_replay *r, const char *path,
    uint64_t seq, uint64_t from, pf_reclog_scan *ret_scan, char *errbuf,
    size_t errlen);

/* acct_replay_flush applies the records still batched.  Errors: PF_EDB. */
PF_NODISCARD pf_err acct_replay_flush(
    acct_replay *r, char *errbuf, size_t errlen);

/* acct_replay_get_counts copies the totals so far. */
void acct_replay_get_counts(const acct_replay *r, acct_replay_counts *ret);

/* acct_replay_print_users writes "user ID: events N, charged C, credited
 * P" lines (applied events only), by user id. */
void acct_replay_print_users(const acct_replay *r, FILE *out);

#endif /* PF_ACCOUNTANT_REPLAY_H */
