/*
 * worker.c -- the worker role: NNG intake, transfer threads, lifecycle.
 *
 * One pull0 socket listens on every URL of cfg->worker_url; its one
 * long-lived receive copies each request into a private intake queue (in
 * `serve`, an in-process lane takes the socket's place: common/lane.h).
 * Each transfer thread owns its own HTTP/1.1 client (h1.h: plain http://
 * upstreams at an IP address), a CURLM made at its first curl transfer
 * (everything else; its connection cache: keep-alive and HTTP/2
 * multiplexing across requests), its reply sockets and its relays, and
 * runs one loop: take requests (non-blocking), hand the clients their
 * ready sockets (wrk_cloop_run), reap, tick timeouts,
 * send the turn's packed replies, then wait on the loop's epoll set --
 * curl's sockets and the intake queue's eventfd (a request wakes the
 * loop) -- plus the send fds of reply sockets relays wait on.  Control
 * messages (relay.cancel / relay.credit) to a thread's own socket arrive
 * by an NNG callback into its inbox.  wrk_cloop_wakeup (never
 * curl_multi_wakeup: no curl_multi_poll runs) wakes the loop.
 */
#include <curl/curl.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/lane.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/thread.h"
#include "workers/cloop.h"
#include "workers/curlfn.h"
#include "workers/h1.h"
#include "workers/reply.h"
#include "workers/worker.h"
#include "workers/xfer.h"

/* Requests taken per loop turn, so curl is never starved. */
#define RECV_BATCH 16
/* Daemon runs a turn makes after its other work while the daemon has
 * more to do at once (see thread_main). */
#define HOOK_RUNS_MAX 3
/* Longest sleep of a loop turn; a safety net only. */
#define POLL_MAX_MS 1000
/* Reply send fds waited on per turn. */
#define POLL_FDS 16

/* Listeners kept so intake can close while the socket drains. */
#define MAX_LISTENERS 16

typedef struct wrk_thread {
	wrk_worker *w;
	pthread_t tid;
	CURLM *multi;
	wrk_cloop *loop; /* drives multi; its wakeup is the thread's */
	int hook_fd;     /* the loop hook's fd, -1: none */
	wrk_replies *replies;
	int started;
	atomic_size_t live; /* relays alive after the last loop turn */
	/* this thread's control socket: relay.cancel / relay.credit sent
	 * straight to the thread that runs the relay */
	nng_socket ctl;
	int ctl_open;
	nng_aio *ctl_aio;  /* the control socket's one receive (ctl_cb) */
	nng_msg *ctl_held; /* taken while the inbox was full; guarded by mu */
	char ctl_url[PF_URL_MAX + 1]; /* "" = none */
	/* relay.cancel / relay.credit that came through the shared intake,
	 * routed here by other threads */
	pthread_mutex_t mu;
	int mu_inited;
	struct ctl_note {
		uint8_t id[PF_ID_LEN];
		uint32_t credit; /* 0: a cancel */
	} inbox[PF_CANCEL_INBOX_MAX];
	size_t n_inbox;
} wrk_thread;

struct wrk_worker {
	const pf_config *cfg;
	pf_lane *lane; /* the ingress in this process (serve), or NULL */
	/* requests to take: lane, or a private queue the pull socket's
	 * callback (intake_cb) fills */
	pf_lane *intake;
	int own_intake;
	nng_socket pull;
	int pull_open;
	nng_aio *recv_aio;
	pthread_mutex_t held_mu; /* guards held */
	int held_mu_inited;
	nng_msg *held; /* taken while the queue was full; no receive asked */
	int recv_fd;
	nng_listener listeners[MAX_LISTENERS];
	size_t n_listeners;
	atomic_int stop;
	int stopped;
	uint32_t n_threads;
	wrk_thread *threads;
	pf_loop_hook hook; /* n == 0: none */
};

static void
apply_note(wrk_env *env, const struct ctl_note *n)
{
	if (n->credit == 0)
		wrk_env_cancel(env, n->id);
	else
		wrk_env_credit(env, n->id, n->credit);
}

