/*
 * loadgen_run.c -- one load thread: its connections, the epoll loop, the
 * closed-loop and open-loop (fixed rate) schedules, and the recording.
 *
 * Open loop: request k of this thread is due at first + k * interval and
 * its latency is measured from that intended time, whether or not a
 * connection was free then (no coordinated omission).  Closed loop: each
 * connection sends its next request as soon as the previous one ends.
 */
#include "bench/loadgen_run.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "bench/loadgen_http.h"
#include "bench/loadgen_tls.h"

#define RBUF_SIZE (64u * 1024u)
#define SCAN_NS 20000000u             /* timeouts, reconnects: every 20 ms */
#define RETRY_NS 100000000u           /* a failed connect waits 100 ms */
#define CONNECT_PHASE_NS 10000000000u /* connections get 10 s to open */
#define MAX_EVENTS 256

/* C_HANDSHAKE: connected, TLS handshake under way (https only). */
enum { C_DOWN = 0, C_CONNECTING, C_HANDSHAKE, C_IDLE, C_SEND, C_RECV };

/* conn_read and conn_write return a count, 0 (read: the server closed),
 * or one of these. */
#define IO_WANT LG_TLS_WANT /* wait for the socket */
#define IO_ERR LG_TLS_ERR

typedef struct conn {
	int fd;
	struct ssl_st *ssl; /* https: the session, once connected */
	uint8_t state;
	uint8_t stream_open;
	uint8_t fresh; /* no request sent on this connection yet */
	size_t req_off;
	uint64_t t_intended;
	uint64_t t_sent;
	uint64_t t_last_ev;
	uint64_t t_state; /* when CONNECTING began, or retry time (DOWN) */
	lg_http http;
} conn;

typedef struct loop {
	lg_thread *t;
	const lg_opts *o;
	int ep;
	int running; /* past the go barrier */
	conn *conns;
	uint32_t nconns;
	uint32_t *idle; /* stack of idle connection indexes */
	uint32_t nidle;
	char *req;
	size_t req_len;
	char *rbuf;
	uint64_t warmup_end;
	/* open loop */
	uint64_t first_due;
	uint64_t interval;
	uint64_t next_k;
	/* both */
	uint64_t quota; /* requests this thread may send; UINT64_MAX = any */
	uint64_t issued;
	uint64_t inflight;
} loop;

uint64_t
lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
append(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + n > cap)
		return -1;
	memcpy(buf + *len, s, n);
	*len += n;
	return 0;
}

static int
appends(char *buf, size_t cap, size_t *len, const char *s)
{
	return append(buf, cap, len, s, strlen(s));
}

