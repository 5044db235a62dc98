/*
 * cloop.c -- curl_multi_socket_action over one epoll set (see cloop.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "workers/cloop.h"
#include "workers/curlfn.h"

/* epoll events taken per wait; more stay ready for the next turn */
#define READY_MAX 256
/* extra fds wrk_cloop_wait polls beside the epoll set */
#define EXTRA_MAX 32

/* what an epoll entry is, in the high half of its data */
enum tag {
	TAG_CURL = 1,  /* a socket of curl's */
	TAG_WAKE = 2,  /* the loop's eventfd */
	TAG_WATCH = 3, /* an fd that only wakes the loop */
	TAG_OWN = 4    /* an fd of the handler's (wrk_cloop_own) */
};

/* what the set holds for a curl socket, by descriptor (reg[fd]) */
#define REG_IN_SET 0x80000000u /* in the epoll set with the low bits */
#define REG_PARKED 0x40000000u /* curl let go of it: events are stray */
#define REG_EVENTS 0x0000ffffu
/* descriptors beyond this are not tracked: removed at once as before */
#define REG_FD_MAX (1 << 20)

struct wrk_cloop {
	CURLM *multi;
	uint32_t *reg; /* by fd, n_reg entries */
	size_t n_reg;
	int ep;
	int wake;
	/* a wakeup is signalled and not yet taken: later ones need no
	 * write (the billing thread resumes many connections of one loop
	 * in a row) */
	atomic_int woken;
	int64_t timer_at; /* monotonic ms of curl's timeout, INT64_MAX: none */
	wrk_cloop_fd_fn own_fn;
	void *own_arg;
	struct epoll_event ready[READY_MAX];
	int n_ready;
};

static uint64_t
data_of(enum tag t, int fd)
{
	return (uint64_t)t << 32 | (uint32_t)fd;
}

/* Watch fd for events: MOD, or ADD when it is not in the set yet (curl
 * may close a socket and get the same number back for a new one). */
static int
ep_set(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.u64 = data;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* reg_at returns fd's entry, growing the table; NULL when fd is not
 * tracked. */
static uint32_t *
reg_at(wrk_cloop *l, int fd)
{
	if (fd < 0 || fd >= REG_FD_MAX)
		return NULL;
	if ((size_t)fd >= l->n_reg) {
		size_t n = l->n_reg ? l->n_reg : 256;
		while (n <= (size_t)fd)
			n *= 2;
		uint32_t *nv = realloc(l->reg, n * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		memset(nv + l->n_reg, 0, (n - l->n_reg) * sizeof(*nv));
		l->reg = nv;
		l->n_reg = n;
	}
	return &l->reg[fd];
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
	wrk_cloop *l = arg;
	uint32_t events = 0;
	uint32_t *r = reg_at(l, s);

	(void)easy;
	(void)sockp;
	if (what == CURL_POLL_REMOVE) {
		/* kept in the set for the connection's next transfer; curl
		 * may close it: then epoll drops it (and the number's next
		 * socket passes wrk_cloop_sockopt_cb) */
		if (r != NULL && (*r & REG_IN_SET)) {
			*r |= REG_PARKED;
			return 0;
		}
		(void)epoll_ctl(l->ep, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (r != NULL && (*r & REG_IN_SET) && (*r & REG_EVENTS) == events) {
		*r &= ~REG_PARKED;
		return 0;
	}
	/* a failure leaves the transfer to curl's own timeouts */
	if (ep_set(l->ep, s, events, data_of(TAG_CURL, s)) == 0) {
		if (r != NULL)
			*r = REG_IN_SET | events;
	} else if (r != NULL) {
		*r = 0;
	}
	return 0;
}

int
wrk_cloop_sockopt_cb(void *loop, curl_socket_t fd, curlsocktype purpose)
{
	uint32_t *r = reg_at(loop, fd);

	(void)purpose;
	if (r != NULL)
		*r = 0;
	return CURL_SOCKOPT_OK;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	wrk_cloop *l = arg;

	(void)multi;
	l->timer_at = timeout_ms < 0 ? INT64_MAX : pf_mono_ms() + timeout_ms;
	return 0;
}

pf_err
wrk_cloop_new(void *multi, wrk_cloop **ret)
{
	wrk_cloop *l = calloc(1, sizeof *l);

	if (l == NULL)
		return PF_ENOMEM;
	l->multi = multi;
	l->timer_at = INT64_MAX;
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->ep < 0 || l->wake < 0
	    || ep_set(l->ep, l->wake, EPOLLIN, data_of(TAG_WAKE, l->wake))
	        != 0) {
		if (l->ep >= 0)
			close(l->ep);
		if (l->wake >= 0)
			close(l->wake);
		free(l);
		return PF_EIO;
	}
	if (multi != NULL)
		wrk_cloop_attach(l, multi);
	*ret = l;
	return PF_OK;
}

void
wrk_cloop_attach(wrk_cloop *l, void *multi)
{
	l->multi = multi;
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, (void *)l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, (void *)l);
}

void
wrk_cloop_free(wrk_cloop *l)
{
	if (l == NULL)
		return;
	/* curl_multi_cleanup still calls the socket callback for the
	 * connections it closes: detach first */
	if (l->multi != NULL) {
		curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, NULL);
		curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, NULL);
	}
	close(l->ep);
	close(l->wake);
	free(l->reg);
	free(l);
}

