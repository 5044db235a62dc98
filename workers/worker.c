#include <stdio.h>

#include "workers/worker.h"

pf_err
wrk_worker_start(const pf_config *cfg, wrk_worker **ret)
{
	(void)cfg;
	(void)ret;
	return PF_EINVAL;
}

void
wrk_worker_stop(wrk_worker *w)
{
	(void)w;
}

void
wrk_worker_free(wrk_worker *w)
{
	(void)w;
}

int
wrk_cmd(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "%s: not built yet\n", argv[0]);
	return 1;
}
