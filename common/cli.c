#include "common/cli.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/log.h"

int
pf_cli_config(const char *cmd, int argc, char **argv, void (*usage)(FILE *f),
    pf_config *ret_cfg)
{
	const char *path = NULL;
	char errbuf[512];
	pf_config cfg;
	pf_err err;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0
		    || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			path = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
			continue;
		}
		fprintf(stderr, "planktonfly %s: unknown option '%s'\n", cmd,
		    argv[i]);
		usage(stderr);
		return 2;
	}
	err = pf_config_load(path, environ, &cfg, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly %s: %s\n", cmd, errbuf);
		return 2;
	}
	pf_log_set_level(cfg.log_level);
	*ret_cfg = cfg;
	return -1;
}

void
pf_cli_block_signals(sigset_t *ret_set)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	*ret_set = set;
}

void
pf_cli_tune_process(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getenv("MALLOC_ARENA_MAX") == NULL)
		(void)mallopt(M_ARENA_MAX, PF_MALLOC_ARENAS);
	/* libpq's default gssencmode=prefer initialises Kerberos on every
	 * connect (~0.7 MB resident, a krb5.conf read) to look for a ticket
	 * that a gateway rarely has.  A URL's own gssencmode still wins. */
	(void)setenv("PGGSSENCMODE", "disable", 0);
}

void
pf_cli_set_sched(const pf_config *cfg)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (cfg->sched_batch)
		(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
}

int
pf_cli_wait_signal(const sigset_t *set)
{
	struct timespec step = { PF_MALLOC_TRIM_EVERY_MS / 1000,
		(PF_MALLOC_TRIM_EVERY_MS % 1000) * 1000000L };

	for (;;) {
		int sig = sigtimedwait(set, NULL, &step);
		struct mallinfo2 mi;

		if (sig > 0)
			return sig;
		if (errno != EAGAIN)
			continue; /* EINTR */
		mi = mallinfo2();
		if (mi.fordblks > PF_MALLOC_TRIM_FREE)
			(void)malloc_trim(0);
	}
}