/* The one request every connection of this thread sends. */
static int
build_request(loop *l)
{
	const lg_opts *o = l->o;
	char head[PF_LOADGEN_EXTRA_HEADERS_MAX + 4096];
	char body_tail[512];
	char body_head[PF_MODEL_NAME_MAX + 128];
	int n = snprintf(body_head, sizeof(body_head),
	    "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"",
	    o->model);
	if (n < 0 || (size_t)n >= sizeof(body_head))
		return -1;
	size_t hl = (size_t)n;
	char mt[64] = "";
	/* the Messages API requires max_tokens; its streams always carry
	 * their usage */
	if (o->max_tokens >= 0 || o->anthropic)
		snprintf(mt, sizeof(mt), ",\"max_tokens\":%lld",
		    (long long)(o->max_tokens >= 0 ? o->max_tokens
		                                   : LG_ANTHROPIC_MAX_TOKENS));
	n = snprintf(body_tail, sizeof(body_tail), "\"}]%s%s%s}", mt,
	    o->stream ? ",\"stream\":true" : "",
	    o->stream && o->include_usage && !o->anthropic
	        ? ",\"stream_options\":{\"include_usage\":true}"
	        : "");
	if (n < 0 || (size_t)n >= sizeof(body_tail))
		return -1;
	size_t tl = (size_t)n;
	/* the prompt pads the body to --body-bytes (at least "hello") */
	size_t fill = 5;
	if (o->body_bytes > hl + tl + fill)
		fill = o->body_bytes - hl - tl;
	size_t body_len = hl + fill + tl;

	n = snprintf(head, sizeof(head),
	    "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "Content-Type: application/json\r\n"
	    "Accept: %s\r\nUser-Agent: planktonfly-bench\r\n"
	    "Content-Length: %zu\r\n",
	    o->base_path, o->path, o->host, o->port,
	    o->stream ? "text/event-stream" : "application/json", body_len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	size_t len = (size_t)n;
	if (o->key && o->key[0]) {
		if (appends(head, sizeof(head), &len,
		        o->anthropic ? "x-api-key: " : "Authorization: Bearer ")
		    || appends(head, sizeof(head), &len, o->key)
		    || appends(head, sizeof(head), &len, "\r\n"))
			return -1;
	}
	if (o->anthropic
	    && appends(head, sizeof(head), &len,
	        "anthropic-version: " LG_ANTHROPIC_VERSION "\r\n"))
		return -1;
	if (append(head, sizeof(head), &len, o->extra_headers, o->extra_len)
	    || appends(head, sizeof(head), &len, "\r\n"))
		return -1;

	l->req_len = len + body_len;
	l->req = malloc(l->req_len);
	if (!l->req)
		return -1;
	char *p = l->req;
	memcpy(p, head, len);
	p += len;
	memcpy(p, body_head, hl);
	p += hl;
	static const char words[] = "hello world ";
	for (size_t i = 0; i < fill; i++)
		p[i] = words[i % (sizeof(words) - 1)];
	p += fill;
	memcpy(p, body_tail, tl);
	return 0;
}

static void
conn_close(loop *l, conn *c, uint64_t retry_at)
{
	lg_tls_close(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->stream_open) {
		c->stream_open = 0;
		atomic_fetch_sub_explicit(
		    &l->t->live.open_streams, 1, memory_order_relaxed);
	}
	if (c->state == C_SEND || c->state == C_RECV) {
		l->inflight--;
		atomic_fetch_sub_explicit(
		    &l->t->live.inflight, 1, memory_order_relaxed);
	}
	c->state = C_DOWN;
	c->t_state = retry_at;
}

static void
count_error(loop *l, conn *c, int kind)
{
	/* errors of requests sent during warmup are not counted */
	if (kind == LG_ERR_CONNECT || c->t_intended >= l->warmup_end)
		l->t->st.errors[kind]++;
	atomic_fetch_add_explicit(&l->t->live.errors, 1, memory_order_relaxed);
}

static void
conn_open(loop *l, conn *c, uint64_t now)
{
	int fd = socket(l->o->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		count_error(l, c, LG_ERR_CONNECT);
		c->t_state = now + RETRY_NS;
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int r
	    = connect(fd, (const struct sockaddr *)&l->o->addr, l->o->addrlen);
	if (r != 0 && errno != EINPROGRESS) {
		close(fd);
		count_error(l, c, LG_ERR_CONNECT);
		c->t_state = now + RETRY_NS;
		return;
	}
	struct epoll_event ev
	    = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		      .data.ptr = c };
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		close(fd);
		count_error(l, c, LG_ERR_CONNECT);
		c->t_state = now + RETRY_NS;
		return;
	}
	c->fd = fd;
	c->state = C_CONNECTING;
	c->t_state = now;
	c->fresh = 1;
	l->t->st.connects++;
}

static void send_more(loop *l, conn *c, uint64_t now);

static void
start_request(loop *l, conn *c, uint64_t intended, uint64_t now)
{
	c->t_intended = intended;
	c->t_sent = now;
	c->req_off = 0;
	c->stream_open = 0;
	lg_http_reset(&c->http);
	c->state = C_SEND;
	l->issued++;
	l->inflight++;
	atomic_fetch_add_explicit(
	    &l->t->live.inflight, 1, memory_order_relaxed);
	send_more(l, c, now);
}

static int
may_issue(const loop *l)
{
	return l->running
	    && !atomic_load_explicit(&l->t->sh->stop, memory_order_relaxed)
	    && l->issued < l->quota;
}

/* A connection became free: send at once (closed loop) or park it. */
static void
conn_free(loop *l, conn *c, uint64_t now)
{
	c->state = C_IDLE;
	if (l->running && l->o->rate == 0 && may_issue(l)) {
		start_request(l, c, now, now);
		return;
	}
	l->idle[l->nidle++] = (uint32_t)(c - l->conns);
}