/* A control message that came through the shared intake (an ingress that
 * had no control address yet) may be for any thread: offer it to every
 * other thread (a full inbox drops it) and try here. */
static void
route_note(wrk_thread *self, wrk_env *env, const struct ctl_note *n)
{
	wrk_worker *w = self->w;

	for (uint32_t i = 0; i < w->n_threads; i++) {
		wrk_thread *t = &w->threads[i];

		if (t == self)
			continue;
		pthread_mutex_lock(&t->mu);
		if (t->n_inbox < PF_CANCEL_INBOX_MAX)
			t->inbox[t->n_inbox++] = *n;
		pthread_mutex_unlock(&t->mu);
		wrk_cloop_wakeup(t->loop);
	}
	apply_note(env, n);
}

static void
take_notes(wrk_thread *t, wrk_env *env)
{
	struct ctl_note notes[64];
	size_t n;

	do {
		pthread_mutex_lock(&t->mu);
		n = t->n_inbox < 64 ? t->n_inbox : 64;
		t->n_inbox -= n;
		memcpy(notes, &t->inbox[t->n_inbox], n * sizeof notes[0]);
		pthread_mutex_unlock(&t->mu);
		for (size_t i = 0; i < n; i++)
			apply_note(env, &notes[i]);
	} while (n == 64);
}

/* note_of reads a relay.cancel / relay.credit; 0 when m is neither. */
static int
note_of(const pf_msg *m, struct ctl_note *n)
{
	if (m->kind == PF_MSG_RELAY_CANCEL) {
		memcpy(n->id, m->u.relay_cancel.id, PF_ID_LEN);
		n->credit = 0;
		return 1;
	}
	if (m->kind == PF_MSG_RELAY_CREDIT && m->u.relay_credit.bytes > 0) {
		memcpy(n->id, m->u.relay_credit.id, PF_ID_LEN);
		n->credit = m->u.relay_credit.bytes;
		return 1;
	}
	return 0;
}

/* ctl_note_of decodes a control message; 0 when it is none. */
static int
ctl_note_of(nng_msg *m, struct ctl_note *n)
{
	pf_msg *pm;
	int ok = 0;

	if (pf_msg_decode(nng_msg_body(m), nng_msg_len(m), &pm) == PF_OK) {
		ok = note_of(pm, n);
		pf_msg_free(pm);
	}
	return ok;
}

/*
 * ctl_cb runs on an NNG thread when a control message for thread t came:
 * it goes into t's inbox and t's loop is woken.  A message that finds the
 * inbox full is held, and no receive is asked for until t's loop took it
 * (take_ctl): relay.credit must never be dropped.
 */
static void
ctl_cb(void *arg)
{
	wrk_thread *t = arg;
	struct ctl_note note;
	int rv = nng_aio_result(t->ctl_aio);
	nng_msg *m;

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		nng_recv_aio(t->ctl, t->ctl_aio);
		return;
	}
	m = nng_aio_get_msg(t->ctl_aio);
	nng_aio_set_msg(t->ctl_aio, NULL);
	if (!ctl_note_of(m, &note)) {
		nng_msg_free(m);
		nng_recv_aio(t->ctl, t->ctl_aio);
		return;
	}
	pthread_mutex_lock(&t->mu);
	if (t->n_inbox < PF_CANCEL_INBOX_MAX) {
		t->inbox[t->n_inbox++] = note;
		nng_msg_free(m);
		m = NULL;
	} else {
		t->ctl_held = m;
	}
	pthread_mutex_unlock(&t->mu);
	wrk_cloop_wakeup(t->loop);
	if (m == NULL)
		nng_recv_aio(t->ctl, t->ctl_aio);
}

/* Take a control message ctl_cb held back (the inbox was full) and ask
 * for the next one. */
