/*
 * main.c -- planktonfly: subcommand dispatch only.
 */
#include <stdio.h>
#include <string.h>

#include "accountant/cmd.h"
#include "bench/loadgen.h"
#include "bench/mock.h"
#include "cmd/serve.h"
#include "ingress/server.h"
#include "workers/worker.h"

#ifndef PF_VERSION
#define PF_VERSION "unknown"
#endif

typedef int (*cmd_fn)(int argc, char **argv);

static int cmd_version(int argc, char **argv);

static const struct {
	const char *name;
	cmd_fn fn;
	const char *help;
} commands[] = {
	{ "serve", pf_cmd_serve, "run every role in one process (inproc://)" },
	{ "ingress", ing_cmd, "run the client-facing HTTP ingress" },
	{ "worker", wrk_cmd, "run an upstream relay worker" },
	{ "accountant", acct_cmd_accountant, "run the billing accountant" },
	{ "migrate", acct_cmd_migrate, "apply database migrations" },
	{ "replay", acct_cmd_replay, "re-apply event logs and spools" },
	{ "mock-model", mock_cmd, "run the mock OpenAI-compatible model" },
	{ "admin", acct_cmd_admin, "manage users, tokens, channels, prices" },
	{ "bench", lg_cmd, "load-test an OpenAI-compatible endpoint" },
	{ "version", cmd_version, "print the version" },
};

static int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("planktonfly %s\n", PF_VERSION);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: planktonfly COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
	fprintf(f,
	    "\nRun 'planktonfly COMMAND --help' for a command's "
	    "options.\nConfiguration: PF_* environment variables, "
	    "optionally --config FILE.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
	    || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(0, NULL);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "planktonfly: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