static void
keep_billed(loop *l, const char *id, int64_t cost)
{
	lg_billed_list *b = &l->t->billed;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2u : 1024u;
		lg_billed *v = realloc(b->v, cap * sizeof(*v));
		if (!v) {
			b->oom = 1;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	lg_billed *e = &b->v[b->n++];
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->cost = cost;
}

static void
record_cost(loop *l, const lg_http *h)
{
	lg_stats *st = &l->t->st;
	int64_t pt = h->prompt_tokens, ct = h->completion_tokens;
	st->prompt_tokens += pt;
	st->completion_tokens += ct;
	if (!l->o->have_price)
		return;
	int64_t cost = 0;
	pf_err e = pf_money_cost(&l->o->price, pt, ct, 0, l->o->group_ratio_ppm,
	    l->o->quota_per_unit, &cost);
	if (e != PF_OK) {
		st->cost_error = 1;
		return;
	}
	st->expected_cost += cost;
	if (!l->o->check_billing)
		return;
	if (h->request_id[0])
		keep_billed(l, h->request_id, cost);
	else
		st->no_request_id++;
}

static void
complete(loop *l, conn *c, uint64_t now)
{
	lg_stats *st = &l->t->st;
	lg_http *h = &c->http;
	int status = h->status;
	int ok2xx = status >= 200 && status <= 299;
	int counted = c->t_intended >= l->warmup_end;
	int truncated = ok2xx && l->o->stream && h->sse && !h->done_marker;

	atomic_fetch_add_explicit(&l->t->live.done, 1, memory_order_relaxed);
	if (!ok2xx || truncated)
		atomic_fetch_add_explicit(
		    &l->t->live.errors, 1, memory_order_relaxed);
	if (ok2xx && !truncated) {
		st->billed_requests++;
		if (h->prompt_tokens >= 0 && h->completion_tokens >= 0)
			record_cost(l, h);
		else
			st->usage_missing++;
	}
	if (counted) {
		st->status_class[status / 100]++;
		st->status_code[status]++;
		st->events += h->events;
		st->body_bytes += h->body_bytes;
		if (truncated) {
			st->errors[LG_ERR_TRUNCATED]++;
		} else if (ok2xx) {
			st->ok++;
			lg_hist_record(&st->latency, now - c->t_intended);
			lg_hist_record(&st->service, now - c->t_sent);
		}
	}
	if (c->stream_open) {
		c->stream_open = 0;
		atomic_fetch_sub_explicit(
		    &l->t->live.open_streams, 1, memory_order_relaxed);
	}
	l->inflight--;
	atomic_fetch_sub_explicit(
	    &l->t->live.inflight, 1, memory_order_relaxed);
	c->fresh = 0;
	if (!h->keep_alive) {
		c->state = C_IDLE; /* not in flight any more */
		conn_close(l, c, now);
		conn_open(l, c, now);
		return;
	}
	conn_free(l, c, now);
}

static void
fail(loop *l, conn *c, int kind, uint64_t now)
{
	count_error(l, c, kind);
	conn_close(l, c, now);
	conn_open(l, c, now);
}

static ssize_t
conn_write(conn *c, const void *p, size_t n)
{
	if (c->ssl != NULL)
		return lg_tls_write(c->ssl, p, n);
	for (;;) {
		ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
		if (r > 0)
			return r;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 && errno == EAGAIN ? IO_WANT : IO_ERR;
	}
}

static ssize_t
conn_read(conn *c, void *p, size_t n)
{
	if (c->ssl != NULL)
		return lg_tls_read(c->ssl, p, n);
	for (;;) {
		ssize_t r = read(c->fd, p, n);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? IO_WANT : IO_ERR;
	}
}

static void
send_more(loop *l, conn *c, uint64_t now)
{
	while (c->req_off < l->req_len) {
		ssize_t n = conn_write(
		    c, l->req + c->req_off, l->req_len - c->req_off);
		if (n > 0) {
			c->req_off += (size_t)n;
			continue;
		}
		if (n == IO_WANT)
			return;
		fail(l, c, LG_ERR_IO, now);
		return;
	}
	c->state = C_RECV;
}

static void
on_events(loop *l, conn *c, uint32_t n, uint64_t now)
{
	lg_stats *st = &l->t->st;
	lg_http *h = &c->http;
	if (n == 0 || c->t_intended < l->warmup_end)
		return;
	uint64_t base = c->t_intended;
	uint64_t first = h->events - n;
	for (uint32_t i = 0; i < n; i++) {
		if (first + i == 0)
			lg_hist_record(&st->ttft, now - base);
		else if (i == 0)
			lg_hist_record(&st->gap, now - c->t_last_ev);
		else
			lg_hist_record(&st->gap, 0);
	}
	c->t_last_ev = now;
}

static void
recv_more(loop *l, conn *c, uint64_t now)
{
	for (;;) {
		ssize_t n = conn_read(c, l->rbuf, RBUF_SIZE);
		if (n == IO_WANT)
			return;
		if (n < 0) {
			fail(l, c, LG_ERR_IO, now);
			return;
		}
		if (n == 0) {
			if (lg_http_eof(&c->http) == LG_HTTP_DONE) {
				c->http.keep_alive = 0;
				complete(l, c, now);
			} else {
				fail(l, c, LG_ERR_IO, now);
			}
			return;
		}
		size_t used = 0;
		uint32_t nev = 0;
		lg_http_rc rc
		    = lg_http_feed(&c->http, l->rbuf, (size_t)n, &used, &nev);
		if (nev)
			on_events(l, c, nev, now);
		if (!c->stream_open && c->http.headers_done && c->http.sse
		    && c->http.status / 100 == 2 && rc == LG_HTTP_MORE) {
			c->stream_open = 1;
			atomic_fetch_add_explicit(
			    &l->t->live.open_streams, 1, memory_order_relaxed);
		}
		if (rc == LG_HTTP_MALFORMED) {
			fail(l, c, LG_ERR_MALFORMED, now);
			return;
		}
		if (rc == LG_HTTP_DONE) {
			if (used != (size_t)n) {
				/* bytes nobody asked for */
				fail(l, c, LG_ERR_MALFORMED, now);
				return;
			}
			complete(l, c, now);
			return;
		}
		/* drained (edge-triggered epoll says when there is more);
		 * not with TLS: a record ends a read, not the socket's data */
		if (c->ssl == NULL && (size_t)n < RBUF_SIZE)
			return;
	}
}

/* tls_step advances the handshake of c; a failed one counts as a connect
 * error, and the first in the run says why on stderr. */
static void
tls_step(loop *l, conn *c, uint64_t now)
{
	int r = lg_tls_handshake(c->ssl);
	char why[256];

	if (r == LG_TLS_WANT)
		return;
	if (r == 1) {
		conn_free(l, c, now);
		return;
	}
	lg_tls_why(c->ssl, why, sizeof(why));
	if (!atomic_exchange(&l->t->sh->tls_told, 1))
		fprintf(stderr,
		    "planktonfly bench: TLS handshake with %s:%s failed: %s "
		    "(counted as connect errors)\n",
		    l->o->host, l->o->port, why);
	count_error(l, c, LG_ERR_CONNECT);
	conn_close(l, c, now + RETRY_NS);
}

/* idle_quiet reads what the server sent to an idle TLS connection: 1 when
 * that was only TLS's own (a session ticket after the handshake), 0 when
 * it was data or the end of the connection. */
static int
idle_quiet(loop *l, conn *c)
{
	return c->ssl != NULL && conn_read(c, l->rbuf, RBUF_SIZE) == IO_WANT;
}

static void
on_connected(loop *l, conn *c, uint64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
	    || err != 0) {
		count_error(l, c, LG_ERR_CONNECT);
		conn_close(l, c, now + RETRY_NS);
		return;
	}
	if (!l->o->tls) {
		conn_free(l, c, now);
		return;
	}
	c->ssl = lg_tls_open(l->o->tls_ctx, c->fd, l->o->host);
	if (c->ssl == NULL) {
		count_error(l, c, LG_ERR_CONNECT);
		conn_close(l, c, now + RETRY_NS);
		return;
	}
	c->state = C_HANDSHAKE;
	tls_step(l, c, now);
}