static void
take_ctl(wrk_thread *t, wrk_env *env)
{
	struct ctl_note note;
	nng_msg *m;

	pthread_mutex_lock(&t->mu);
	m = t->ctl_held;
	t->ctl_held = NULL;
	pthread_mutex_unlock(&t->mu);
	if (m == NULL)
		return;
	if (ctl_note_of(m, &note))
		apply_note(env, &note);
	nng_msg_free(m);
	nng_recv_aio(t->ctl, t->ctl_aio);
}

/* queue_request copies m into the intake queue; 0 when queued (m is
 * freed), -1 when the queue is full (m is still the caller's). */
static int
queue_request(wrk_worker *w, nng_msg *m)
{
	size_t len = nng_msg_len(m);
	uint8_t *buf = malloc(len > 0 ? len : 1);

	if (buf == NULL) {
		nng_msg_free(m); /* dropped: the ingress ends it at deadline */
		return 0;
	}
	memcpy(buf, nng_msg_body(m), len);
	if (pf_lane_push(w->intake, buf, len) != PF_OK) {
		free(buf);
		return -1;
	}
	nng_msg_free(m);
	return 0;
}

/*
 * intake_cb runs on an NNG thread when the pull socket delivered a
 * request: it goes into the intake queue (whose fd wakes a transfer
 * thread) and the next receive is asked for.  Once PF_WORKER_INTAKE_AHEAD
 * requests wait, the request is held and no receive is asked for until a
 * thread took one (release_held): the rest wait in the ingresses, where
 * another worker may take them.
 */
static void
intake_cb(void *arg)
{
	wrk_worker *w = arg;
	int rv = nng_aio_result(w->recv_aio);
	nng_msg *m;

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		nng_recv_aio(w->pull, w->recv_aio);
		return;
	}
	m = nng_aio_get_msg(w->recv_aio);
	nng_aio_set_msg(w->recv_aio, NULL);
	pthread_mutex_lock(&w->held_mu);
	if (pf_lane_pending(w->intake) >= PF_WORKER_INTAKE_AHEAD
	    || queue_request(w, m) != 0)
		w->held = m; /* release_held asks for the next */
	else
		m = NULL;
	pthread_mutex_unlock(&w->held_mu);
	if (m == NULL)
		nng_recv_aio(w->pull, w->recv_aio);
}

/* release_held queues a request intake_cb held and asks for the next. */
static void
release_held(wrk_worker *w)
{
	int rearm = 0;

	if (!w->own_intake)
		return;
	pthread_mutex_lock(&w->held_mu);
	if (w->held != NULL
	    && pf_lane_pending(w->intake) < PF_WORKER_INTAKE_AHEAD
	    && queue_request(w, w->held) == 0) {
		w->held = NULL;
		rearm = 1;
	}
	pthread_mutex_unlock(&w->held_mu);
	if (rearm)
		nng_recv_aio(w->pull, w->recv_aio);
}

/* Take the next request off the intake queue: 1 when there was one (*err
 * says whether *ret is a decoded message), 0 when none waits. */
static int
next_request(wrk_thread *t, pf_msg **ret, pf_err *err)
{
	uint8_t *buf;
	size_t len;
	pf_msg *m;

	if (!pf_lane_take(t->w->intake, &buf, &len, &m))
		return 0;
	release_held(t->w);
	if (m != NULL) { /* from this process, as it is */
		*ret = m;
		*err = PF_OK;
		return 1;
	}
	*err = pf_msg_decode(buf, len, ret);
	free(buf);
	return 1;
}

/* Take up to RECV_BATCH requests without blocking. */
static void
take_requests(wrk_thread *t, wrk_env *env)
{
	for (int i = 0; i < RECV_BATCH; i++) {
		pf_msg *pm = NULL;
		pf_err err;

		if (!next_request(t, &pm, &err))
			return;
		if (err != PF_OK) {
			pf_warn(
			    "PF-WRK-DECODE", "err=\"%s\"", pf_strerror(err));
			continue;
		}
		{
			struct ctl_note note;

			if (note_of(pm, &note)) {
				route_note(t, env, &note);
				pf_msg_free(pm);
				continue;
			}
		}
		/* an ingress that reads packed replies says so; a socket
		 * that cannot open now fails the relay in wrk_env_take */
		if (pm->kind == PF_MSG_RELAY_REQUEST
		    && pm->u.relay_request.batch
		    && wrk_replies_batch(t->replies,
		           pm->u.relay_request.reply_addr.ptr,
		           pm->u.relay_request.reply_addr.len)
		        != PF_OK)
			pf_debug("PF-WRK-BATCH", "packed replies off");
		wrk_env_take(env, pm);
	}
}

