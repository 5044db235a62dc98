/*
 * thread.h -- names for the threads Planktonfly starts.
 *
 * A named thread shows what it is in `top -H`, `perf report --sort comm`,
 * gdb and /proc/PID/task/TID/comm: a process runs a dozen of them
 * besides NNG's (which name their own "nng:…").
 */
#ifndef PF_COMMON_THREAD_H
#define PF_COMMON_THREAD_H

#include <sys/prctl.h>

/* pf_thread_name names the calling thread: at most 15 bytes, longer is
 * cut by the kernel. */
static inline void
pf_thread_name(const char *name)
{
	(void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

#endif
