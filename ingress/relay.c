/*
 * relay.c -- NNG push/pull to the workers and the in-flight table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/util/platform.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/lane.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/nngdial.h"
#include "common/nngsend.h"
#include "common/thread.h"
#include "ingress/relay.h"

#define TABLE_BUCKETS 4096u /* power of two */
#define SEND_WAIT_MS 200    /* before "no worker available" */
#define SEND_RETRY_MS 5     /* every worker busy: wait on one this long */
#define SWEEP_EVERY_MS 500
#define ORPHANS_MAX 64 /* cancels for orphaned heads waiting for the sweeper */
#define HUNG_MAX 256   /* hang-ups taken per sweep */
#define AIOS_MAX 64    /* idle send aios kept for push_any */
/* first allocation of a flight's buffer: a stream's queue holds an event
 * or a few (a few hundred bytes each) and is freed once drained; a body
 * grows from a page by doubling, or from 1 KiB when its first piece fits
 * there (most answers are smaller: glibc then serves it from the
 * thread's cache, where a page goes to the arena and, as a large chunk,
 * consolidates its fast bins first) */
#define STREAM_QUEUE_FIRST 512u
#define BODY_BUFFER_SMALL 1024u
#define BODY_BUFFER_FIRST 4096u

/* A push socket dialing one worker's control address. */
struct ing_ctl {
	nng_socket sock;
	char addr[PF_URL_MAX + 1];
};

struct ing_relay {
	const pf_config *cfg;
	pf_lane *lane; /* serve: the worker in this process, no push/pull */
	int lane_set;  /* the reply receiver is registered on lane */
	/* one push socket per worker URL, so a request is known to be on
	 * that worker from its send on (push0 does not say which pipe took
	 * a message); round-robin over them by hand */
	nng_socket push[PF_RELAY_WORKERS_MAX];
	size_t n_push; /* opened */
	unsigned rr;   /* next push socket to try (atomic) */
	nng_socket pull;
	int pull_open;
	nng_aio
	    *recv_aio; /* the pull socket's one receive, re-armed by recv_cb */
	pthread_t thread; /* the sweeper */
	int thread_started;
	pthread_mutex_t mu; /* guards table, closed, stop, orphans */
	pthread_cond_t cv;  /* wakes the sweeper */
	int stop;
	struct orphan {
		uint8_t id[PF_ID_LEN];
		struct ing_ctl *ctl;
	} orphans[ORPHANS_MAX];
	size_t n_orphans;
	ing_flight *table[TABLE_BUCKETS];
	size_t count;
	int closed;
	pthread_mutex_t ctl_mu; /* guards ctls */
	struct ing_ctl *ctls[PF_CTL_SOCKETS_MAX];
	size_t n_ctls;
	void (*end_hook)(void *arg, const pf_relay_end *e);
	void (*end_flush)(void *arg);
	void *end_arg;
	int push_pipes, pull_pipes; /* live pipes (guarded by mu) */
	int epfd; /* parked client sockets, for hang-ups (sweeper only) */
	/* idle aios for push_any's sends: nng_sendmsg allocates one per
	 * call, and NNG 1.5's aio init reads getrandom(2) (measured: 1.6
	 * syscalls per request in split) */
	pthread_mutex_t aio_mu;
	nng_aio *aios[AIOS_MAX];
	size_t n_aios;
	int64_t quiet_logged_ms; /* last PF-RELAY-QUIET (sweeper only) */
};

static unsigned
bucket_of(const uint8_t id[PF_ID_LEN])
{
	return pf_id_hash(id) & (TABLE_BUCKETS - 1);
}

ing_flight *
ing_flight_new(const uint8_t id[PF_ID_LEN], int stream, int64_t deadline_ms,
    void *conn, void (*resume)(void *conn))
{
	ing_flight *f = pf_zalloc(sizeof(*f));

	if (f == NULL)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	memcpy(f->id, id, PF_ID_LEN);
	f->stream = stream;
	f->deadline_ms = deadline_ms;
	f->conn = conn;
	f->resume = resume;
	f->fd = -1;
	f->_refs = 1;
	return f;
}

ing_flight *
ing_flight_ref(ing_flight *f)
{
	__atomic_add_fetch(&f->_refs, 1, __ATOMIC_RELAXED);
	return f;
}

