/*
 * lanes.c -- partitioned apply over several connections (see lanes.h).
 *
 * Every lane has its thread; acct_lanes_submit hands each lane its share
 * and returns, acct_lanes_wait waits for all of them and merges.
 */
#include "accountant/lanes.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "accountant/db.h"
#include "common/clock.h"
#include "common/grow.h"
#include "common/limits.h"
#include "common/pgcancel.h"
#include "common/thread.h"

#define LANE_ERR_MAX 1024
#define LANE_RETRY_MS 2000

enum lane_state { LANE_IDLE, LANE_WORK, LANE_DONE, LANE_STOP };

struct lane {
	acct_lanes *ls;
	PGconn *conn;
	acct_ledger *ledger;
	int64_t retry_at; /* no reconnect attempt before (monotonic ms) */
	acct_event *ev;   /* its share of the batch (copies) */
	uint32_t *pos;    /* ev[k] is the batch's event pos[k] */
	size_t n;
	int flags;
	pf_err err;
	char errbuf[LANE_ERR_MAX];
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum lane_state state;
	PGcancel *cancel; /* conn's, under mu: acct_lanes_cancel */
};

struct acct_lanes {
	char *url;
	int async_commit; /* SET synchronous_commit = off on each lane */
	struct lane *lanes;
	size_t n_lanes;
	int32_t *slots; /* open addressing: event id -> first index */
	size_t n_slots;
	int32_t *first; /* per event: its first copy in the batch, or -1 */
	acct_user_balance *users;
	size_t n_users, cap_users;
	acct_token_balance *tokens;
	size_t n_tokens, cap_tokens;
	/* the batch in flight (acct_lanes_submit .. acct_lanes_wait) */
	acct_event *cur;
	size_t n_cur;
	int busy;
};

/* ---- one lane ---- */

static void
lane_drop(struct lane *ln)
{
	pf_pgcancel_set(&ln->mu, &ln->cancel, NULL);
	acct_ledger_free(ln->ledger);
	ln->ledger = NULL;
	acct_db_close(ln->conn);
	ln->conn = NULL;
}

static pf_err
lane_ready(struct lane *ln)
{
	pf_err err;

	if (ln->ledger != NULL && PQstatus(ln->conn) == CONNECTION_OK)
		return PF_OK;
	if (pf_mono_ms() < ln->retry_at) {
		snprintf(
		    ln->errbuf, sizeof(ln->errbuf), "database unavailable");
		return PF_EDB;
	}
	lane_drop(ln);
	err = acct_db_connect(
	    ln->ls->url, &ln->conn, ln->errbuf, sizeof(ln->errbuf));
	if (err == PF_OK) /* before any statement (common/pgcancel.h) */
		pf_pgcancel_set(&ln->mu, &ln->cancel, ln->conn);
	if (err == PF_OK && ln->ls->async_commit)
		err = acct_db_exec(ln->conn, "SET synchronous_commit = off", 0,
		    NULL, NULL, ln->errbuf, sizeof(ln->errbuf));
	if (err == PF_OK)
		err = acct_ledger_new(
		    ln->conn, &ln->ledger, ln->errbuf, sizeof(ln->errbuf));
	if (err != PF_OK) {
		lane_drop(ln);
		ln->retry_at = pf_mono_ms() + LANE_RETRY_MS;
	}
	return err;
}

/* Applies the lane's share.  A connection found dead (the server
 * restarted, an idle connection was cut) is replaced and the share
 * applied once more right away: whatever the lost transaction did was
 * either rolled back or is found PRESENT (unique event_id). */
static void
lane_run(struct lane *ln)
{
	for (int attempt = 0;; attempt++) {
		ln->errbuf[0] = '\0';
		ln->err = lane_ready(ln);
		if (ln->err != PF_OK)
			return;
		ln->err = acct_ledger_apply(ln->ledger, ln->ev, ln->n,
		    ln->flags, ln->errbuf, sizeof(ln->errbuf));
		if (ln->err != PF_EDB || PQstatus(ln->conn) == CONNECTION_OK)
			return;
		lane_drop(ln);
		if (attempt > 0)
			return;
	}
}

