/*
 * h1.c -- the transfer thread's own HTTP/1.1 client (see h1.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/grow.h"
#include "common/limits.h"
#include "workers/h1.h"

/* bytes asked of one recv; the thread's scratch buffer also holds what a
 * connection kept (up to a whole head) in front of them */
#define READ_CHUNK (16u * 1024u)
#define SCRATCH_SIZE (PF_UPSTREAM_HEADER_MAX + READ_CHUNK)
/* recvs per readiness event before other connections get a turn */
#define READS_PER_EVENT 4
/* addresses with an idle pool, and idle connections kept per address */
#define KEYS_MAX 64u
#define IDLE_PER_KEY 256u
/* an idle connection older than this is closed, not reused (curl's
 * CURLOPT_MAXAGE_CONN default) */
#define IDLE_AGE_MS 118000
/* TCP keep-alive probes on upstream connections (curl's defaults) */
#define KEEPALIVE_S 60

enum cstate {
	C_CONNECTING, /* non-blocking connect in progress */
	C_SENDING,    /* request head or body not all sent */
	C_WAITING,    /* request sent; answer under way */
	C_DONE,       /* finished (on the done list until taken) */
	C_IDLE,       /* in the pool, no lease */
};

struct key {
	int family;
	uint16_t port;
	uint8_t addr[16];
	wrk_h1_conn *idle; /* most recently used first */
	uint32_t n_idle;
};

struct wrk_h1_conn {
	wrk_h1 *c;
	int fd;
	enum cstate st;
	uint32_t events;    /* epoll interest now; UINT32_MAX: not in the set */
	struct key *key;    /* NULL: never pooled */
	wrk_h1_conn *inext; /* idle list */
	int64_t idle_since;
	wrk_h1_conn *dnext, **dprev; /* done list */

	/* the lease */
	wrk_h1_body_cb cb;
	void *arg;
	wrk_h1resp resp;
	pf_ctype ctype; /* the answer's, copied from its head */
	wrk_h1_result res;
	int os_errno;
	uint8_t reused;   /* the lease began on a kept-alive connection */
	uint8_t retried;  /* a fresh connection replaced a dead reused one */
	uint8_t got_byte; /* a byte of the answer arrived */
	uint8_t paused;
	uint8_t reusable;
	uint32_t gen;     /* sockets this lease has had (a retry opens one) */
	wrk_h1_addr addr; /* where it connects (a retry connects again) */
	char *head;       /* request head, owned */
	size_t head_len;
	const uint8_t *body; /* borrowed */
	size_t body_len;
	size_t sent;   /* of head_len + body_len */
	uint8_t *left; /* bytes kept for the next feed, owned */
	size_t left_len;
};

struct wrk_h1 {
	wrk_cloop *loop;
	wrk_h1_conn **by_fd;
	size_t n_by_fd;
	struct key keys[KEYS_MAX];
	size_t n_keys;
	wrk_h1_conn *done;
	uint8_t *scratch; /* SCRATCH_SIZE, allocated at first read */
};

pf_err
wrk_h1_new(wrk_cloop *loop, wrk_h1 **ret)
{
	wrk_h1 *c = calloc(1, sizeof *c);

	if (c == NULL)
		return PF_ENOMEM;
	c->loop = loop;
	*ret = c;
	return PF_OK;
}

/* ---- targets ------------------------------------------------------------ */

static int
parse_port(const char *p, size_t n, uint16_t *ret)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*ret = (uint16_t)v;
	return 0;
}