void
ing_flight_unref(ing_flight *f)
{
	if (f == NULL)
		return;
	if (__atomic_sub_fetch(&f->_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pthread_mutex_destroy(&f->mu);
	free(f->buf);
	free(f->error);
	pf_ctype_clear(&f->content_type);
	free(f);
}

static int
streaming(const ing_flight *f)
{
	return f->stream && f->head && f->status >= 200 && f->status < 300;
}

int
ing_flight_ready_locked(const ing_flight *f)
{
	if (f->failed || (f->ended && !f->billing) || f->client_gone)
		return 1;
	if (!f->responded)
		return streaming(f);
	return f->len > f->off;
}

/* wake resumes a parked connection that has something to do (f locked). */
static void
wake(ing_flight *f)
{
	if (f->suspended && f->conn != NULL && ing_flight_ready_locked(f)) {
		f->suspended = 0;
		f->resume(f->conn);
	}
}

void
ing_flight_billed(ing_flight *f)
{
	pthread_mutex_lock(&f->mu);
	f->billing = 0;
	wake(f);
	pthread_mutex_unlock(&f->mu);
}

/* set_error keeps why[0..n) (capped) as f's reason.  A flight whose
 * reason cannot be kept (no memory) has none: the answer says less. */
static void
set_error(ing_flight *f, const void *why, size_t n)
{
	char *e;

	if (n > ING_FLIGHT_ERROR_MAX)
		n = ING_FLIGHT_ERROR_MAX;
	e = malloc(n + 1);
	if (e != NULL) {
		if (n > 0)
			memcpy(e, why, n);
		e[n] = '\0';
	}
	free(f->error);
	f->error = e;
}

static void
fail(ing_flight *f, const char *why)
{
	if (!f->failed) {
		f->failed = 1;
		set_error(f, why, strlen(why));
	}
}

/* append adds data to f->buf, keeping at most cap unread bytes. */
static int
append(ing_flight *f, const uint8_t *p, size_t n, size_t cap)
{
	if (f->off > 0 && f->off == f->len) {
		f->off = 0;
		f->len = 0;
	}
	if (f->len - f->off + n > cap)
		return -1;
	if (f->len + n > f->cap && f->off > 0) {
		memmove(f->buf, f->buf + f->off, f->len - f->off);
		f->len -= f->off;
		f->off = 0;
	}
	if (f->len + n > f->cap) {
		size_t want = f->cap         ? f->cap
		    : streaming(f)           ? STREAM_QUEUE_FIRST
		    : n <= BODY_BUFFER_SMALL ? BODY_BUFFER_SMALL
		                             : BODY_BUFFER_FIRST;
		while (want < f->len + n)
			want *= 2;
		uint8_t *b = realloc(f->buf, want);
		if (b == NULL)
			return -1;
		f->buf = b;
		f->cap = want;
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
	return 0;
}

/* --- control messages -------------------------------------------------- */

/* ctl_get returns the control socket for addr, opening and dialing it
 * (non-blocking) on first use; NULL when addr is unusable or the cache is
 * full. */
static struct ing_ctl *
ctl_get(ing_relay *r, const pf_bytes *addr)
{
	struct ing_ctl *c = NULL;

	if (addr->len == 0 || addr->len > PF_URL_MAX
	    || memchr(addr->ptr, 0, addr->len) != NULL)
		return NULL;
	pthread_mutex_lock(&r->ctl_mu);
	for (size_t i = 0; i < r->n_ctls; i++) {
		if (strlen(r->ctls[i]->addr) == addr->len
		    && memcmp(r->ctls[i]->addr, addr->ptr, addr->len) == 0) {
			c = r->ctls[i];
			goto out;
		}
	}
	if (r->n_ctls == PF_CTL_SOCKETS_MAX)
		goto out;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto out;
	memcpy(c->addr, addr->ptr, addr->len);
	c->addr[addr->len] = '\0';
	if (nng_push0_open(&c->sock) != 0) {
		free(c);
		c = NULL;
		goto out;
	}
	/* a queue so a grant is not lost while the pipe connects, and a
	 * burst of hang-ups (thousands of streams at once) loses no cancel */
	nng_socket_set_int(c->sock, NNG_OPT_SENDBUF, PF_CTL_QUEUE);
	if (pf_nng_dial(c->sock, c->addr) != 0) {
		nng_close(c->sock);
		free(c);
		c = NULL;
		goto out;
	}
	r->ctls[r->n_ctls++] = c;
out:
	pthread_mutex_unlock(&r->ctl_mu);
	return c;
}

/* send_ctl sends m to the worker behind c (or round-robin when c is NULL)
 * without blocking; 0 when a socket took it. */
static int
send_ctl(ing_relay *r, struct ing_ctl *c, const pf_msg *m)
{
	pf_buf b;
	nng_msg *nm = NULL;
	int rv = -1;

	pf_buf_init(&b);
	if (c == NULL && r->lane != NULL) {
		/* before a head: through the request queue, as on push */
		if (pf_msg_encode(m, &b) == PF_OK
		    && pf_lane_push(r->lane, b.data, b.len) == PF_OK) {
			b.data = NULL; /* the lane took it */
			rv = 0;
		}
		pf_buf_fini(&b);
		return rv;
	}
	if (pf_msg_encode(m, &b) == PF_OK && nng_msg_alloc(&nm, 0) == 0
	    && nng_msg_append(nm, b.data, b.len) == 0) {
		if (c != NULL) {
			if (nng_sendmsg(c->sock, nm, NNG_FLAG_NONBLOCK) == 0)
				nm = NULL;
		} else {
			unsigned k0
			    = __atomic_fetch_add(&r->rr, 1, __ATOMIC_RELAXED);
			for (size_t i = 0; i < r->n_push && nm != NULL; i++) {
				nng_socket s = r->push[(k0 + i) % r->n_push];
				if (nng_sendmsg(s, nm, NNG_FLAG_NONBLOCK) == 0)
					nm = NULL;
			}
		}
		rv = nm == NULL ? 0 : -1;
	}
	if (nm != NULL)
		nng_msg_free(nm);
	pf_buf_fini(&b);
	return rv;
}

/* grant sends the credit f owes (f locked). */
static void
grant(ing_flight *f)
{
	pf_msg m = { .kind = PF_MSG_RELAY_CREDIT };

	if (!f->flow || f->credit_owed == 0 || f->ended || f->_relay == NULL)
		return;
	memcpy(m.u.relay_credit.id, f->id, PF_ID_LEN);
	m.u.relay_credit.bytes = f->credit_owed;
	if (send_ctl(f->_relay, f->_ctl, &m) == 0)
		f->credit_owed = 0;
}

void
ing_flight_took_locked(ing_flight *f, size_t n)
{
	if (f->off == f->len && streaming(f)) {
		/* drained: an open stream waits for its next event far more
		 * often than it holds one, so it holds no queue meanwhile */
		free(f->buf);
		f->buf = NULL;
		f->off = f->len = f->cap = 0;
	}
	if (!f->flow)
		return;
	f->credit_owed += (uint32_t)n;
	if (f->credit_owed >= PF_STREAM_CREDIT_STEP)
		grant(f);
}

void
ing_relay_cancel(ing_relay *r, ing_flight *f)
{
	pf_msg m = { .kind = PF_MSG_RELAY_CANCEL };
	struct ing_ctl *c;

	memcpy(m.u.relay_cancel.id, f->id, PF_ID_LEN);
	pthread_mutex_lock(&f->mu);
	c = f->_ctl;
	pthread_mutex_unlock(&f->mu);
	(void)send_ctl(r, c, &m);
}

/* cancel_orphan asks the sweeper to tell the worker thread named in h to
 * stop a transfer nobody waits for (the receive callback must not wait on
 * a send).  Best effort: dropped when too many wait. */
static void
cancel_orphan(ing_relay *r, const pf_relay_head *h)
{
	struct ing_ctl *c;

	if (h->ctl_addr.len == 0)
		return;
	c = ctl_get(r, &h->ctl_addr);
	if (c == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	if (r->n_orphans < ORPHANS_MAX) {
		memcpy(r->orphans[r->n_orphans].id, h->id, PF_ID_LEN);
		r->orphans[r->n_orphans++].ctl = c;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

/* send_orphan_cancels sends the cancels cancel_orphan queued. */
static void
send_orphan_cancels(ing_relay *r)
{
	struct orphan v[ORPHANS_MAX];
	size_t n;

	pthread_mutex_lock(&r->mu);
	n = r->n_orphans;
	memcpy(v, r->orphans, n * sizeof(v[0]));
	r->n_orphans = 0;
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < n; i++) {
		pf_msg m = { .kind = PF_MSG_RELAY_CANCEL };

		memcpy(m.u.relay_cancel.id, v[i].id, PF_ID_LEN);
		(void)send_ctl(r, v[i].ctl, &m);
	}
}

/* --- the table ---------------------------------------------------------
 */

static ing_flight *
table_get(ing_relay *r, const uint8_t id[PF_ID_LEN])
{
	ing_flight *f;

	pthread_mutex_lock(&r->mu);
	for (f = r->table[bucket_of(id)]; f != NULL; f = f->_next) {
		if (memcmp(f->id, id, PF_ID_LEN) == 0) {
			ing_flight_ref(f);
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return f;
}

static pf_err
table_put(ing_relay *r, ing_flight *f)
{
	unsigned b = bucket_of(f->id);

	pthread_mutex_lock(&r->mu);
	if (r->closed) {
		pthread_mutex_unlock(&r->mu);
		return PF_ECLOSED;
	}
	f->_next = r->table[b];
	r->table[b] = ing_flight_ref(f);
	f->_in_table = 1;
	r->count++;
	pthread_mutex_unlock(&r->mu);
	return PF_OK;
}

void
ing_relay_forget(ing_relay *r, ing_flight *f)
{
	unsigned b = bucket_of(f->id);
	int found = 0;

	pthread_mutex_lock(&r->mu);
	if (f->_in_table) {
		for (ing_flight **pp = &r->table[b]; *pp != NULL;
		     pp = &(*pp)->_next) {
			if (*pp == f) {
				*pp = f->_next;
				break;
			}
		}
		f->_in_table = 0;
		f->_next = NULL;
		r->count--;
		found = 1;
	}
	pthread_mutex_unlock(&r->mu);
	if (found)
		ing_flight_unref(f);
}

void
ing_relay_set_end_hook(ing_relay *r,
    void (*fn)(void *arg, const pf_relay_end *e), void (*flush)(void *arg),
    void *arg)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->end_hook = fn;
	r->end_flush = fn != NULL ? flush : NULL;
	r->end_arg = arg;
	pthread_mutex_unlock(&r->mu);
}

/* end_flush tells the end hook that a batch of replies was filed.  The
 * call runs outside the table lock (billing writes its spool there); what
 * it feeds outlives the relay's reply paths, which ing_relay_free stops. */
static void
end_flush(ing_relay *r)
{
	void (*fn)(void *arg);
	void *arg;

	pthread_mutex_lock(&r->mu);
	fn = r->end_hook != NULL ? r->end_flush : NULL;
	arg = r->end_arg;
	pthread_mutex_unlock(&r->mu);
	if (fn != NULL)
		fn(arg);
}

size_t
ing_relay_inflight(ing_relay *r)
{
	size_t n;

	pthread_mutex_lock(&r->mu);
	n = r->count;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* end_flight ends f unless it already ended (f unlocked). */
static void
end_flight(ing_relay *r, ing_flight *f, int reason, const char *why)
{
	pthread_mutex_lock(&f->mu);
	if (!f->ended) {
		f->ended = 1;
		f->reason = reason;
		set_error(f, why, strlen(why));
	}
	wake(f);
	pthread_mutex_unlock(&f->mu);
	ing_relay_forget(r, f);
}

/* Which flights collect takes. */
enum pick { PICK_ALL, PICK_PIPE, PICK_HEADLESS, PICK_PUSH };

/* collect takes a reference to every filed flight that pick (with pipe
 * for PICK_PIPE; the push socket index + 1 for PICK_PUSH: its flights
 * with no head) selects. */
static size_t
collect(ing_relay *r, enum pick pick, uint32_t pipe, ing_flight ***ret)
{
	size_t n = 0, cap = 0;
	ing_flight **v = NULL;

	pthread_mutex_lock(&r->mu);
	for (unsigned b = 0; b < TABLE_BUCKETS; b++) {
		for (ing_flight *f = r->table[b]; f != NULL; f = f->_next) {
			/* _pipe is written under the table lock too */
			if (pick == PICK_PIPE && f->_pipe != pipe)
				continue;
			if (pick == PICK_HEADLESS && f->_pipe != 0)
				continue;
			if (pick == PICK_PUSH
			    && (f->_pipe != 0 || f->_push != pipe))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				ing_flight **nv = realloc(v, nc * sizeof(*nv));
				if (nv == NULL)
					goto out;
				v = nv;
				cap = nc;
			}
			v[n++] = ing_flight_ref(f);
		}
	}
out:
	pthread_mutex_unlock(&r->mu);
	*ret = v;
	return n;
}

/* watch adds a parked connection's socket to the hang-up epoll set (f
 * locked, f->suspended: the fd is open and is this connection's).  A
 * keep-alive connection's next flight finds it there already; a closed
 * socket leaves the set by itself. */
static void
watch(ing_relay *r, ing_flight *f)
{
	struct epoll_event ev = { .events = EPOLLRDHUP };

	if (f->_watched || r->epfd < 0)
		return;
	ev.data.fd = f->fd;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, f->fd, &ev) == 0
	    || errno == EEXIST)
		f->_watched = 1;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* hung_up_fds reads which watched sockets' peers hung up: sorted into
 * fds, returns how many (at most HUNG_MAX a sweep; the rest stay set for
 * the next). */
static size_t
hung_up_fds(ing_relay *r, int *fds)
{
	struct epoll_event ev[HUNG_MAX];
	size_t k = 0;
	int n;

	if (r->epfd < 0)
		return 0;
	n = epoll_wait(r->epfd, ev, HUNG_MAX, 0);
	for (int i = 0; i < n; i++)
		if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			fds[k++] = ev[i].data.fd;
	qsort(fds, k, sizeof(fds[0]), cmp_int);
	return k;
}

/* report_lost gives the end hook a relay.end for a flight the sweeper
 * gives up on (reason worker_lost, seq = relay.data received, usage:
 * the completion estimate a stream delivered, prompt 0), so whoever
 * holds something for it (billing) hears of it. */
static void
report_lost(ing_relay *r, ing_flight *f)
{
	pf_relay_end e = { .reason = PF_END_WORKER_LOST };
	int ended;

	pthread_mutex_lock(&f->mu);
	memcpy(e.id, f->id, PF_ID_LEN);
	e.seq = f->next_seq;
	if (streaming(f) && f->completion > 0) {
		e.usage.completion = f->completion;
		e.usage.estimated = 1;
	}
	ended = f->ended;
	pthread_mutex_unlock(&f->mu);
	e.error = (pf_bytes) { (const uint8_t *)"", 0 };
	pthread_mutex_lock(&r->mu);
	if (!ended && r->end_hook != NULL)
		r->end_hook(r->end_arg, &e);
	pthread_mutex_unlock(&r->mu);
	if (!ended)
		end_flush(r);
}

/* log_quiet says, at most every PF_RELAY_QUIET_MS, that n requests have
 * heard nothing from their worker for PF_RELAY_QUIET_MS or more (the
 * oldest for age_ms), with the relay's live pipes when the workers are
 * other processes: a slow upstream, or replies that do not come back (a
 * worker stuck, or a lost connection not redialed). */
static void
log_quiet(ing_relay *r, size_t n, int64_t age_ms, int64_t now)
{
	char pipes[64] = ""; /* serve: the worker is in this process */

	if (now - r->quiet_logged_ms < PF_RELAY_QUIET_MS)
		return;
	r->quiet_logged_ms = now;
	if (r->lane == NULL) {
		pthread_mutex_lock(&r->mu);
		snprintf(pipes, sizeof(pipes), "push_pipes=%d reply_pipes=%d ",
		    r->push_pipes, r->pull_pipes);
		pthread_mutex_unlock(&r->mu);
	}
	pf_info("PF-RELAY-QUIET",
	    "requests=%zu oldest_s=%lld %s"
	    "msg=\"sent, and no answer head from the worker yet\"",
	    n, (long long)(age_ms / 1000), pipes);
}

/* sweep ends flights past their deadline + grace, watches parked
 * connections for a hang-up (one epoll set: MHD does not notice one on a
 * suspended connection) and wakes those whose client left, and retries
 * credit grants that could not be sent. */
static void
sweep(ing_relay *r)
{
	ing_flight **v;
	int64_t now = pf_clock_ms();
	size_t n = collect(r, PICK_ALL, 0, &v);
	int hung[HUNG_MAX];
	size_t n_hung = hung_up_fds(r, hung);
	size_t n_quiet = 0;
	int64_t oldest = now;

	for (size_t i = 0; i < n; i++) {
		ing_flight *f = v[i];
		if (f->deadline_ms + PF_RELAY_GRACE_MS < now) {
			report_lost(r, f);
			end_flight(r, f, PF_END_WORKER_LOST,
			    "no answer from the worker before the deadline");
		} else {
			pthread_mutex_lock(&f->mu);
			if (f->suspended && f->conn != NULL && f->fd >= 0
			    && !f->client_gone) {
				watch(r, f);
				if (n_hung > 0
				    && bsearch(&f->fd, hung, n_hung,
				           sizeof(hung[0]), cmp_int)
				        != NULL) {
					f->client_gone = 1;
					wake(f);
				}
			}
			grant(f); /* one that could not be sent before */
			if (f->_seen_ms == 0)
				f->_seen_ms = now;
			if (!f->head && !f->ended
			    && now - f->_seen_ms >= PF_RELAY_QUIET_MS) {
				n_quiet++;
				if (f->_seen_ms < oldest)
					oldest = f->_seen_ms;
			}
			pthread_mutex_unlock(&f->mu);
		}
		ing_flight_unref(f);
	}
	free(v);
	if (n_quiet > 0)
		log_quiet(r, n_quiet, now - oldest, now);
}

void
ing_relay_close_all(ing_relay *r)
{
	ing_flight **v;
	size_t n;

	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	pthread_mutex_unlock(&r->mu);
	n = collect(r, PICK_ALL, 0, &v);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&v[i]->mu);
		v[i]->billing = 0; /* every parked connection must wake */
		pthread_mutex_unlock(&v[i]->mu);
		end_flight(r, v[i], PF_END_WORKER_LOST, "server shutting down");
		ing_flight_unref(v[i]);
	}
	free(v);
}

/* end_picked ends every filed flight pick selects as worker_lost. */
static void
end_picked(ing_relay *r, enum pick pick, uint32_t pipe, const char *why)
{
	ing_flight **v;
	size_t n = collect(r, pick, pipe, &v);

	for (size_t i = 0; i < n; i++) {
		report_lost(r, v[i]); /* billing hears of it, as from sweep */
		end_flight(r, v[i], PF_END_WORKER_LOST, why);
		ing_flight_unref(v[i]);
	}
	free(v);
}

/* pipe_cb runs on an NNG thread when a pipe of the push or the pull
 * socket comes or goes: count them, and end the flights a lost pipe
 * strands (see relay.h). */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	ing_relay *r = arg;
	int sid = nng_socket_id(nng_pipe_socket(p));
	uint32_t push = 0; /* index + 1 of the push socket */
	int none;

	for (size_t i = 0; i < r->n_push && push == 0; i++) {
		if (nng_socket_id(r->push[i]) == sid)
			push = (uint32_t)i + 1;
	}
	pthread_mutex_lock(&r->mu);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		if (push)
			r->push_pipes++;
		else
			r->pull_pipes++;
		pthread_mutex_unlock(&r->mu);
		return;
	}
	if (push)
		r->push_pipes--;
	else
		r->pull_pipes--;
	none = r->push_pipes <= 0 && r->pull_pipes <= 0 && !r->closed;
	pthread_mutex_unlock(&r->mu);
	if (!push)
		end_picked(r, PICK_PIPE, nng_pipe_id(p),
		    "connection to the worker lost");
	else /* the requests it took and has not answered yet */
		end_picked(r, PICK_PUSH, push, "connection to the worker lost");
	if (none)
		end_picked(r, PICK_HEADLESS, 0, "no worker connected");
}

/* --- replies -----------------------------------------------------------
 */

static void
on_head(ing_relay *r, ing_flight *f, const pf_relay_head *h)
{
	if (f->head || f->ended) {
		fail(f, "worker sent a second head");
		return;
	}
	f->head = 1;
	if (h->ctl_addr.len > 0) {
		f->_ctl = ctl_get(r, &h->ctl_addr);
		/* the worker counts credit only when it named an address;
		 * without a socket to it grants go round-robin */
		f->flow = f->_credit;
	}
	f->status = h->status;
	size_t n = h->content_type.len;
	if (n > PF_CTYPE_MAX)
		n = PF_CTYPE_MAX;
	/* out of memory for an uncommon type: the answer goes out as
	 * application/json */
	(void)!pf_ctype_set(
	    &f->content_type, (const char *)h->content_type.ptr, n);
}

static void
on_data(ing_flight *f, const pf_relay_data *d)
{
	if (f->failed || f->ended)
		return;
	if (d->seq != f->next_seq) {
		fail(f, "worker reply out of order");
		return;
	}
	f->next_seq++;
	if (streaming(f)) {
		if (append(f, d->data.ptr, d->data.len,
		        f->flow ? PF_STREAM_BUFFER_FLOW_MAX
		                : PF_STREAM_BUFFER_MAX)
		    != 0)
			fail(f, "client too slow: stream buffer full");
		else if (d->completion > f->completion)
			f->completion = d->completion;
	} else if (append(f, d->data.ptr, d->data.len, PF_RESPONSE_MAX) != 0) {
		fail(f, "upstream response too large");
	}
}

static void
on_end(ing_flight *f, const pf_relay_end *e)
{
	if (f->ended)
		return;
	f->ended = 1;
	f->reason = e->reason;
	f->upstream_status = e->upstream_status;
	if (e->seq != f->next_seq && !f->failed)
		fail(f, "worker reply lost");
	if (!f->failed && e->error.len > 0)
		set_error(f, e->error.ptr, e->error.len);
}

static void
dispatch(ing_relay *r, const pf_msg *m, uint32_t pipe)
{
	const uint8_t *id;
	ing_flight *f;

	switch (m->kind) {
	case PF_MSG_RELAY_HEAD:
		id = m->u.relay_head.id;
		break;
	case PF_MSG_RELAY_DATA:
		id = m->u.relay_data.id;
		break;
	case PF_MSG_RELAY_END:
		id = m->u.relay_end.id;
		/* under the lock: set_end_hook(NULL) waits for a call */
		pthread_mutex_lock(&r->mu);
		if (r->end_hook != NULL)
			r->end_hook(r->end_arg, &m->u.relay_end);
		pthread_mutex_unlock(&r->mu);
		break;
	default:
		pf_warn("PF-RELAY-KIND", "kind=%s", pf_msg_kind_name(m->kind));
		return;
	}
	f = table_get(r, id);
	if (f == NULL) {
		/* the client is gone or the flight timed out; a head names
		 * the thread running the transfer: stop it there (a cancel
		 * sent before the head went round-robin and may have reached
		 * another worker) */
		if (m->kind == PF_MSG_RELAY_HEAD)
			cancel_orphan(r, &m->u.relay_head);
		return;
	}
	if (m->kind == PF_MSG_RELAY_HEAD && pipe != 0) {
		pthread_mutex_lock(&r->mu);
		f->_pipe = pipe;
		pthread_mutex_unlock(&r->mu);
	}
	pthread_mutex_lock(&f->mu);
	if (m->kind == PF_MSG_RELAY_HEAD)
		on_head(r, f, &m->u.relay_head);
	else if (m->kind == PF_MSG_RELAY_DATA)
		on_data(f, &m->u.relay_data);
	else
		on_end(f, &m->u.relay_end);
	int done = f->ended || f->failed;
	wake(f);
	pthread_mutex_unlock(&f->mu);
	if (done)
		ing_relay_forget(r, f);
	ing_flight_unref(f);
}

/* deliver decodes the replies packed in one transport message (one, or
 * several back to back) and files each. */
static void
deliver(ing_relay *r, const uint8_t *p, size_t len, uint32_t pipe)
{
	while (len > 0) {
		pf_msg *m = NULL;
		size_t n;
		pf_err err = pf_msg_split(p, len, &n);

		if (err == PF_OK)
			err = pf_msg_decode(p, n, &m);
		if (err != PF_OK) {
			pf_warn(
			    "PF-RELAY-DECODE", "err=\"%s\"", pf_strerror(err));
			return;
		}
		dispatch(r, m, pipe);
		pf_msg_free(m);
		p += n;
		len -= n;
	}
}

/* recv_cb runs on an NNG thread when the pull socket delivered (or
 * failed); it files the replies and asks for the next message, so one
 * receive is outstanding at a time and replies are filed in order. */
static void
recv_cb(void *arg)
{
	ing_relay *r = arg;
	int rv = nng_aio_result(r->recv_aio);

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		nng_msg *nm = nng_aio_get_msg(r->recv_aio);

		nng_aio_set_msg(r->recv_aio, NULL);
		deliver(r, nng_msg_body(nm), nng_msg_len(nm),
		    nng_pipe_id(nng_msg_get_pipe(nm)));
		nng_msg_free(nm);
		end_flush(r);
	} else {
		pf_warn("PF-RELAY-RECV", "err=\"%s\"", nng_strerror(rv));
	}
	nng_recv_aio(r->pull, r->recv_aio);
}