static void *
lane_main(void *arg)
{
	struct lane *ln = arg;
	pf_thread_name("pf-acct-lane");

	pthread_mutex_lock(&ln->mu);
	for (;;) {
		while (ln->state == LANE_IDLE || ln->state == LANE_DONE)
			pthread_cond_wait(&ln->cv, &ln->mu);
		if (ln->state == LANE_STOP)
			break;
		pthread_mutex_unlock(&ln->mu);
		lane_run(ln);
		pthread_mutex_lock(&ln->mu);
		ln->state = LANE_DONE;
		pthread_cond_broadcast(&ln->cv);
	}
	pthread_mutex_unlock(&ln->mu);
	return NULL;
}

/* ---- lanes ---- */

pf_err
acct_lanes_new(const char *url, size_t n_lanes, int async_commit,
    acct_lanes **ret, char *errbuf, size_t errlen)
{
	acct_lanes *ls;
	pf_err err = PF_OK;

	if (n_lanes < 1 || n_lanes > ACCT_LANES_MAX)
		return PF_EINVAL;
	ls = calloc(1, sizeof(*ls));
	if (ls == NULL)
		return PF_ENOMEM;
	ls->url = strdup(url);
	ls->lanes = calloc(n_lanes, sizeof(*ls->lanes));
	ls->first = malloc(PF_ACCT_BATCH_MAX * sizeof(*ls->first));
	if (ls->url == NULL || ls->lanes == NULL || ls->first == NULL) {
		free(ls->url);
		free(ls->lanes);
		free(ls->first);
		free(ls);
		return PF_ENOMEM;
	}
	ls->n_lanes = n_lanes;
	ls->async_commit = async_commit;
	for (size_t i = 0; i < n_lanes; i++) {
		struct lane *ln = &ls->lanes[i];

		ln->ls = ls;
		pthread_mutex_init(&ln->mu, NULL);
		pthread_cond_init(&ln->cv, NULL);
		ln->state = LANE_IDLE;
	}
	for (size_t i = 0; i < n_lanes && err == PF_OK; i++) {
		struct lane *ln = &ls->lanes[i];

		ln->ev = calloc(PF_ACCT_BATCH_MAX, sizeof(*ln->ev));
		ln->pos = calloc(PF_ACCT_BATCH_MAX, sizeof(*ln->pos));
		if (ln->ev == NULL || ln->pos == NULL) {
			err = PF_ENOMEM;
			break;
		}
		err = lane_ready(ln);
		if (err != PF_OK) {
			snprintf(errbuf, errlen, "%s", ln->errbuf);
			break;
		}
		if (pthread_create(&ln->thread, NULL, lane_main, ln) != 0) {
			snprintf(errbuf, errlen, "cannot start a lane");
			err = PF_ENOMEM;
			break;
		}
		ln->started = 1;
	}
	if (err != PF_OK) {
		acct_lanes_free(ls);
		return err;
	}
	*ret = ls;
	return PF_OK;
}

void
acct_lanes_free(acct_lanes *ls)
{
	if (ls == NULL)
		return;
	if (ls->busy) {
		char errbuf[8];
		pf_err err = acct_lanes_wait(ls, errbuf, sizeof(errbuf));

		(void)err; /* nobody is left to tell */
	}
	for (size_t i = 0; i < ls->n_lanes; i++) {
		struct lane *ln = &ls->lanes[i];

		if (ln->started) {
			pthread_mutex_lock(&ln->mu);
			ln->state = LANE_STOP;
			pthread_cond_broadcast(&ln->cv);
			pthread_mutex_unlock(&ln->mu);
			pthread_join(ln->thread, NULL);
		}
		lane_drop(ln);
		pthread_cond_destroy(&ln->cv);
		pthread_mutex_destroy(&ln->mu);
		free(ln->ev);
		free(ln->pos);
	}
	free(ls->lanes);
	free(ls->first);
	free(ls->slots);
	free(ls->url);
	free(ls->users);
	free(ls->tokens);
	free(ls);
}