/* hook_wait shortens wait to the hook's own timeout. */
static int64_t
hook_wait(const pf_loop_hook *h, unsigned i, int64_t wait)
{
	int64_t hw = h->timeout_ms(h->arg, i);

	if (hw >= 0 && (wait < 0 || hw < wait))
		return hw;
	return wait;
}

static void *
thread_main(void *arg)
{
	wrk_thread *t = arg;
	wrk_worker *w = t->w;
	const pf_loop_hook *hook = w->hook.n > 0 ? &w->hook : NULL;
	unsigned idx = (unsigned)(t - w->threads);
	wrk_env env;
	int fds[POLL_FDS];
	int64_t hook_at = 0; /* when the hook last ran */
	char name[16];

	/* serve's loops also run the HTTP daemon */
	snprintf(name, sizeof(name), "pf-%s-%u",
	    hook != NULL ? "loop" : "worker", idx);
	pf_thread_name(name);
	wrk_env_init(&env, t->multi, w->cfg, t->replies);
	env.ctl_addr = t->ctl_url;
	env.loop = t->loop;
	if (w->cfg->upstream_own_client) {
		if (wrk_h1_new(t->loop, &env.h1) == PF_OK)
			wrk_cloop_set_handler(t->loop, wrk_h1_event, env.h1);
		else /* curl carries every transfer */
			pf_warn(
			    "PF-WRK-H1", "err=\"%s\"", pf_strerror(PF_ENOMEM));
	}
	while (!atomic_load(&w->stop)) {
		int64_t wait;
		size_t nsend;
		int ready;

		wrk_replies_new_turn(t->replies);
		/* the daemon runs when its epoll set woke us or it has work
		 * of its own (a resumed connection, a timeout, data it
		 * already read): each run costs an epoll_wait.  And at least
		 * every POLL_MAX_MS: some of its work shows nowhere (after
		 * its connection limit, libmicrohttpd 0.9.75 puts the listen
		 * socket back into its set only at the start of the run
		 * after the one that closed a connection). */
		if (hook != NULL
		    && (wrk_cloop_was_ready(t->loop, t->hook_fd)
		        || hook->timeout_ms(hook->arg, idx) == 0
		        || wrk_now_ms() - hook_at >= POLL_MAX_MS)) {
			hook->run(hook->arg, idx);
			hook_at = wrk_now_ms();
		}
		take_requests(t, &env);
		take_notes(t, &env);
		take_ctl(t, &env);
		wrk_cloop_run(t->loop);
		wrk_env_reap(&env);
		wait = wrk_env_tick(&env, wrk_now_ms());
		wrk_replies_flush(t->replies);
		atomic_store(&t->live, env.n_live);
		/* a connection this turn resumed (an answer is ready) is
		 * written now, not after one more wait; and while the
		 * daemon has more it can do at once (a stream's first
		 * chunk after its head), a few runs more */
		for (int runs = 0; hook != NULL && runs < HOOK_RUNS_MAX
		     && hook->timeout_ms(hook->arg, idx) == 0;
		     runs++) {
			hook->run(hook->arg, idx);
			hook_at = wrk_now_ms();
		}
		/* requests those runs read start now, not after one more
		 * wait: their upstream gets them a system call sooner */
		if (hook != NULL && pf_lane_local_pending(w->intake) > 0) {
			take_requests(t, &env);
			wait = wrk_env_tick(&env, wrk_now_ms());
			wrk_replies_flush(t->replies);
		}
		if (hook != NULL) {
			wait = hook_wait(hook, idx, wait);
			/* requests the hook queued beyond this turn's batch */
			if (pf_lane_local_pending(w->intake) > 0)
				wait = 0;
		}
		if (wait < 0 || wait > POLL_MAX_MS)
			wait = POLL_MAX_MS;
		/* the intake fd is in the loop's set */
		nsend = wrk_replies_poll_fds(t->replies, fds, POLL_FDS);
		ready = wrk_cloop_wait(t->loop, fds, nsend, wait);
		/* relays queued behind a reply socket need a visit only when
		 * one became writable (all fds must have been polled) */
		env.replies_blocked = nsend > 0 && nsend < POLL_FDS && !ready;
	}
	wrk_env_fini(&env);
	t->multi = env.multi; /* made at the first curl transfer, if any */
	wrk_cloop_set_handler(t->loop, NULL, NULL);
	wrk_h1_free(env.h1);
	atomic_store(&t->live, 0);
	return NULL;
}

