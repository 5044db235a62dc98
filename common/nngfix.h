/*
 * nngfix.h -- a work-around for NNG 1.5.2's "disconnect during negotiation
 * breaks listener" (issue #1518; see nngfix.c).
 *
 * Compiling nngfix.c into an executable is the whole work-around: it
 * defines sendmsg(2) for libnng.  Every executable that uses NNG has it
 * among its sources (common/meson.build, nngfix_src): in a static library
 * the linker would leave it out, nothing of ours calling it.
 */
#ifndef PF_COMMON_NNGFIX_H
#define PF_COMMON_NNGFIX_H

#include <sys/socket.h>
#include <sys/types.h>

/* the C library's sendmsg (NULL only without one) */
ssize_t (*pf_nngfix_syscall(void))(int, const struct msghdr *, int);

/*
 * For tests: sendmsg calls fn instead of the C library's (NULL: back to
 * it), so that a test can make a send fail as the kernel would.  fn may
 * call pf_nngfix_syscall()'s function.
 */
void pf_nngfix_set_syscall(ssize_t (*fn)(int, const struct msghdr *, int));

#endif /* PF_COMMON_NNGFIX_H */
