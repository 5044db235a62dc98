/*
 * main.c -- planktonfly: subcommand dispatch only.  The split roles
 * (ingress, worker, accountant) run as planktonfly-ROLE when that
 * executable lies beside this one: it links only the role's libraries,
 * which a process pays for in RSS at start (cmd/role.c).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	int role; /* 1: a split role, run as planktonfly-NAME if there */
} commands[] = {
	{ "serve", pf_cmd_serve, "run every role in one process (inproc://)",
	    0 },
	{ "ingress", ing_cmd, "run the client-facing HTTP ingress", 1 },
	{ "worker", wrk_cmd, "run an upstream relay worker", 1 },
	{ "accountant", acct_cmd_accountant, "run the billing accountant", 1 },
	{ "migrate", acct_cmd_migrate, "apply database migrations", 0 },
	{ "replay", acct_cmd_replay, "re-apply event logs and spools", 0 },
	{ "mock-model", mock_cmd, "run the mock OpenAI-compatible model", 0 },
	{ "admin", acct_cmd_admin, "manage users, tokens, channels, prices",
	    0 },
	{ "bench", lg_cmd, "load-test an OpenAI-compatible endpoint", 0 },
	{ "version", cmd_version, "print the version", 0 },
};

static int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("planktonfly %s\n", PF_VERSION);
	return 0;
}

/* exec_role replaces this process with planktonfly-ROLE from this
 * executable's directory, passing argv (argv[0] is ROLE); returns only
 * when there is no such executable or it cannot be run, and then the
 * built-in command runs. */
static void
exec_role(char *role, char **argv)
{
	char path[PATH_MAX];

	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return;
	path[n] = '\0';
	char *slash = strrchr(path, '/');
	if (slash == NULL)
		return;
	int len = snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path),
	    "planktonfly-%s", role);
	if (len < 0 || (size_t)len >= sizeof(path) - (size_t)(slash + 1 - path))
		return;
	if (access(path, X_OK) != 0)
		return;
	argv[0] = path;
	/* saves the role executable's re-exec for this (cmd/role.c) */
	(void)setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0);
	execv(path, argv);
	argv[0] = role; /* not runnable: the built-in command */
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
		if (strcmp(argv[1], commands[i].name) == 0) {
			if (commands[i].role)
				exec_role(argv[1], argv + 1);
			return commands[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "planktonfly: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
