#include <stdio.h>

#include "ingress/server.h"

pf_err
ing_server_start(const pf_config *cfg, ing_server **ret)
{
	(void)cfg;
	(void)ret;
	return PF_EINVAL;
}

void
ing_server_stop(ing_server *w)
{
	(void)w;
}

void
ing_server_free(ing_server *w)
{
	(void)w;
}

int
ing_cmd(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "%s: not built yet\n", argv[0]);
	return 1;
}

unsigned
ing_server_port(const ing_server *srv)
{
	(void)srv;
	return 0;
}