static void
handle(loop *l, conn *c, uint32_t ev, uint64_t now)
{
	switch (c->state) {
	case C_CONNECTING:
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			on_connected(l, c, now);
		break;
	case C_HANDSHAKE:
		tls_step(l, c, now);
		break;
	case C_SEND:
		if (ev & (EPOLLERR | EPOLLHUP)) {
			fail(l, c, LG_ERR_IO, now);
			break;
		}
		if (ev & EPOLLOUT)
			send_more(l, c, now);
		if (c->state == C_RECV && (ev & (EPOLLIN | EPOLLRDHUP)))
			recv_more(l, c, now);
		break;
	case C_RECV:
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
			recv_more(l, c, now);
		break;
	case C_IDLE:
		if ((ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) == 0
		    && (ev & EPOLLIN) && idle_quiet(l, c))
			break;
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
			/* the server closed a kept-alive connection: take it
			 * off the idle stack and open another */
			for (uint32_t i = 0; i < l->nidle; i++) {
				if (l->idle[i] == (uint32_t)(c - l->conns)) {
					l->idle[i] = l->idle[--l->nidle];
					break;
				}
			}
			conn_close(l, c, now);
			conn_open(l, c, now);
		}
		break;
	default:
		break;
	}
}

/* Timeouts and reconnects. */
static void
scan(loop *l, uint64_t now)
{
	uint64_t to = l->o->timeout_ns;
	for (uint32_t i = 0; i < l->nconns; i++) {
		conn *c = &l->conns[i];
		switch (c->state) {
		case C_DOWN:
			if (now >= c->t_state)
				conn_open(l, c, now);
			break;
		case C_CONNECTING:
		case C_HANDSHAKE:
			if (now - c->t_state > to) {
				count_error(l, c, LG_ERR_CONNECT);
				conn_close(l, c, now);
				conn_open(l, c, now);
			}
			break;
		case C_SEND:
		case C_RECV:
			if (now - c->t_sent > to)
				fail(l, c, LG_ERR_TIMEOUT, now);
			break;
		default:
			break;
		}
	}
}