int
wrk_h1_parse_url(const char *url, wrk_h1_target *t)
{
	const char *a, *slash, *end, *hend, *colon;
	char host[64];
	uint16_t port = 80;
	size_t hl;

	if (strncasecmp(url, "http://", 7) != 0)
		return -1;
	a = url + 7;
	end = a + strlen(a);
	slash = memchr(a, '/', (size_t)(end - a));
	if (slash == NULL)
		slash = end;
	if (slash == a || memchr(a, '@', (size_t)(slash - a)) != NULL
	    || memchr(a, '?', (size_t)(slash - a)) != NULL
	    || memchr(a, '#', (size_t)(slash - a)) != NULL)
		return -1;
	memset(t, 0, sizeof *t);
	if (*a == '[') {
		hend = memchr(a, ']', (size_t)(slash - a));
		if (hend == NULL)
			return -1;
		colon = hend + 1 < slash ? hend + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return -1;
		hl = (size_t)(hend - a - 1);
		if (hl == 0 || hl >= sizeof host)
			return -1;
		memcpy(host, a + 1, hl);
		host[hl] = 0;
		if (inet_pton(AF_INET6, host, &t->addr.in6.sin6_addr) != 1)
			return -1;
		t->addr.in6.sin6_family = AF_INET6;
	} else {
		colon = memchr(a, ':', (size_t)(slash - a));
		hend = colon != NULL ? colon : slash;
		hl = (size_t)(hend - a);
		if (hl == 0 || hl >= sizeof host)
			return -1;
		memcpy(host, a, hl);
		host[hl] = 0;
		/* inet_pton takes only the dotted-quad form: names go to
		 * curl */
		if (inet_pton(AF_INET, host, &t->addr.in4.sin_addr) != 1)
			return -1;
		t->addr.in4.sin_family = AF_INET;
	}
	if (colon != NULL
	    && parse_port(colon + 1, (size_t)(slash - colon - 1), &port) != 0)
		return -1;
	if (t->addr.sa.sa_family == AF_INET6)
		t->addr.in6.sin6_port = htons(port);
	else
		t->addr.in4.sin_port = htons(port);
	t->authority = a;
	t->authority_len = (size_t)(slash - a);
	t->path = *slash == '/' ? slash : "/";
	t->path_len = *slash == '/' ? (size_t)(end - slash) : 1;
	return 0;
}

/* ---- the pool ------------------------------------------------------------ */

static void
key_of(const wrk_h1_target *t, struct key *k)
{
	memset(k, 0, sizeof *k);
	k->family = t->addr.sa.sa_family;
	if (k->family == AF_INET6) {
		k->port = t->addr.in6.sin6_port;
		memcpy(k->addr, &t->addr.in6.sin6_addr, 16);
	} else {
		k->port = t->addr.in4.sin_port;
		memcpy(k->addr, &t->addr.in4.sin_addr, 4);
	}
}

/* The pool entry for t, added when new; NULL when the table is full. */
static struct key *
key_find(wrk_h1 *c, const wrk_h1_target *t)
{
	struct key k;

	key_of(t, &k);
	for (size_t i = 0; i < c->n_keys; i++) {
		struct key *e = &c->keys[i];

		if (e->family == k.family && e->port == k.port
		    && memcmp(e->addr, k.addr, 16) == 0)
			return e;
	}
	if (c->n_keys == KEYS_MAX)
		return NULL;
	c->keys[c->n_keys] = k;
	return &c->keys[c->n_keys++];
}

static void
fd_forget(wrk_h1 *c, int fd)
{
	if (fd >= 0 && (size_t)fd < c->n_by_fd)
		c->by_fd[fd] = NULL;
}

static int
fd_note(wrk_h1 *c, wrk_h1_conn *k)
{
	size_t fd = (size_t)k->fd;

	if (fd >= c->n_by_fd) {
		size_t old = c->n_by_fd;
		wrk_h1_conn **nv
		    = pf_grow(c->by_fd, &c->n_by_fd, fd + 1, sizeof *nv);

		if (nv == NULL)
			return -1;
		memset(nv + old, 0, (c->n_by_fd - old) * sizeof *nv);
		c->by_fd = nv;
	}
	c->by_fd[fd] = k;
	return 0;
}

/* Close k's socket (its epoll entry goes with it). */
static void
close_sock(wrk_h1_conn *k)
{
	if (k->fd < 0)
		return;
	fd_forget(k->c, k->fd);
	close(k->fd);
	k->fd = -1;
	k->events = UINT32_MAX;
}

static void
lease_clear(wrk_h1_conn *k)
{
	free(k->head);
	k->head = NULL;
	free(k->left);
	k->left = NULL;
	k->left_len = 0;
	k->body = NULL;
	pf_ctype_clear(&k->ctype);
}

