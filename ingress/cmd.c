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

#include "common/cli.h"
#include "common/config.h"
#include "common/limits.h"
#include "common/log.h"
#include "ingress/server.h"

void
ing_server_drain_wait(ing_server *srv, const sigset_t *set)
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
	pf_config cfg;
	int rc;
	ing_server *srv = NULL;
	sigset_t set;
	int sig = 0;
	pf_err err;

	rc = pf_cli_config("ingress", argc, argv, usage, &cfg);
	if (rc >= 0)
		return rc;
	if (cfg.database_url[0] == '\0') {
		fprintf(stderr,
		    "planktonfly ingress: PF_DATABASE_URL is not "
		    "set\n");
		return 2;
	}
	/* before any thread starts, so every thread inherits the mask */
	pf_cli_block_signals(&set);
	pf_cli_tune_process();
	pf_cli_set_sched(&cfg);

	err = ing_server_start(&cfg, &srv);
	if (err != PF_OK) {
		pf_error("PF-INGRESS-START", "err=\"%s\"", pf_strerror(err));
		return 1;
	}
	pf_info("PF-INGRESS-READY", "listen=%s port=%u", cfg.listen,
	    ing_server_port(srv));
	sigdelset(&set, SIGPIPE);
	sig = pf_cli_wait_signal(&set);
	pf_info("PF-INGRESS-STOP", "signal=%d", sig);
	ing_server_drain_wait(srv, &set);
	ing_server_free(srv);
	return 0;
}