/* hooked_main binds the thread to the lane's local queue for its loop. */
static void *
hooked_main(void *arg)
{
	wrk_thread *t = arg;

	if (pf_lane_bind_local(t->w->intake) != PF_OK) {
		/* without a local queue, requests go through the shared one */
		pf_warn("PF-WRK-LOCAL", "err=\"%s\"", pf_strerror(PF_ENOMEM));
	}
	(void)thread_main(arg);
	pf_lane_unbind_local();
	return NULL;
}

static void
worker_release(wrk_worker *w)
{
	for (uint32_t i = 0; i < w->n_threads; i++) {
		wrk_thread *t = &w->threads[i];

		wrk_replies_free(t->replies);
		if (t->ctl_open) {
			nng_close(t->ctl);
			t->ctl_open = 0;
		}
		if (t->ctl_aio != NULL) {
			nng_aio_stop(t->ctl_aio); /* waits for ctl_cb */
			nng_aio_free(t->ctl_aio);
			t->ctl_aio = NULL;
		}
		if (t->ctl_held != NULL)
			nng_msg_free(t->ctl_held);
		/* after ctl_cb, which wakes it, can no longer run */
		wrk_cloop_free(t->loop);
		t->loop = NULL;
		if (t->multi != NULL)
			curl_multi_cleanup(t->multi);
		if (t->mu_inited)
			pthread_mutex_destroy(&t->mu);
	}
	free(w->threads);
	w->threads = NULL;
	w->n_threads = 0;
	if (w->pull_open) {
		nng_close(w->pull);
		w->pull_open = 0;
	}
	if (w->recv_aio != NULL) {
		nng_aio_stop(w->recv_aio); /* waits for intake_cb */
		nng_aio_free(w->recv_aio);
		w->recv_aio = NULL;
	}
	if (w->held != NULL) {
		nng_msg_free(w->held);
		w->held = NULL;
	}
	if (w->held_mu_inited) {
		pthread_mutex_destroy(&w->held_mu);
		w->held_mu_inited = 0;
	}
	if (w->own_intake) {
		pf_lane_free(w->intake);
		w->own_intake = 0;
	}
	w->intake = NULL;
}