pf_err
wrk_cloop_watch(wrk_cloop *l, int fd)
{
	return ep_set(l->ep, fd, EPOLLIN, data_of(TAG_WATCH, fd)) == 0 ? PF_OK
	                                                               : PF_EIO;
}

void
wrk_cloop_set_handler(wrk_cloop *l, wrk_cloop_fd_fn fn, void *arg)
{
	l->own_fn = fn;
	l->own_arg = arg;
}

pf_err
wrk_cloop_own(wrk_cloop *l, int fd, uint32_t events, int add)
{
	struct epoll_event ev;
	uint32_t *r = reg_at(l, fd);

	if (r != NULL)
		*r = 0; /* whatever curl had under this number is gone */
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.u64 = data_of(TAG_OWN, fd);
	return epoll_ctl(l->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev)
	        == 0
	    ? PF_OK
	    : PF_EIO;
}

void
wrk_cloop_own_del(wrk_cloop *l, int fd)
{
	(void)epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
}

int
wrk_cloop_was_ready(const wrk_cloop *l, int fd)
{
	uint64_t want = data_of(TAG_WATCH, fd);

	for (int i = 0; i < l->n_ready; i++)
		if (l->ready[i].data.u64 == want)
			return 1;
	return 0;
}

void
wrk_cloop_wakeup(wrk_cloop *l)
{
	uint64_t one = 1;

	if (atomic_exchange(&l->woken, 1))
		return;
	/* EAGAIN: the counter is full, the loop is awake anyway */
	(void)!write(l->wake, &one, sizeof one);
}

void
wrk_cloop_run(wrk_cloop *l)
{
	int running = 0, n = l->n_ready;

	l->n_ready = 0;
	for (int i = 0; i < n; i++) {
		const struct epoll_event *ev = &l->ready[i];
		int fd = (int)(uint32_t)ev->data.u64;
		int flags = 0;

		switch ((enum tag)(ev->data.u64 >> 32)) {
		case TAG_CURL:
			if (fd >= 0 && (size_t)fd < l->n_reg
			    && (l->reg[fd] & REG_PARKED)) {
				/* an idle kept-alive connection woke (closed
				 * by the peer, most likely): out of the set;
				 * curl checks it before reusing it */
				(void)epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
				l->reg[fd] = 0;
				break;
			}
			if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
				flags |= CURL_CSELECT_IN;
			if (ev->events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (ev->events & EPOLLERR)
				flags |= CURL_CSELECT_ERR;
			/* a socket curl let go of since the wait is
			 * ignored by curl */
			curl_multi_socket_action(l->multi, fd, flags, &running);
			break;
		case TAG_OWN:
			if (l->own_fn != NULL)
				l->own_fn(l->own_arg, fd, ev->events);
			break;
		case TAG_WAKE: /* taken by wrk_cloop_wait */
		default:
			break;
		}
	}
	if (l->timer_at != INT64_MAX && pf_mono_ms() >= l->timer_at) {
		l->timer_at = INT64_MAX;
		curl_multi_socket_action(
		    l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* take_wake re-arms wrk_cloop_wakeup when the wait reported it, before
 * the caller looks for the work it announced: a wakeup after the flag is
 * cleared writes again, and one before has its work seen. */
static void
take_wake(wrk_cloop *l)
{
	uint64_t v;

	for (int i = 0; i < l->n_ready; i++) {
		if ((enum tag)(l->ready[i].data.u64 >> 32) != TAG_WAKE)
			continue;
		/* the counter first, then the flag: a wakeup between the
		 * two finds the flag set and writes nothing, but its work
		 * is looked for after this (the other order could drain a
		 * write made after the flag was cleared and leave the flag
		 * set with nothing to read: every later wakeup lost).  An
		 * exchange: it reads the last waker's, whose work it then
		 * sees */
		(void)!read(l->wake, &v, sizeof v);
		(void)atomic_exchange(&l->woken, 0);
		return;
	}
}

int
wrk_cloop_wait(wrk_cloop *l, const int *fds, size_t n, int64_t timeout_ms)
{
	struct pollfd pfd[1 + EXTRA_MAX];
	int64_t now, t = timeout_ms;
	int got, extra = 0;

	if (l->timer_at != INT64_MAX) {
		now = pf_mono_ms();
		if (t < 0 || l->timer_at - now < t)
			t = l->timer_at > now ? l->timer_at - now : 0;
	}
	if (t > INT32_MAX)
		t = INT32_MAX;
	if (n > EXTRA_MAX)
		n = EXTRA_MAX;
	if (n > 0) {
		/* one poll over the set and this turn's extra fds */
		pfd[0].fd = l->ep;
		pfd[0].events = POLLIN;
		for (size_t i = 0; i < n; i++) {
			pfd[1 + i].fd = fds[i];
			pfd[1 + i].events = POLLIN;
		}
		got = poll(pfd, 1 + n, (int)t);
		if (got <= 0)
			return 1;
		for (size_t i = 0; i < n; i++)
			if (pfd[1 + i].revents != 0)
				extra = 1;
		if (!(pfd[0].revents & POLLIN))
			return extra;
		t = 0;
	}
	got = epoll_wait(l->ep, l->ready, READY_MAX, (int)t);
	l->n_ready = got > 0 ? got : 0;
	take_wake(l);
	return extra || got <= 0;
}