static void
conn_free(wrk_h1_conn *k)
{
	close_sock(k);
	lease_clear(k);
	free(k);
}

static int
set_events(wrk_h1_conn *k, uint32_t ev)
{
	int add = k->events == UINT32_MAX;

	if (k->events == ev)
		return 0;
	if (wrk_cloop_own(k->c->loop, k->fd, ev, add) != PF_OK)
		return -1;
	k->events = ev;
	return 0;
}

/* The epoll interest k's state calls for.  While the request is being
 * sent the answer is read too: an upstream may answer (an error,
 * typically) and close before it read the whole body. */
static uint32_t
want(const wrk_h1_conn *k)
{
	switch (k->st) {
	case C_CONNECTING:
		return EPOLLOUT;
	case C_SENDING:
		return EPOLLOUT | (k->paused ? 0u : (uint32_t)EPOLLIN);
	case C_WAITING:
		return k->paused ? 0u : (uint32_t)EPOLLIN;
	default:
		return EPOLLIN;
	}
}

static int
rearm(wrk_h1_conn *k)
{
	return set_events(k, want(k));
}

static void
done_push(wrk_h1_conn *k, wrk_h1_result res, int os_errno)
{
	wrk_h1 *c = k->c;

	k->st = C_DONE;
	k->res = res;
	k->os_errno = os_errno;
	if (res != WRK_H1_OK)
		k->reusable = 0;
	k->dnext = c->done;
	if (c->done != NULL)
		c->done->dprev = &k->dnext;
	c->done = k;
	k->dprev = &c->done;
}

static void
done_unlink(wrk_h1_conn *k)
{
	if (k->dprev == NULL)
		return;
	*k->dprev = k->dnext;
	if (k->dnext != NULL)
		k->dnext->dprev = k->dprev;
	k->dnext = NULL;
	k->dprev = NULL;
}

/* ---- sending ------------------------------------------------------------- */

static int
line_has(const char *line, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(line, name, n) == 0
	    && (line[n] == ':' || line[n] == ';');
}

static int
list_has(const struct curl_slist *l, const char *name)
{
	for (; l != NULL; l = l->next)
		if (line_has(l->data, name))
			return 1;
	return 0;
}

/* Append s[0..n) to the head being built at b (cap bytes, *len used). */
static int
put(char *b, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n > cap - *len)
		return -1;
	memcpy(b + *len, s, n);
	*len += n;
	return 0;
}

#define PUTS(s) put(b, cap, &len, (s), strlen(s))

/* Build the request head into k->head. */
static pf_err
build_head(wrk_h1_conn *k, const wrk_h1_target *t, const wrk_h1_req *req)
{
	const struct curl_slist *l;
	size_t cap = 256 + strlen(req->method) + t->path_len + t->authority_len,
	       len = 0;
	char num[32], *b;
	int bad = 0;

	for (l = req->headers; l != NULL; l = l->next)
		cap += strlen(l->data) + 4;
	b = malloc(cap);
	if (b == NULL)
		return PF_ENOMEM;
	bad |= PUTS(req->method);
	bad |= PUTS(" ");
	bad |= put(b, cap, &len, t->path, t->path_len);
	bad |= PUTS(" HTTP/1.1\r\nHost: ");
	bad |= put(b, cap, &len, t->authority, t->authority_len);
	bad |= PUTS("\r\n");
	if (!list_has(req->headers, "User-Agent"))
		bad |= PUTS("User-Agent: planktonfly\r\n");
	if (!list_has(req->headers, "Accept"))
		bad |= PUTS("Accept: */*\r\n");
	for (l = req->headers; l != NULL; l = l->next) {
		const char *s = l->data, *colon = strchr(s, ':');
		size_t n = strlen(s);

		if (colon == NULL) {
			/* "Name;": the header with an empty value */
			if (n == 0 || s[n - 1] != ';')
				continue;
			bad |= put(b, cap, &len, s, n - 1);
			bad |= PUTS(":\r\n");
			continue;
		}
		if (colon[1 + strspn(colon + 1, " \t")] == 0)
			continue; /* "Name:": a default left out */
		if (line_has(s, "Content-Length") || line_has(s, "Host")
		    || line_has(s, "Transfer-Encoding")
		    || line_has(s, "Connection"))
			continue; /* ours to say */
		bad |= put(b, cap, &len, s, n);
		bad |= PUTS("\r\n");
	}
	if (req->send_length) {
		snprintf(
		    num, sizeof num, "Content-Length: %zu\r\n", req->body_len);
		bad |= PUTS(num);
	}
	bad |= PUTS("\r\n");
	if (bad) {
		free(b);
		return PF_ETOOBIG;
	}
	k->head = b;
	k->head_len = len;
	return PF_OK;
}

