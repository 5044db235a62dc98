#include <stdio.h>

#include "cmd/serve.h"

int
pf_cmd_serve(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "%s: not built yet\n", argv[0]);
	return 1;
}
