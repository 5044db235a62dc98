#include <stdio.h>

#include "bench/mock.h"

pf_err
mock_server_start(const mock_options *opt, mock_server **ret)
{
	(void)opt;
	(void)ret;
	return PF_EINVAL;
}

unsigned
mock_server_port(const mock_server *m)
{
	(void)m;
	return 0;
}

void
mock_server_free(mock_server *m)
{
	(void)m;
}

int
mock_cmd(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "%s: not built yet\n", argv[0]);
	return 1;
}