static void fail(wrk_h1_conn *k, wrk_h1_result res, int os_errno);
static void read_some(wrk_h1_conn *k);

/* Send what is left of the request; then wait for the answer. */
static void
send_some(wrk_h1_conn *k)
{
	struct iovec iov[2];
	struct msghdr mh;
	size_t total = k->head_len + k->body_len;
	ssize_t n;
	int niov, e;
	uint32_t gen = k->gen;

	k->st = C_SENDING;
	while (k->sent < total) {
		niov = 0;
		if (k->sent < k->head_len) {
			iov[niov].iov_base = k->head + k->sent;
			iov[niov].iov_len = k->head_len - k->sent;
			niov++;
			if (k->body_len > 0) {
				iov[niov].iov_base = (void *)k->body;
				iov[niov].iov_len = k->body_len;
				niov++;
			}
		} else {
			iov[0].iov_base
			    = (void *)(k->body + (k->sent - k->head_len));
			iov[0].iov_len = total - k->sent;
			niov = 1;
		}
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)niov;
		n = sendmsg(k->fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (rearm(k) != 0)
					fail(k, WRK_H1_LOCAL, ENOMEM);
				return;
			}
			/* it may have answered, then closed: what it said
			 * counts more than the broken send */
			e = errno;
			if (!k->paused && k->fd >= 0) {
				read_some(k);
				/* done, or a retry on a new socket took over */
				if (k->st != C_SENDING || k->gen != gen)
					return;
			}
			fail(k, WRK_H1_BROKEN, e);
			return;
		}
		k->sent += (size_t)n;
	}
	k->st = C_WAITING;
	if (rearm(k) != 0)
		fail(k, WRK_H1_LOCAL, ENOMEM);
}

/* Connect k to its target: sending starts at once when the connection
 * is made at once (loopback), else at EPOLLOUT. */
static void
connect_fresh(wrk_h1_conn *k)
{
	const wrk_h1_addr *a = &k->addr;
	socklen_t alen
	    = a->sa.sa_family == AF_INET6 ? sizeof a->in6 : sizeof a->in4;
	int one = 1, idle = KEEPALIVE_S, fd;

	k->st = C_CONNECTING;
	k->gen++;
	k->sent = 0;
	k->got_byte = 0;
	fd = socket(
	    a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		done_push(k, WRK_H1_LOCAL, errno);
		return;
	}
	k->fd = fd;
	k->events = UINT32_MAX;
	if (fd_note(k->c, k) != 0) {
		close_sock(k);
		done_push(k, WRK_H1_LOCAL, ENOMEM);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof idle);
	if (connect(fd, &a->sa, alen) == 0) {
		send_some(k);
		return;
	}
	if (errno != EINPROGRESS) {
		int e = errno;

		close_sock(k);
		done_push(k,
		    e == EADDRNOTAVAIL || e == ENOBUFS || e == ENOMEM
		        ? WRK_H1_LOCAL
		        : WRK_H1_CONNECT,
		    e);
		return;
	}
	if (rearm(k) != 0) {
		close_sock(k);
		done_push(k, WRK_H1_LOCAL, ENOMEM);
	}
}

/* A reused connection died before any byte of the answer: the upstream
 * had closed it while idle.  Start over once on a new one. */