static uint64_t
due_at(const loop *l, uint64_t k)
{
	return l->first_due + k * l->interval;
}

/* Open loop: hand every due request to an idle connection. */
static void
dispatch(loop *l, uint64_t now)
{
	while (l->nidle > 0 && may_issue(l) && due_at(l, l->next_k) <= now) {
		conn *c = &l->conns[l->idle[--l->nidle]];
		uint64_t due = due_at(l, l->next_k);
		l->next_k++;
		start_request(l, c, due, now);
	}
}

static int
loop_init(loop *l, lg_thread *t)
{
	const lg_opts *o = t->sh->opts;
	memset(l, 0, sizeof(*l));
	l->t = t;
	l->o = o;
	l->ep = -1;
	uint32_t share = o->conns / o->threads
	    + (t->idx < o->conns % o->threads ? 1u : 0u);
	l->nconns = share;
	l->quota = UINT64_MAX;
	if (o->requests) {
		l->quota = o->requests / o->threads
		    + (t->idx < o->requests % o->threads ? 1u : 0u);
	}
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	l->conns = calloc(share ? share : 1, sizeof(conn));
	l->idle = calloc(share ? share : 1, sizeof(uint32_t));
	l->rbuf = malloc(RBUF_SIZE);
	if (l->ep < 0 || !l->conns || !l->idle || !l->rbuf
	    || build_request(l) != 0)
		return -1;
	for (uint32_t i = 0; i < share; i++)
		l->conns[i].fd = -1;
	return 0;
}

static void
loop_fini(loop *l)
{
	for (uint32_t i = 0; l->conns && i < l->nconns; i++) {
		lg_tls_close(l->conns[i].ssl);
		if (l->conns[i].fd >= 0)
			close(l->conns[i].fd);
	}
	if (l->ep >= 0)
		close(l->ep);
	free(l->conns);
	free(l->idle);
	free(l->rbuf);
	free(l->req);
}