/* Sets ls->first[i] for the pending events of ev[0..n): the index of the
 * first pending event with the same id, -1 for a first copy. */
static pf_err
find_repeats(acct_lanes *ls, const acct_event *ev, size_t n)
{
	size_t mask;

	if (acct_id_slots_reset(&ls->slots, &ls->n_slots, n) != PF_OK)
		return PF_ENOMEM;
	mask = ls->n_slots - 1;
	for (size_t i = 0; i < n; i++) {
		ls->first[i] = -1;
		if (ev[i].outcome != ACCT_PENDING)
			continue;
		for (size_t k = acct_id_hash(ev[i].id) & mask;;
		     k = (k + 1) & mask) {
			int32_t j = ls->slots[k];

			if (j < 0) {
				ls->slots[k] = (int32_t)i;
				break;
			}
			if (strcmp(ev[j].id, ev[i].id) == 0) {
				ls->first[i] = j;
				break;
			}
		}
	}
	return PF_OK;
}

static size_t
lane_of(const acct_lanes *ls, const acct_event *ev)
{
	int64_t user = ev->msg->kind == PF_MSG_USAGE
	    ? ev->msg->u.usage.user_id
	    : ev->msg->u.payment.user_id;
	uint64_t h = (uint64_t)user * 0x9e3779b97f4a7c15ull;

	return (size_t)((h >> 32) % ls->n_lanes);
}

static pf_err
merge_balances(acct_lanes *ls, const acct_ledger *l)
{
	size_t nu, nt;
	const acct_user_balance *u = acct_ledger_users(l, &nu);
	const acct_token_balance *t = acct_ledger_tokens(l, &nt);

	acct_user_balance *pu
	    = pf_grow(ls->users, &ls->cap_users, ls->n_users + nu, sizeof(*pu));
	acct_token_balance *pt;

	if (pu == NULL)
		return PF_ENOMEM;
	ls->users = pu;
	pt = pf_grow(
	    ls->tokens, &ls->cap_tokens, ls->n_tokens + nt, sizeof(*pt));
	if (pt == NULL)
		return PF_ENOMEM;
	ls->tokens = pt;
	if (nu > 0)
		memcpy(ls->users + ls->n_users, u, nu * sizeof(*u));
	ls->n_users += nu;
	if (nt > 0)
		memcpy(ls->tokens + ls->n_tokens, t, nt * sizeof(*t));
	ls->n_tokens += nt;
	return PF_OK;
}

pf_err
acct_lanes_submit(acct_lanes *ls, acct_event *ev, size_t n, int flags)
{
	pf_err err;

	if (n > PF_ACCT_BATCH_MAX || ls->busy)
		return PF_EINVAL;
	ls->n_users = ls->n_tokens = 0;
	err = find_repeats(ls, ev, n);
	if (err != PF_OK)
		return err;
	for (size_t i = 0; i < ls->n_lanes; i++) {
		ls->lanes[i].n = 0;
		ls->lanes[i].flags = flags;
		ls->lanes[i].err = PF_OK;
	}
	for (size_t i = 0; i < n; i++) {
		struct lane *ln;

		if (ev[i].outcome != ACCT_PENDING || ls->first[i] >= 0)
			continue;
		ln = &ls->lanes[lane_of(ls, &ev[i])];
		ln->ev[ln->n] = ev[i];
		ln->pos[ln->n] = (uint32_t)i;
		ln->n++;
	}
	for (size_t i = 0; i < ls->n_lanes; i++) {
		struct lane *ln = &ls->lanes[i];

		if (ln->n == 0)
			continue;
		pthread_mutex_lock(&ln->mu);
		ln->state = LANE_WORK;
		pthread_cond_broadcast(&ln->cv);
		pthread_mutex_unlock(&ln->mu);
	}
	ls->cur = ev;
	ls->n_cur = n;
	ls->busy = 1;
	return PF_OK;
}