static int
retry_fresh(wrk_h1_conn *k)
{
	if (!k->reused || k->retried || k->got_byte)
		return 0;
	k->retried = 1;
	close_sock(k);
	free(k->left);
	k->left = NULL;
	k->left_len = 0;
	wrk_h1resp_init(&k->resp, k->resp.no_body);
	connect_fresh(k);
	return 1;
}

static void
fail(wrk_h1_conn *k, wrk_h1_result res, int os_errno)
{
	if ((res == WRK_H1_BROKEN) && retry_fresh(k))
		return;
	close_sock(k);
	done_push(k, res, os_errno);
}

/* Take an idle connection to key from the pool, closing stale ones. */
static wrk_h1_conn *
pool_get(struct key *key)
{
	wrk_h1_conn *k = key->idle;
	int64_t now;

	if (k == NULL)
		return NULL;
	now = pf_mono_ms();
	if (now - k->idle_since > IDLE_AGE_MS) {
		/* the rest are older still */
		while ((k = key->idle) != NULL) {
			key->idle = k->inext;
			key->n_idle--;
			conn_free(k);
		}
		return NULL;
	}
	key->idle = k->inext;
	key->n_idle--;
	k->inext = NULL;
	return k;
}

static void
pool_unlink(wrk_h1_conn *k)
{
	wrk_h1_conn **pp;

	if (k->key == NULL)
		return;
	for (pp = &k->key->idle; *pp != NULL; pp = &(*pp)->inext) {
		if (*pp == k) {
			*pp = k->inext;
			k->key->n_idle--;
			return;
		}
	}
}

pf_err
wrk_h1_start(wrk_h1 *c, const wrk_h1_target *t, const wrk_h1_req *req,
    wrk_h1_body_cb cb, void *arg, wrk_h1_conn **ret)
{
	struct key *key = key_find(c, t);
	wrk_h1_conn *k = key != NULL ? pool_get(key) : NULL;
	int reused = k != NULL;
	pf_err err;

	if (k == NULL) {
		k = calloc(1, sizeof *k);
		if (k == NULL)
			return PF_ENOMEM;
		k->c = c;
		k->fd = -1;
		k->events = UINT32_MAX;
		k->key = key;
	}
	k->addr = t->addr;
	err = build_head(k, t, req);
	if (err != PF_OK) {
		if (reused)
			conn_free(k); /* not worth keeping on this path */
		else
			free(k);
		return err == PF_ETOOBIG ? PF_ENOMEM : err;
	}
	k->cb = cb;
	k->arg = arg;
	k->body = req->body;
	k->body_len = req->body_len;
	k->sent = 0;
	k->reused = (uint8_t)reused;
	k->retried = 0;
	k->got_byte = 0;
	k->paused = 0;
	k->reusable = 0;
	k->res = WRK_H1_OK;
	k->os_errno = 0;
	wrk_h1resp_init(&k->resp, strcmp(req->method, "HEAD") == 0);
	*ret = k;
	if (reused)
		send_some(k);
	else
		connect_fresh(k);
	return PF_OK;
}

const wrk_h1resp *
wrk_h1_resp(const wrk_h1_conn *k)
{
	return &k->resp;
}

void
wrk_h1_take_ctype(wrk_h1_conn *k, pf_ctype *ret)
{
	pf_ctype_clear(ret);
	*ret = k->ctype;
	k->ctype = (pf_ctype) { 0 };
}

int
wrk_h1_connected(const wrk_h1_conn *k)
{
	return k->st != C_CONNECTING;
}

int
wrk_h1_sent(const wrk_h1_conn *k)
{
	return k->st == C_WAITING
	    || (k->st == C_DONE && k->sent == k->head_len + k->body_len);
}

/* ---- receiving ----------------------------------------------------------- */

static wrk_h1_result
result_for(pf_err err)
{
	switch (err) {
	case PF_ECANCELED:
		return WRK_H1_ABORTED;
	case PF_ETOOBIG:
		return WRK_H1_TOO_BIG;
	default:
		return WRK_H1_BAD_REPLY;
	}
}