/* Listen on each comma-separated URL. */
static pf_err
listen_all(wrk_worker *w, const char *urls)
{
	char one[PF_URL_MAX + 1];
	const char *p = urls;
	int any = 0;

	while (*p != 0) {
		const char *e = strchr(p, ',');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
		int rv;

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > PF_URL_MAX)
			return PF_EINVAL;
		if (n > 0) {
			memcpy(one, p, n);
			one[n] = 0;
			if (w->n_listeners == MAX_LISTENERS)
				return PF_EINVAL;
			rv = nng_listen(
			    w->pull, one, &w->listeners[w->n_listeners], 0);
			if (rv != 0) {
				pf_error("PF-WRK-LISTEN", "url=%s err=\"%s\"",
				    one, nng_strerror(rv));
				return PF_ENET;
			}
			w->n_listeners++;
			pf_info("PF-WRK-LISTEN", "url=%s", one);
			any = 1;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return any ? PF_OK : PF_EINVAL;
}

/*
 * ctl_url_for writes thread n's control URL: from PF_WORKER_CTL_URL, else
 * from the first PF_WORKER_URL ("<url>-ctl") for inproc:// and ipc://.
 * inproc/ipc bases get "-<n>"; tcp bases use port + n.  Returns 0 when
 * there is none (the thread then takes control messages only through the
 * shared intake), -1 when the base is malformed.
 */
static int
ctl_url_for(const pf_config *cfg, uint32_t n, char *out, size_t len)
{
	char base[PF_URL_MAX + 1];
	const char *src = cfg->worker_ctl_url, *colon;
	size_t blen;
	int k;

	if (src[0] != 0) {
		blen = strlen(src);
		if (blen >= sizeof base)
			return -1;
		memcpy(base, src, blen + 1);
	} else {
		src = cfg->worker_url;
		while (*src == ' ' || *src == '\t')
			src++;
		blen = strcspn(src, ", \t");
		if (strncmp(src, "inproc://", 9) != 0
		    && strncmp(src, "ipc://", 6) != 0)
			return 0;
		if (blen + 4 >= sizeof base)
			return -1;
		memcpy(base, src, blen);
		memcpy(base + blen, "-ctl", 5);
	}
	if (strncmp(base, "tcp://", 6) == 0
	    || strncmp(base, "tls+tcp://", 10) == 0) {
		char *end;
		unsigned long port;

		colon = strrchr(base, ':');
		if (colon == NULL || colon[1] == 0)
			return -1;
		port = strtoul(colon + 1, &end, 10);
		if (*end != 0 || port == 0 || port + n > 65535)
			return -1;
		k = snprintf(
		    out, len, "%.*s:%lu", (int)(colon - base), base, port + n);
	} else {
		k = snprintf(out, len, "%s-%u", base, n);
	}
	return k > 0 && (size_t)k < len ? 1 : -1;
}

/* Open thread t's control socket, if it has an address. */
static pf_err
open_ctl(wrk_thread *t, uint32_t n)
{
	int rv = ctl_url_for(t->w->cfg, n, t->ctl_url, sizeof t->ctl_url);

	if (rv <= 0) {
		t->ctl_url[0] = 0;
		return rv == 0 ? PF_OK : PF_ECONFIG;
	}
	rv = nng_pull0_open(&t->ctl);
	if (rv != 0)
		return PF_ENET;
	t->ctl_open = 1;
	rv = nng_socket_set_size(t->ctl, NNG_OPT_RECVMAXSZ, PF_CTL_MSG_MAX);
	if (rv == 0) /* bursts of cancels wait here, not in the sender */
		rv = nng_socket_set_int(t->ctl, NNG_OPT_RECVBUF, PF_CTL_QUEUE);
	if (rv == 0)
		rv = nng_listen(t->ctl, t->ctl_url, NULL, 0);
	if (rv == 0)
		rv = nng_aio_alloc(&t->ctl_aio, ctl_cb, t);
	if (rv != 0) {
		pf_error("PF-WRK-CTL", "url=%s err=\"%s\"", t->ctl_url,
		    nng_strerror(rv));
		return PF_ENET;
	}
	pf_info("PF-WRK-CTL", "thread=%u url=%s", n, t->ctl_url);
	nng_recv_aio(t->ctl, t->ctl_aio);
	return PF_OK;
}

/* Open the intake: the lane, or the pull socket on every worker URL
 * feeding a private queue. */
static pf_err
open_intake(wrk_worker *w)
{
	pf_err err;
	int rv;

	if (w->lane != NULL) {
		w->intake = w->lane;
		w->recv_fd = pf_lane_fd(w->lane);
		return PF_OK;
	}
	err = pf_lane_new(&w->intake);
	if (err != PF_OK)
		return err;
	w->own_intake = 1;
	w->recv_fd = pf_lane_fd(w->intake);
	if (pthread_mutex_init(&w->held_mu, NULL) != 0)
		return PF_EIO;
	w->held_mu_inited = 1;
	rv = nng_pull0_open(&w->pull);
	if (rv != 0)
		return PF_ENET;
	w->pull_open = 1;
	rv = nng_socket_set_size(w->pull, NNG_OPT_RECVMAXSZ, PF_MSG_MAX);
	if (rv != 0)
		return PF_ENET;
	err = listen_all(w, w->cfg->worker_url);
	if (err != PF_OK)
		return err;
	rv = nng_aio_alloc(&w->recv_aio, intake_cb, w);
	if (rv != 0)
		return PF_ENOMEM;
	nng_recv_aio(w->pull, w->recv_aio);
	return PF_OK;
}

pf_err
wrk_worker_start(const pf_config *cfg, wrk_worker **ret)
{
	return wrk_worker_start_lane(cfg, NULL, ret);
}

pf_err
wrk_worker_start_lane(const pf_config *cfg, pf_lane *lane, wrk_worker **ret)
{
	return wrk_worker_start_hooked(cfg, lane, NULL, ret);
}

/* wake_one ends the sleep of thread i's loop (the hook's wake). */
static void
wake_one(void *arg, unsigned i)
{
	wrk_worker *w = arg;

	if (i < w->n_threads && w->threads[i].loop != NULL)
		wrk_cloop_wakeup(w->threads[i].loop);
}

pf_err
wrk_worker_start_hooked(const pf_config *cfg, pf_lane *lane,
    const pf_loop_hook *hook, wrk_worker **ret)
{
	wrk_worker *w;
	pf_err err = PF_OK;

	w = calloc(1, sizeof *w);
	if (w == NULL)
		return PF_ENOMEM;
	w->cfg = cfg;
	w->lane = lane;
	atomic_init(&w->stop, 0);
	err = open_intake(w);
	if (err != PF_OK)
		goto fail;
	w->n_threads = cfg->worker_threads > 0 ? cfg->worker_threads : 1;
	if (hook != NULL && hook->n > 0) {
		w->hook = *hook;
		w->n_threads = hook->n;
	}
	w->threads = calloc(w->n_threads, sizeof *w->threads);
	if (w->threads == NULL) {
		w->n_threads = 0;
		err = PF_ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < w->n_threads; i++) {
		wrk_thread *t = &w->threads[i];

		t->w = w;
		atomic_init(&t->live, 0);
		if (pthread_mutex_init(&t->mu, NULL) != 0) {
			err = PF_EIO;
			goto fail;
		}
		t->mu_inited = 1;
		err = wrk_replies_new(&t->replies);
		if (err != PF_OK)
			goto fail;
		wrk_replies_set_lane(t->replies, lane);
		err = wrk_cloop_new(t->multi, &t->loop);
		if (err != PF_OK)
			goto fail;
		err = wrk_cloop_watch(t->loop, w->recv_fd);
		if (err != PF_OK)
			goto fail;
		t->hook_fd = -1;
		if (w->hook.n > 0) {
			t->hook_fd = w->hook.fd(w->hook.arg, i);
			err = wrk_cloop_watch(t->loop, t->hook_fd);
			if (err != PF_OK)
				goto fail;
		}
		/* after the loop: its callback wakes the loop */
		err = open_ctl(t, i);
		if (err != PF_OK)
			goto fail;
	}
	if (w->hook.n > 0)
		w->hook.attach(w->hook.arg, wake_one, w);
	for (uint32_t i = 0; i < w->n_threads; i++) {
		wrk_thread *t = &w->threads[i];

		if (pthread_create(&t->tid, NULL,
		        w->hook.n > 0 ? hooked_main : thread_main, t)
		    != 0) {
			err = PF_EIO;
			goto fail;
		}
		t->started = 1;
	}
	*ret = w;
	return PF_OK;
fail:
	wrk_worker_stop(w);
	worker_release(w);
	free(w);
	return err;
}

void
wrk_worker_stop(wrk_worker *w)
{
	if (w == NULL || w->stopped)
		return;
	w->stopped = 1;
	atomic_store(&w->stop, 1);
	for (uint32_t i = 0; i < w->n_threads; i++)
		if (w->threads[i].started)
			wrk_cloop_wakeup(w->threads[i].loop);
	for (uint32_t i = 0; i < w->n_threads; i++) {
		if (w->threads[i].started) {
			pthread_join(w->threads[i].tid, NULL);
			w->threads[i].started = 0;
		}
	}
	if (w->pull_open) {
		nng_close(w->pull);
		w->pull_open = 0;
	}
}

void
wrk_worker_close_intake(wrk_worker *w)
{
	if (w->lane != NULL)
		pf_lane_close_intake(w->lane);
	for (size_t i = 0; i < w->n_listeners; i++)
		nng_listener_close(w->listeners[i]);
	w->n_listeners = 0;
}

size_t
wrk_worker_live(wrk_worker *w)
{
	size_t n = 0;

	for (uint32_t i = 0; i < w->n_threads; i++)
		n += atomic_load(&w->threads[i].live);
	return n;
}

void
wrk_worker_drain(wrk_worker *w, uint32_t grace_ms)
{
	int64_t until = wrk_now_ms() + grace_ms;

	wrk_worker_close_intake(w);
	/* requests already queued in the socket are still taken */
	do
		nng_msleep(50);
	while (wrk_worker_live(w) > 0 && wrk_now_ms() < until);
	wrk_worker_stop(w);
}

void
wrk_worker_free(wrk_worker *w)
{
	if (w == NULL)
		return;
	wrk_worker_stop(w);
	worker_release(w);
	free(w);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly worker [--config FILE]\n\n"
	    "Relays requests from the ingress to upstream providers.  Listens\n"
	    "on PF_WORKER_URL (NNG pull) and replies to each request's reply\n"
	    "address; PF_WORKER_THREADS transfer threads.\n\n"
	    "options:\n"
	    "  --config FILE  read settings from FILE (PF_* env overrides)\n"
	    "  --help         this text\n\n");
	pf_config_usage(f);
}

