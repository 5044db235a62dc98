/*
 * nngfix.c -- a work-around for NNG 1.5.2's "disconnect during negotiation
 * breaks listener" (nanomsg/nng issue #1518, fixed upstream in 1.6.0;
 * Debian 12 ships 1.5.2).
 *
 * When a peer closes a new connection before NNG has written its 8-byte
 * protocol header, the write fails with EPIPE, which NNG maps to
 * NNG_ECLOSED and hands to the listener's (or dialer's) pending accept
 * (connect).  Both take NNG_ECLOSED to mean that they themselves were
 * closed and stop for good:
 * - a listener accepts no pipe again.  Worse, its transport still
 *   completes the handshake of later connections, so the peers that dial
 *   it think they are connected and send into a socket nobody reads;
 * - a dialer never redials.
 * A peer SIGKILLed while connecting is enough, and so is NNG's own check
 * for a stale ipc:// socket file: a second process listening on an
 * address in use connects to the live listener and closes at once.  With
 * our roles: a second ingress started on the first one's PF_REPLY_URL
 * left the first one deaf to every worker that connected afterwards.
 *
 * The work-around: this executable defines sendmsg(2), which NNG's
 * transports (ipc and tcp) call through their PLT, so this definition is
 * the one they get.  It calls the C library's and, when the call came from
 * libnng and failed with EPIPE, reports ECONNRESET instead: the same
 * condition (the peer is gone) under the error NNG handles as a remote
 * one (the listener accepts again, the dialer redials).  Other callers
 * see sendmsg unchanged.
 */
#include "common/nngfix.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

static sendmsg_fn real_sendmsg; /* atomic: set once, maybe by several */
static sendmsg_fn test_sendmsg; /* atomic: pf_nngfix_set_syscall */

/* from_nng says whether code address pc is in libnng. */
static int
from_nng(const void *pc)
{
	Dl_info di;

	return dladdr(pc, &di) != 0 && di.dli_fname != NULL
	    && strstr(di.dli_fname, "libnng") != NULL;
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	sendmsg_fn fn = __atomic_load_n(&test_sendmsg, __ATOMIC_ACQUIRE);
	ssize_t n;

	if (fn == NULL)
		fn = pf_nngfix_syscall();
	if (fn == NULL) { /* cannot happen with a C library underneath */
		errno = ENOSYS;
		return -1;
	}
	n = fn(fd, msg, flags);
	if (n < 0 && errno == EPIPE) /* dladdr may change errno */
		errno = from_nng(__builtin_extract_return_addr(
		            __builtin_return_address(0)))
		    ? ECONNRESET
		    : EPIPE;
	return n;
}

sendmsg_fn
pf_nngfix_syscall(void)
{
	sendmsg_fn fn = __atomic_load_n(&real_sendmsg, __ATOMIC_ACQUIRE);

	if (fn == NULL) {
		/* ISO C has no object-to-function pointer conversion; POSIX
		 * promises dlsym's result converts */
		union {
			void *obj;
			sendmsg_fn fn;
		} sym = { .obj = dlsym(RTLD_NEXT, "sendmsg") };

		fn = sym.fn;
		__atomic_store_n(&real_sendmsg, fn, __ATOMIC_RELEASE);
	}
	return fn;
}

void
pf_nngfix_set_syscall(sendmsg_fn fn)
{
	__atomic_store_n(&test_sendmsg, fn, __ATOMIC_RELEASE);
}
