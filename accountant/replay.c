/*
 * replay.c -- record log files through the ledger (see replay.h).
 */
#include "accountant/replay.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"

struct user_total {
	int64_t user_id; /* 0 = empty */
	uint64_t events;
	int64_t charged;
	int64_t credited;
};

struct acct_replay {
	acct_ledger *ledger;
	acct_replay_opts opts;
	acct_replay_counts counts;
	pf_msg *msgs[PF_ACCT_BATCH_MAX];
	int64_t ts[PF_ACCT_BATCH_MAX];
	acct_event ev[PF_ACCT_BATCH_MAX];
	size_t n;
	struct user_total *users;
	size_t users_size, users_used;
	const char *path; /* file being read, for messages */
	pf_err err;       /* first apply error inside the callback */
	char *errbuf;
	size_t errlen;
};

pf_err
acct_replay_new(acct_ledger *l, const acct_replay_opts *opts, acct_replay **ret)
{
	acct_replay *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return PF_ENOMEM;
	r->ledger = l;
	if (opts != NULL)
		r->opts = *opts;
	*ret = r;
	return PF_OK;
}

static void
drop_batch(acct_replay *r)
{
	for (size_t i = 0; i < r->n; i++)
		pf_msg_free(r->msgs[i]);
	r->n = 0;
}

void
acct_replay_free(acct_replay *r)
{
	if (r == NULL)
		return;
	drop_batch(r);
	free(r->users);
	free(r);
}

static struct user_total *
user_slot(acct_replay *r, int64_t user_id)
{
	size_t mask;

	if ((r->users_used + 1) * 2 > r->users_size) {
		size_t size = r->users_size ? r->users_size * 2 : 64;
		struct user_total *n = calloc(size, sizeof(*n));

		if (n == NULL)
			return NULL;
		for (size_t i = 0; i < r->users_size; i++) {
			size_t j;

			if (r->users[i].user_id == 0)
				continue;
			j = (uint64_t)r->users[i].user_id & (size - 1);
			while (n[j].user_id != 0)
				j = (j + 1) & (size - 1);
			n[j] = r->users[i];
		}
		free(r->users);
		r->users = n;
		r->users_size = size;
	}
	mask = r->users_size - 1;
	for (size_t j = (uint64_t)user_id & mask;; j = (j + 1) & mask) {
		if (r->users[j].user_id == user_id)
			return &r->users[j];
		if (r->users[j].user_id == 0) {
			r->users[j].user_id = user_id;
			r->users_used++;
			return &r->users[j];
		}
	}
}

static void
count_event(acct_replay *r, const acct_event *ev)
{
	struct user_total *t;

	switch (ev->outcome) {
	case ACCT_APPLIED:
		r->counts.applied++;
		if (ev->msg->kind == PF_MSG_USAGE) {
			t = user_slot(r, ev->msg->u.usage.user_id);
			if (t != NULL) {
				t->events++;
				t->charged += ev->msg->u.usage.cost;
			}
		} else {
			t = user_slot(r, ev->msg->u.payment.user_id);
			if (t != NULL) {
				t->events++;
				t->credited += ev->msg->u.payment.quota;
			}
		}
		break;
	case ACCT_PRESENT:
		r->counts.present++;
		break;
	default:
		r->counts.rejected++;
		if (r->opts.rejects != NULL)
			fprintf(r->opts.rejects, "rejected %s: %s\n", ev->id,
			    ev->reason);
		break;
	}
}

pf_err
acct_replay_flush(acct_replay *r, char *errbuf, size_t errlen)
{
	pf_err err;

	if (r->n == 0)
		return PF_OK;
	for (size_t i = 0; i < r->n; i++)
		acct_event_init(&r->ev[i], r->msgs[i], r->ts[i]);
	err = acct_ledger_apply(r->ledger, r->ev, r->n,
	    r->opts.dry_run ? ACCT_APPLY_DRY_RUN : 0, errbuf, errlen);
	if (err != PF_OK)
		return err;
	for (size_t i = 0; i < r->n; i++)
		count_event(r, &r->ev[i]);
	drop_batch(r);
	return PF_OK;
}

static pf_err
record_cb(void *arg, const pf_reclog_pos *pos, int64_t ts_ms,
    const uint8_t *rec, size_t len)
{
	acct_replay *r = arg;
	pf_msg *msg = NULL;
	pf_err err;

	r->counts.read++;
	if ((r->opts.since_ms > 0 && ts_ms < r->opts.since_ms)
	    || (r->opts.until_ms > 0 && ts_ms >= r->opts.until_ms)) {
		r->counts.skipped++;
		return PF_OK;
	}
	err = pf_msg_decode(rec, len, &msg);
	if (err != PF_OK
	    || (msg->kind != PF_MSG_USAGE && msg->kind != PF_MSG_PAYMENT)) {
		r->counts.rejected++;
		if (r->opts.rejects != NULL)
			fprintf(r->opts.rejects,
			    "rejected record at %s offset %" PRIu64 ": %s\n",
			    r->path, pos->off,
			    err != PF_OK ? pf_strerror(err)
			                 : "not a usage or payment message");
		pf_msg_free(msg);
		return PF_OK;
	}
	r->msgs[r->n] = msg;
	r->ts[r->n] = ts_ms;
	r->n++;
	if (r->n == PF_ACCT_BATCH_MAX) {
		err = acct_replay_flush(r, r->errbuf, r->errlen);
		if (err != PF_OK)
			return err;
	}
	return PF_OK;
}

pf_err
acct_replay_file(acct_replay *r, const char *path, uint64_t seq, uint64_t from,
    pf_reclog_scan *ret_scan, char *errbuf, size_t errlen)
{
	pf_reclog_scan scan;
	pf_err err;

	r->path = path;
	r->errbuf = errbuf;
	r->errlen = errlen;
	err = pf_reclog_read_file(path, seq, from, record_cb, r, &scan);
	if (err == PF_EPROTO) {
		snprintf(errbuf, errlen,
		    "%s: corrupt record at offset %" PRIu64
		    " followed by valid records (not a torn tail); %" PRIu64
		    " records before it were read",
		    path, scan.bad_offset, scan.records);
	} else if (err == PF_EIO || err == PF_ENOTFOUND || err == PF_ETOOBIG
	    || err == PF_EINVAL) {
		snprintf(errbuf, errlen, "%s: %s", path, pf_strerror(err));
	}
	if ((err == PF_OK || err == PF_EPROTO) && ret_scan != NULL)
		*ret_scan = scan;
	return err;
}

void
acct_replay_get_counts(const acct_replay *r, acct_replay_counts *ret)
{
	*ret = r->counts;
}

static int
cmp_total(const void *a, const void *b)
{
	const struct user_total *x = a, *y = b;

	return x->user_id < y->user_id ? -1 : x->user_id > y->user_id;
}

void
acct_replay_print_users(const acct_replay *r, FILE *out)
{
	struct user_total *v;
	size_t n = 0;

	if (r->users_used == 0)
		return;
	v = malloc(r->users_used * sizeof(*v));
	if (v == NULL)
		return;
	for (size_t i = 0; i < r->users_size; i++) {
		if (r->users[i].user_id != 0)
			v[n++] = r->users[i];
	}
	qsort(v, n, sizeof(*v), cmp_total);
	for (size_t i = 0; i < n; i++)
		fprintf(out,
		    "user %" PRId64 ": events %" PRIu64 ", charged %" PRId64
		    ", credited %" PRId64 "\n",
		    v[i].user_id, v[i].events, v[i].charged, v[i].credited);
	free(v);
}