/* Keep p[0..n) for the next feed (p may point into k->left). */
static int
keep(wrk_h1_conn *k, const uint8_t *p, size_t n)
{
	uint8_t *nb;

	if (n == 0) {
		free(k->left);
		k->left = NULL;
		k->left_len = 0;
		return 0;
	}
	if (p == k->left) {
		k->left_len = n;
		return 0;
	}
	if (k->left != NULL && p > k->left && p < k->left + k->left_len) {
		memmove(k->left, p, n);
		k->left_len = n;
		return 0;
	}
	nb = realloc(k->left, n);
	if (nb == NULL)
		return -1;
	memcpy(nb, p, n);
	k->left = nb;
	k->left_len = n;
	return 0;
}

/* The answer is complete. */
static void
complete(wrk_h1_conn *k, size_t extra)
{
	/* bytes beyond the answer: the connection's framing is lost */
	k->reusable = (uint8_t)(k->resp.keep_alive && extra == 0
	    && k->sent == k->head_len + k->body_len);
	free(k->left);
	k->left = NULL;
	k->left_len = 0;
	if (!k->reusable)
		close_sock(k);
	done_push(k, WRK_H1_OK, 0);
}

/* The head just parsed from the bytes at p: keep its Content-Type (these
 * bytes are gone by the time the owner looks).  -1: out of memory. */
static int
keep_ctype(wrk_h1_conn *k, const uint8_t *p)
{
	const wrk_h1resp *r = &k->resp;
	pf_err err;

	if (!r->has_ctype)
		return 0;
	err = pf_ctype_set(
	    &k->ctype, (const char *)p + r->ctype_at, r->ctype_len);
	/* one over PF_CTYPE_MAX is dropped: the answer counts as untyped */
	return err == PF_ENOMEM ? -1 : 0;
}

/* Feed p[0..n) to the parser and the callback.  Returns 1 when the lease
 * went to the done list, else 0 (the rest is kept). */
static int
feed(wrk_h1_conn *k, const uint8_t *p, size_t n)
{
	size_t at = 0, used;
	pf_err err;

	while (at < n) {
		int had_head = wrk_h1resp_has_head(&k->resp);

		err = wrk_h1resp_feed(
		    &k->resp, p + at, n - at, &used, k->cb, k->arg);
		if (!had_head && wrk_h1resp_has_head(&k->resp)
		    && keep_ctype(k, p + at) != 0) {
			fail(k, WRK_H1_LOCAL, ENOMEM);
			return 1;
		}
		at += used;
		if (err == PF_EAGAIN) {
			k->paused = 1;
			if (rearm(k) != 0) {
				fail(k, WRK_H1_LOCAL, ENOMEM);
				return 1;
			}
			break;
		}
		if (err != PF_OK) {
			fail(k, result_for(err), 0);
			return 1;
		}
		if (wrk_h1resp_done(&k->resp)) {
			complete(k, n - at);
			return 1;
		}
		if (used == 0)
			break; /* an unfinished unit: wait for more */
	}
	if (keep(k, p + at, n - at) != 0) {
		fail(k, WRK_H1_LOCAL, ENOMEM);
		return 1;
	}
	return 0;
}

/* The connection ended (read 0). */
static void
at_eof(wrk_h1_conn *k)
{
	if (!k->got_byte && retry_fresh(k))
		return;
	if (k->left_len == 0 && wrk_h1resp_eof(&k->resp) == PF_OK) {
		complete(k, 1); /* not reusable: it ended */
		return;
	}
	fail(k, WRK_H1_BROKEN, 0);
}

static void
read_some(wrk_h1_conn *k)
{
	wrk_h1 *c = k->c;
	ssize_t n;

	if (c->scratch == NULL) {
		c->scratch = malloc(SCRATCH_SIZE);
		if (c->scratch == NULL) {
			fail(k, WRK_H1_LOCAL, ENOMEM);
			return;
		}
	}
	for (int i = 0; i < READS_PER_EVENT && !k->paused; i++) {
		size_t off = k->left_len;

		/* what was kept goes in front of the new bytes */
		if (off > 0)
			memcpy(c->scratch, k->left, off);
		n = recv(k->fd, c->scratch + off, READ_CHUNK, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			fail(k, WRK_H1_BROKEN, errno);
			return;
		}
		if (n == 0) {
			at_eof(k);
			return;
		}
		if (!k->got_byte) {
			/* no retry after an answer byte: the request head
			 * is not needed again (a stream holds its lease for
			 * minutes) */
			k->got_byte = 1;
			if (k->sent >= k->head_len) {
				free(k->head);
				k->head = NULL;
			}
		}
		if (feed(k, c->scratch, off + (size_t)n))
			return;
		if ((size_t)n < READ_CHUNK)
			return;
	}
}