/* lane_reply_cb files a reply the worker in this process hands over (on
 * its thread; several worker threads may call at once). */
static void
lane_reply_cb(void *arg, const pf_msg *m)
{
	dispatch(arg, m, 0);
}

/* lane_flush_cb: the worker in this process handed over its turn's
 * replies. */
static void
lane_flush_cb(void *arg)
{
	end_flush(arg);
}

static void *
sweeper_main(void *arg)
{
	ing_relay *r = arg;
	int64_t last_sweep = pf_clock_ms();
	pf_thread_name("pf-relay-sweep");

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct timespec ts;
		int64_t due = last_sweep + SWEEP_EVERY_MS;

		if (r->n_orphans == 0) {
			ts.tv_sec = (time_t)(due / 1000);
			ts.tv_nsec = (long)(due % 1000) * 1000000L;
			pthread_cond_timedwait(&r->cv, &r->mu, &ts);
			if (r->stop)
				break;
		}
		pthread_mutex_unlock(&r->mu);
		send_orphan_cancels(r);
		int64_t now = pf_clock_ms();
		if (now - last_sweep >= SWEEP_EVERY_MS) {
			sweep(r);
			last_sweep = now;
		}
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* --- sending ----------------------------------------------------------- */

/* aio_take returns an idle send aio (from the pool or new), NULL when
 * none can be had (then push_any uses nng_sendmsg). */
static nng_aio *
aio_take(ing_relay *r)
{
	nng_aio *aio = NULL;

	pthread_mutex_lock(&r->aio_mu);
	if (r->n_aios > 0)
		aio = r->aios[--r->n_aios];
	pthread_mutex_unlock(&r->aio_mu);
	if (aio == NULL && nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NULL;
	return aio;
}

/* aio_put keeps an idle send aio for the next send, or frees it. */
static void
aio_put(ing_relay *r, nng_aio *aio)
{
	if (aio == NULL)
		return;
	pthread_mutex_lock(&r->aio_mu);
	if (r->n_aios < AIOS_MAX) {
		r->aios[r->n_aios++] = aio;
		aio = NULL;
	}
	pthread_mutex_unlock(&r->aio_mu);
	nng_aio_free(aio); /* NULL: kept */
}

/* push_any gives nm to the first worker that can take it now, round-robin,
 * then ties f to that worker's push socket (under the table lock, which
 * collect reads it under; tied only once sent, so a lost pipe never ends
 * a request another worker runs).  When none can take it at once, it
 * waits in a blocking send on one of them (NNG_OPT_SENDTIMEO, set in
 * dial_all), which returns the moment that worker's pipe is ready,
 * and tries them all again, for at most SEND_WAIT_MS.  (push0 keeps no
 * send buffer: a non-blocking send fails whenever the pipe is still
 * writing the previous message, which under load is most of the time; a
 * sleep between tries cut split's throughput tenfold.)  Returns 0 (nm
 * taken) or an NNG error. */
static int
push_any(ing_relay *r, ing_flight *f, nng_msg *nm)
{
	int64_t until = pf_mono_ms() + SEND_WAIT_MS;
	int rv = NNG_EAGAIN;
	nng_aio *aio = aio_take(r);

	for (;;) {
		unsigned k0 = __atomic_fetch_add(&r->rr, 1, __ATOMIC_RELAXED);
		for (size_t i = 0; i <= r->n_push; i++) {
			/* the last try blocks on the first socket tried */
			int last = i == r->n_push;
			size_t k = (k0 + i) % r->n_push;
			rv = pf_nng_sendmsg(
			    aio, r->push[k], nm, last ? 0 : NNG_FLAG_NONBLOCK);
			if (rv == 0) {
				pthread_mutex_lock(&r->mu);
				f->_push = (uint32_t)k + 1;
				pthread_mutex_unlock(&r->mu);
				aio_put(r, aio);
				return 0;
			}
			if (rv != NNG_EAGAIN && rv != NNG_ETIMEDOUT) {
				aio_put(r, aio);
				return rv;
			}
		}
		if (pf_mono_ms() >= until) {
			aio_put(r, aio);
			return rv;
		}
	}
}

pf_err
ing_relay_send(ing_relay *r, ing_flight *f, const pf_msg *req)
{
	pf_buf b;
	nng_msg *nm = NULL;
	pf_err err;
	int rv;

	pf_msg packed = *req; /* shallow: only encoded or cloned */

	/* this relay reads replies packed several to a message */
	packed.u.relay_request.batch = 1;
	pf_buf_init(&b);
	if (r->lane != NULL) {
		/* the worker is in this process: a copy, not an encoding */
		pf_msg *copy = NULL;

		err = pf_msg_clone(&packed, &copy);
		if (err != PF_OK)
			goto done;
		f->_relay = r;
		f->_credit = req->u.relay_request.credit > 0;
		err = table_put(r, f);
		if (err != PF_OK) {
			pf_msg_free(copy);
			goto done;
		}
		/* like the push socket's send timeout */
		err = pf_lane_push_msg(r->lane, copy, SEND_WAIT_MS);
		if (err != PF_OK) {
			/* intake closed (draining) or queue full */
			pf_msg_free(copy);
			err = PF_EAGAIN;
			ing_relay_forget(r, f);
		}
		goto done;
	}
	err = pf_msg_encode(&packed, &b);
	if (err != PF_OK)
		goto done;
	if (nng_msg_alloc(&nm, 0) != 0 || nng_msg_append(nm, b.data, b.len)) {
		err = PF_ENOMEM;
		goto done;
	}
	pf_buf_fini(&b);
	f->_relay = r;
	f->_credit = req->u.relay_request.credit > 0;
	err = table_put(r, f);
	if (err != PF_OK)
		goto done;
	rv = push_any(r, f, nm);
	if (rv == 0) {
		nm = NULL; /* a socket took it */
	} else {
		err = rv == NNG_ETIMEDOUT || rv == NNG_EAGAIN ? PF_EAGAIN
		    : rv == NNG_ECLOSED                       ? PF_ECLOSED
		                                              : PF_ENET;
		ing_relay_forget(r, f);
	}
done:
	pf_buf_fini(&b);
	if (nm != NULL)
		nng_msg_free(nm);
	return err;
}

/* --- lifecycle ---------------------------------------------------------
 */

/* open_push opens a push socket dialing url (non-blocking) into
 * r->push[r->n_push]. */
static pf_err
open_push(ing_relay *r, const char *url)
{
	nng_socket *s = &r->push[r->n_push];

	if (nng_push0_open(s) != 0)
		return PF_ENET;
	r->n_push++; /* closed by ing_relay_free from here on */
	if (nng_pipe_notify(*s, NNG_PIPE_EV_ADD_POST, pipe_cb, r) != 0
	    || nng_pipe_notify(*s, NNG_PIPE_EV_REM_POST, pipe_cb, r) != 0)
		return PF_ENET;
	if (pf_nng_dial(*s, url) != 0)
		return PF_ENET;
	return PF_OK;
}

static pf_err
dial_all(ing_relay *r, const char *urls)
{
	char url[PF_URL_MAX];
	const char *p = urls;
	int n = 0;

	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len >= sizeof(url))
			return PF_ECONFIG;
		if (len > 0) {
			memcpy(url, p, len);
			url[len] = '\0';
			if (r->n_push == PF_RELAY_WORKERS_MAX)
				return PF_ECONFIG;
			pf_err err = open_push(r, url);
			if (err != PF_OK)
				return err;
			n++;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (n == 0)
		return PF_ECONFIG;
	/* one worker: block for the whole wait; several: briefly, then try
	 * the others again (push_any) */
	for (size_t i = 0; i < r->n_push; i++) {
		if (nng_socket_set_ms(r->push[i], NNG_OPT_SENDTIMEO,
		        r->n_push == 1 ? SEND_WAIT_MS : SEND_RETRY_MS)
		    != 0)
			return PF_ENET;
	}
	return PF_OK;
}

/* open_sockets opens the push socket to the workers and the pull socket
 * for their replies, and starts receiving. */
static pf_err
open_sockets(ing_relay *r)
{
	const pf_config *cfg = r->cfg;
	pf_err err = PF_ENET;
	int rv;

	if (nng_pull0_open(&r->pull) != 0)
		return err;
	r->pull_open = 1;
	if (nng_socket_set_size(r->pull, NNG_OPT_RECVMAXSZ, PF_MSG_MAX) != 0
	    || nng_pipe_notify(r->pull, NNG_PIPE_EV_ADD_POST, pipe_cb, r) != 0
	    || nng_pipe_notify(r->pull, NNG_PIPE_EV_REM_POST, pipe_cb, r) != 0)
		return err;
	rv = nng_listen(r->pull, cfg->reply_url, NULL, 0);
	if (rv != 0) {
		pf_error("PF-RELAY-LISTEN", "url=%s err=\"%s\" msg=\"%s\"",
		    cfg->reply_url, nng_strerror(rv),
		    rv == NNG_EADDRINUSE
		        ? "PF_REPLY_URL is in use: another ingress listens "
		          "there (each ingress needs a PF_REPLY_URL of its own)"
		        : "cannot listen on PF_REPLY_URL");
		return err;
	}
	err = dial_all(r, cfg->worker_url);
	if (err != PF_OK)
		return err;
	if (nng_aio_alloc(&r->recv_aio, recv_cb, r) != 0)
		return PF_ENOMEM;
	nng_recv_aio(r->pull, r->recv_aio);
	return PF_OK;
}

pf_err
ing_relay_start(const pf_config *cfg, ing_relay **ret)
{
	return ing_relay_start_lane(cfg, NULL, ret);
}

pf_err
ing_relay_start_lane(const pf_config *cfg, pf_lane *lane, ing_relay **ret)
{
	ing_relay *r = calloc(1, sizeof(*r));
	pf_err err;

	if (r == NULL)
		return PF_ENOMEM;
	r->cfg = cfg;
	r->lane = lane;
	/* without it hang-ups of parked clients go unnoticed until the
	 * deadline: not fatal */
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->ctl_mu, NULL);
	pthread_mutex_init(&r->aio_mu, NULL);
	{
		pthread_condattr_t ca;

		/* the sweeper's timed waits count on the wall clock (now_ms) */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_REALTIME);
		pthread_cond_init(&r->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (lane != NULL) {
		err = pf_lane_set_reply(lane, cfg->reply_url, lane_reply_cb, r);
		if (err != PF_OK)
			goto fail;
		pf_lane_set_flush(lane, lane_flush_cb);
		r->lane_set = 1;
	} else {
		err = open_sockets(r);
		if (err != PF_OK)
			goto fail;
	}
	if (pthread_create(&r->thread, NULL, sweeper_main, r) != 0) {
		err = PF_EIO;
		goto fail;
	}
	r->thread_started = 1;
	*ret = r;
	return PF_OK;
fail:
	ing_relay_free(r);
	return err;
}

void
ing_relay_free(ing_relay *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	r->stop = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	/* returns once no worker thread is filing a reply */
	if (r->lane_set)
		pf_lane_clear_reply(r->lane);
	if (r->pull_open)
		nng_close(r->pull);
	if (r->recv_aio != NULL) {
		nng_aio_stop(r->recv_aio); /* waits for a running recv_cb */
		nng_aio_free(r->recv_aio);
	}
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	for (size_t i = 0; i < r->n_push; i++)
		nng_close(r->push[i]);
	ing_relay_close_all(r);
	for (size_t i = 0; i < r->n_ctls; i++) {
		nng_close(r->ctls[i]->sock);
		free(r->ctls[i]);
	}
	if (r->epfd >= 0)
		close(r->epfd);
	while (r->n_aios > 0)
		nng_aio_free(r->aios[--r->n_aios]);
	pthread_mutex_destroy(&r->aio_mu);
	pthread_mutex_destroy(&r->ctl_mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
