/* test_nngfix.c -- NNG 1.5.2's issue #1518 and its work-around
 * (common/nngfix.c): a protocol header write that fails with EPIPE (the
 * peer closed the new connection) must leave neither the listener nor
 * the dialer dead.  The failure is made by the system call underneath
 * sendmsg (pf_nngfix_set_syscall), as the kernel makes it when the peer
 * is gone; everything else is NNG over ipc:// in this process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/util/platform.h>

#include "common/nngfix.h"
#include "tests/tap.h"

/* headers to fail, by side (atomic: NNG's threads send them) */
static int fail_listener, fail_dialer;
static int failed; /* how many were failed */

/* listener_side says whether fd is an accepted ipc:// socket (its own
 * address is the listener's path; a dialer's is unnamed). */
static int
listener_side(int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0
	    || sa.sun_family != AF_UNIX)
		return 0;
	return len > sizeof(sa.sun_family) && sa.sun_path[0] != '\0';
}

static ssize_t
faulty(int fd, const struct msghdr *m, int flags)
{
	size_t len = 0;

	for (size_t i = 0; i < m->msg_iovlen; i++)
		len += m->msg_iov[i].iov_len;
	if (len == 8) { /* an SP protocol header */
		int *left = listener_side(fd) ? &fail_listener : &fail_dialer;

		if (__atomic_sub_fetch(left, 1, __ATOMIC_SEQ_CST) >= 0) {
			__atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
			errno = EPIPE;
			return -1;
		}
	}
	return pf_nngfix_syscall()(fd, m, flags);
}

struct side {
	int pipes; /* live pipes (atomic) */
};

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct side *s = arg;

	(void)p;
	__atomic_add_fetch(
	    &s->pipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1, __ATOMIC_SEQ_CST);
}

static int
both_up(struct side *a, struct side *b)
{
	return __atomic_load_n(&a->pipes, __ATOMIC_SEQ_CST) == 1
	    && __atomic_load_n(&b->pipes, __ATOMIC_SEQ_CST) == 1;
}

/* connects returns whether a push socket dialing a pull socket over
 * ipc:// gets a pipe at both ends and a message through, within 5 s
 * (the dialer redials every 50 to 250 ms, as ours do). */
static int
connects(const char *url)
{
	nng_socket pull, push;
	struct side ls = { 0 }, ds = { 0 };
	nng_msg *m = NULL;
	int got = 0;

	if (nng_pull0_open(&pull) != 0 || nng_push0_open(&push) != 0)
		return 0;
	nng_pipe_notify(pull, NNG_PIPE_EV_ADD_POST, pipe_cb, &ls);
	nng_pipe_notify(pull, NNG_PIPE_EV_REM_POST, pipe_cb, &ls);
	nng_pipe_notify(push, NNG_PIPE_EV_ADD_POST, pipe_cb, &ds);
	nng_pipe_notify(push, NNG_PIPE_EV_REM_POST, pipe_cb, &ds);
	nng_socket_set_ms(push, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(push, NNG_OPT_RECONNMAXT, 250);
	nng_socket_set_ms(push, NNG_OPT_SENDTIMEO, 5000);
	nng_socket_set_ms(pull, NNG_OPT_RECVTIMEO, 5000);
	if (nng_listen(pull, url, NULL, 0) == 0
	    && nng_dial(push, url, NULL, NNG_FLAG_NONBLOCK) == 0
	    && nng_send(push, "x", 1, 0) == 0
	    && nng_recvmsg(pull, &m, 0) == 0) {
		/* the pipe callbacks may run after the message came */
		for (int i = 0; i < 50 && !both_up(&ls, &ds); i++)
			nng_msleep(100);
		got = nng_msg_len(m) == 1 && both_up(&ls, &ds);
		nng_msg_free(m);
	}
	nng_close(push);
	nng_close(pull);
	return got;
}

/* survives says whether push and pull still connect (at dir/name) when
 * the first protocol header written on one side (*side: fail_listener or
 * fail_dialer) fails with EPIPE, and that exactly that one failed. */
static int
survives(int *side, const char *dir, const char *name)
{
	char url[128];

	__atomic_store_n(&failed, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(side, 1, __ATOMIC_SEQ_CST);
	snprintf(url, sizeof(url), "ipc://%s/%s", dir, name);
	return connects(url) && __atomic_load_n(&failed, __ATOMIC_SEQ_CST) == 1;
}

int
main(void)
{
	char dir[] = "/tmp/pf-test-nngfix-XXXXXX";
	char url[128];
	int fds[2];
	char c = 'x';
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	pf_nngfix_set_syscall(faulty);

	snprintf(url, sizeof(url), "ipc://%s/a", dir);
	ok(connects(url), "no failure: push and pull connect");

	ok(survives(&fail_listener, dir, "b"),
	    "the listener's header write fails with EPIPE (its peer closed): "
	    "the listener accepts the next connection");
	ok(survives(&fail_dialer, dir, "c"),
	    "the dialer's header write fails with EPIPE: the dialer redials");

	/* a sendmsg not from libnng keeps its EPIPE */
	pf_nngfix_set_syscall(NULL);
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "socket pair");
	close(fds[1]);
	errno = 0;
	ok(sendmsg(fds[0], &mh, MSG_NOSIGNAL) < 0 && errno == EPIPE,
	    "sendmsg from elsewhere: EPIPE as the C library says (%s)",
	    strerror(errno));
	close(fds[0]);

	for (const char *n = "abc"; *n != '\0'; n++) {
		snprintf(url, sizeof(url), "%s/%c", dir, *n);
		unlink(url);
	}
	rmdir(dir);
	return tap_done();
}