void
wrk_h1_resume(wrk_h1_conn *k)
{
	if (!k->paused || k->st == C_DONE)
		return;
	k->paused = 0;
	if (k->left_len > 0 && feed(k, k->left, k->left_len))
		return;
	if (!k->paused && rearm(k) != 0)
		fail(k, WRK_H1_LOCAL, ENOMEM);
}

/* The idle connection k woke: closed by the upstream, or it sent
 * something unasked.  Either way it is done. */
static void
idle_event(wrk_h1_conn *k)
{
	pool_unlink(k);
	conn_free(k);
}

void
wrk_h1_event(void *client, int fd, uint32_t events)
{
	wrk_h1 *c = client;
	wrk_h1_conn *k;
	int err = 0;
	socklen_t elen = sizeof err;

	if (fd < 0 || (size_t)fd >= c->n_by_fd)
		return;
	k = c->by_fd[fd];
	if (k == NULL)
		return;
	switch (k->st) {
	case C_IDLE:
		idle_event(k);
		return;
	case C_DONE:
		/* finished, not yet released: it will not be reused */
		k->reusable = 0;
		close_sock(k);
		return;
	case C_CONNECTING:
		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
			err = errno;
		if (err != 0) {
			close_sock(k);
			done_push(k, WRK_H1_CONNECT, err);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		send_some(k);
		return;
	case C_SENDING:
		/* an early answer (an error before the body was all sent):
		 * read it; complete, it ends the transfer */
		if (!k->paused && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
			uint32_t gen = k->gen;

			read_some(k);
			if (k->st != C_SENDING || k->gen != gen)
				return;
		}
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			send_some(k);
		return;
	case C_WAITING:
		if (!k->paused) {
			read_some(k);
			return;
		}
		/* paused with no interest, yet an error or hang-up is
		 * reported anyway, level-triggered: out of the set until
		 * wrk_h1_resume (which then reads what happened) */
		wrk_cloop_own_del(c->loop, k->fd);
		k->events = UINT32_MAX;
		return;
	}
}

/* ---- leases --------------------------------------------------------------- */

int
wrk_h1_has_done(const wrk_h1 *c)
{
	return c->done != NULL;
}

wrk_h1_conn *
wrk_h1_take_done(wrk_h1 *c, void **arg, wrk_h1_result *res, int *os_errno)
{
	wrk_h1_conn *k = c->done;

	if (k == NULL)
		return NULL;
	done_unlink(k);
	*arg = k->arg;
	*res = k->res;
	*os_errno = k->os_errno;
	return k;
}

void
wrk_h1_release(wrk_h1_conn *k)
{
	struct key *key = k->key;

	done_unlink(k);
	lease_clear(k);
	k->cb = NULL;
	k->arg = NULL;
	if (k->st != C_DONE || !k->reusable || k->fd < 0 || key == NULL
	    || key->n_idle >= IDLE_PER_KEY) {
		conn_free(k);
		return;
	}
	k->st = C_IDLE;
	k->paused = 0;
	k->idle_since = pf_mono_ms();
	k->inext = key->idle;
	key->idle = k;
	key->n_idle++;
	if (set_events(k, EPOLLIN) != 0) {
		pool_unlink(k);
		conn_free(k);
	}
}

void
wrk_h1_free(wrk_h1 *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_keys; i++) {
		wrk_h1_conn *k;

		while ((k = c->keys[i].idle) != NULL) {
			c->keys[i].idle = k->inext;
			conn_free(k);
		}
	}
	/* leased connections are their owners' to release (wrk_env_fini
	 * ends every relay before this runs) */
	free(c->by_fd);
	free(c->scratch);
	free(c);
}