int
wrk_cmd(int argc, char **argv)
{
	pf_config cfg;
	int rc;
	wrk_worker *w = NULL;
	sigset_t set;
	pf_err err;
	int sig = 0;

	rc = pf_cli_config("worker", argc, argv, usage, &cfg);
	if (rc >= 0)
		return rc;

	pf_cli_block_signals(&set);
	pf_cli_tune_process();
	pf_cli_set_sched(&cfg);

	err = wrk_worker_start(&cfg, &w);
	if (err != PF_OK) {
		pf_error("PF-WRK-START", "err=\"%s\"", pf_strerror(err));
		return 1;
	}
	pf_info("PF-WRK-READY", "threads=%u", cfg.worker_threads);
	while (sig != SIGINT && sig != SIGTERM) {
		sig = pf_cli_wait_signal(&set);
	}
	if (sig == SIGTERM) {
		/* drain: no new requests, let in-flight relays finish; a
		 * second signal stops at once */
		struct timespec step = { 0, 100 * 1000 * 1000 };
		int64_t until = wrk_now_ms() + PF_DRAIN_GRACE_MS;

		pf_info("PF-WRK-DRAIN", "live=%zu grace_ms=%u",
		    wrk_worker_live(w), PF_DRAIN_GRACE_MS);
		wrk_worker_close_intake(w);
		sig = 0;
		while (wrk_worker_live(w) > 0 && wrk_now_ms() < until) {
			int got = sigtimedwait(&set, NULL, &step);

			if (got == SIGINT || got == SIGTERM) {
				sig = got;
				break;
			}
		}
	}
	pf_info("PF-WRK-STOP", "signal=%d live=%zu", sig, wrk_worker_live(w));
	wrk_worker_free(w);
	return 0;
}