static void
poll_once(loop *l, uint64_t now, uint64_t wait_ns)
{
	struct epoll_event evs[MAX_EVENTS];
	struct timespec ts = { .tv_sec = (time_t)(wait_ns / 1000000000u),
		.tv_nsec = (long)(wait_ns % 1000000000u) };
	int n = epoll_pwait2(l->ep, evs, MAX_EVENTS, &ts, NULL);
	if (n <= 0)
		return;
	now = lg_now_ns();
	for (int i = 0; i < n; i++)
		handle(l, evs[i].data.ptr, evs[i].events, now);
}

/* Connect phase: open every connection, wait until none is pending. */
static void
connect_all(loop *l)
{
	uint64_t t0 = lg_now_ns();
	for (uint32_t i = 0; i < l->nconns; i++)
		conn_open(l, &l->conns[i], t0);
	for (;;) {
		uint64_t now = lg_now_ns();
		uint32_t pending = 0;
		for (uint32_t i = 0; i < l->nconns; i++)
			pending += l->conns[i].state == C_CONNECTING
			    || l->conns[i].state == C_HANDSHAKE;
		if (pending == 0 || now - t0 > CONNECT_PHASE_NS)
			break;
		poll_once(l, now, SCAN_NS);
	}
}

static void
finish_counts(loop *l, uint64_t now)
{
	lg_stats *st = &l->t->st;
	st->abandoned += l->inflight;
	if (l->o->rate && l->interval) {
		/* requests due in the last millisecond had no chance yet */
		now = now > 1000000u ? now - 1000000u : 0;
		uint64_t end_k = now >= l->first_due
		    ? (now - l->first_due) / l->interval + 1u
		    : 0;
		if (end_k > l->quota)
			end_k = l->quota;
		if (end_k > l->next_k)
			st->unsent = end_k - l->next_k;
	}
}

void *
lg_thread_main(void *arg)
{
	lg_thread *t = arg;
	lg_shared *sh = t->sh;
	const lg_opts *o = sh->opts;
	loop l;
	int ok = loop_init(&l, t) == 0;

	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	lg_hist_init(&t->st.latency);
	lg_hist_init(&t->st.service);
	lg_hist_init(&t->st.ttft);
	lg_hist_init(&t->st.gap);
	if (ok)
		connect_all(&l);
	else
		t->st.errors[LG_ERR_CONNECT]++;
	atomic_store(&t->live.connected, 1);
	pthread_barrier_wait(&sh->ready);
	pthread_barrier_wait(&sh->go);
	if (!ok)
		goto out;
	l.running = 1;
	l.warmup_end = sh->start_ns + o->warmup_ns;
	if (o->rate) {
		/* threads interleave: thread i sends at offsets i/threads */
		l.interval = 1000000000u * (uint64_t)o->threads / o->rate;
		if (l.interval == 0)
			l.interval = 1;
		l.first_due = sh->start_ns + l.interval * t->idx / o->threads;
	}
	uint64_t now = lg_now_ns();
	/* closed loop: every idle connection starts now */
	if (!o->rate) {
		uint32_t n = l.nidle;
		l.nidle = 0;
		uint32_t *tmp = malloc((n ? n : 1) * sizeof(uint32_t));
		if (tmp) {
			memcpy(tmp, l.idle, n * sizeof(uint32_t));
			for (uint32_t i = 0; i < n; i++)
				conn_free(&l, &l.conns[tmp[i]], now);
			free(tmp);
		}
	}
	uint64_t next_scan = now + SCAN_NS;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		now = lg_now_ns();
		if (o->rate)
			dispatch(&l, now);
		if (now >= next_scan) {
			scan(&l, now);
			next_scan = now + SCAN_NS;
		}
		if (l.issued >= l.quota && l.inflight == 0)
			break;
		uint64_t wait = next_scan > now ? next_scan - now : 0;
		if (o->rate && l.nidle > 0 && l.issued < l.quota) {
			uint64_t due = due_at(&l, l.next_k);
			uint64_t w = due > now ? due - now : 0;
			if (w < wait)
				wait = w;
		}
		poll_once(&l, now, wait);
	}
	finish_counts(&l, lg_now_ns());
out:
	loop_fini(&l);
	atomic_store(&t->live.finished, 1);
	return NULL;
}
