/*
 * cmd.c -- `planktonfly ingress`: the HTTP ingress alone (workers reached
 * over PF_WORKER_URL, replies on PF_REPLY_URL).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/limits.h"
#include "common/log.h"
#include "ingress/server.h"

/* drain lets requests in flight finish (up to PF_DRAIN_GRACE_MS) while
 * refusing new ones; a second signal cuts it short. */
static void
drain(ing_server *srv, const sigset_t *set)
{
	const struct timespec step = { 0, 100L * 1000000L };
	uint32_t waited = 0;

	ing_server_drain_begin(srv);
	pf_info("PF-INGRESS-DRAIN", "inflight=%zu grace_ms=%u",
	    ing_server_inflight(srv), PF_DRAIN_GRACE_MS);
	while (ing_server_inflight(srv) > 0 && waited < PF_DRAIN_GRACE_MS) {
		if (sigtimedwait(set, NULL, &step) > 0)
			break;
		waited += 100;
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly ingress [--config FILE]\n\n"
	    "Serves the OpenAI-compatible HTTP API on PF_LISTEN and relays\n"
	    "requests to the workers listening on PF_WORKER_URL.\n\n"
	    "options:\n"
	    "  --config FILE  read settings from FILE (env overrides it)\n"
	    "  --help         show this help\n\n");
	pf_config_usage(f);
}

int
ing_cmd(int argc, char **argv)
{
	const char *path = NULL;
	char errbuf[512];
	pf_config cfg;
	ing_server *srv = NULL;
	sigset_t set;
	int sig = 0;
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
		fprintf(stderr, "planktonfly ingress: unknown option '%s'\n",
		    argv[i]);
		usage(stderr);
		return 2;
	}
	err = pf_config_load(path, environ, &cfg, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly ingress: %s\n", errbuf);
		return 2;
	}
	pf_log_set_level(cfg.log_level);
	if (cfg.database_url[0] == '\0') {
		fprintf(stderr,
		    "planktonfly ingress: PF_DATABASE_URL is not "
		    "set\n");
		return 2;
	}
	/* before any thread starts, so every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	err = ing_server_start(&cfg, &srv);
	if (err != PF_OK) {
		pf_error("PF-INGRESS-START", "err=\"%s\"", pf_strerror(err));
		return 1;
	}
	pf_info("PF-INGRESS-READY", "listen=%s port=%u", cfg.listen,
	    ing_server_port(srv));
	sigdelset(&set, SIGPIPE);
	sigwait(&set, &sig);
	pf_info("PF-INGRESS-STOP", "signal=%d", sig);
	drain(srv, &set);
	ing_server_free(srv);
	return 0;
}