pf_err
acct_lanes_wait(acct_lanes *ls, char *errbuf, size_t errlen)
{
	acct_event *ev = ls->cur;
	size_t n = ls->n_cur;
	pf_err err = PF_OK;

	if (!ls->busy)
		return PF_OK;
	for (size_t i = 0; i < ls->n_lanes; i++) {
		struct lane *ln = &ls->lanes[i];

		if (ln->n == 0)
			continue;
		pthread_mutex_lock(&ln->mu);
		while (ln->state != LANE_DONE)
			pthread_cond_wait(&ln->cv, &ln->mu);
		ln->state = LANE_IDLE;
		pthread_mutex_unlock(&ln->mu);
	}
	ls->busy = 0;
	ls->cur = NULL;
	/* outcomes back to the batch; balances of the lanes that worked */
	for (size_t i = 0; i < ls->n_lanes; i++) {
		struct lane *ln = &ls->lanes[i];

		if (ln->n == 0)
			continue;
		for (size_t k = 0; k < ln->n; k++) {
			acct_event *e = &ev[ln->pos[k]];

			e->outcome = ln->ev[k].outcome;
			memcpy(e->reason, ln->ev[k].reason, sizeof(e->reason));
		}
		if (ln->err != PF_OK) {
			if (err == PF_OK) {
				err = ln->err;
				snprintf(errbuf, errlen, "%s", ln->errbuf);
			}
			continue;
		}
		if (merge_balances(ls, ln->ledger) != PF_OK && err == PF_OK) {
			err = PF_ENOMEM;
			snprintf(errbuf, errlen, "out of memory");
		}
	}
	/* Repeats take their first copy's outcome. */
	for (size_t i = 0; i < n; i++) {
		const acct_event *f;

		if (ls->first[i] < 0)
			continue;
		f = &ev[ls->first[i]];
		if (f->outcome == ACCT_PENDING)
			continue;
		if (f->outcome == ACCT_REJECTED) {
			ev[i].outcome = ACCT_REJECTED;
			memcpy(ev[i].reason, f->reason, sizeof(ev[i].reason));
		} else {
			ev[i].outcome = ACCT_PRESENT;
		}
	}
	return err;
}

void
acct_lanes_retry_now(acct_lanes *ls)
{
	for (size_t i = 0; i < ls->n_lanes; i++)
		ls->lanes[i].retry_at = 0;
}

void
acct_lanes_cancel(acct_lanes *ls)
{
	for (size_t i = 0; i < ls->n_lanes; i++) {
		struct lane *ln = &ls->lanes[i];

		pthread_mutex_lock(&ln->mu);
		if (ln->state == LANE_WORK)
			pf_pgcancel_send(ln->cancel);
		pthread_mutex_unlock(&ln->mu);
	}
}

int
acct_lanes_busy(const acct_lanes *ls)
{
	return ls->busy;
}

pf_err
acct_lanes_apply(acct_lanes *ls, acct_event *ev, size_t n, int flags,
    char *errbuf, size_t errlen)
{
	pf_err err = acct_lanes_submit(ls, ev, n, flags);

	if (err != PF_OK)
		return err;
	return acct_lanes_wait(ls, errbuf, errlen);
}

const acct_user_balance *
acct_lanes_users(const acct_lanes *ls, size_t *ret_n)
{
	*ret_n = ls->n_users;
	return ls->users;
}

const acct_token_balance *
acct_lanes_tokens(const acct_lanes *ls, size_t *ret_n)
{
	*ret_n = ls->n_tokens;
	return ls->tokens;
}
