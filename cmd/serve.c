/*
 * serve.c -- `planktonfly serve`: the worker and the ingress in one
 * process.  With inproc:// worker and reply URLs (the defaults) they are
 * wired by an in-process lane (common/lane.h) that bypasses NNG for
 * requests and replies; other URLs go over NNG, so outside ingresses or
 * workers can join.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/serve.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/lane.h"
#include "common/limits.h"
#include "common/log.h"
#include "ingress/server.h"
#include "workers/worker.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly serve [--config FILE]\n\n"
	    "Runs every role in one process: the HTTP ingress on PF_LISTEN\n"
	    "and a worker, connected over inproc://.  SIGTERM/SIGINT drain:\n"
	    "new requests get 503 while requests in flight finish (a second\n"
	    "signal stops at once).\n\n"
	    "options:\n"
	    "  --config FILE  read settings from FILE (env overrides it)\n"
	    "  --help         show this help\n\n");
	pf_config_usage(f);
}

int
pf_cmd_serve(int argc, char **argv)
{
	pf_config cfg;
	int rc;
	wrk_worker *wrk = NULL;
	ing_server *srv = NULL;
	pf_lane *lane = NULL;
	sigset_t set;
	int sig = 0;
	pf_err err;

	rc = pf_cli_config("serve", argc, argv, usage, &cfg);
	if (rc >= 0)
		return rc;
	if (cfg.database_url[0] == '\0') {
		fprintf(
		    stderr, "planktonfly serve: PF_DATABASE_URL is not set\n");
		return 2;
	}
	/* before any thread starts, so every thread inherits the mask */
	pf_cli_block_signals(&set);

	if (strncmp(cfg.worker_url, "inproc://", 9) == 0
	    && strchr(cfg.worker_url, ',') == NULL
	    && strncmp(cfg.reply_url, "inproc://", 9) == 0) {
		err = pf_lane_new(&lane);
		if (err != PF_OK) {
			pf_error(
			    "PF-SERVE-LANE", "err=\"%s\"", pf_strerror(err));
			return 1;
		}
	}
	err = wrk_worker_start_lane(&cfg, lane, &wrk);
	if (err != PF_OK) {
		pf_error("PF-SERVE-WORKER", "err=\"%s\"", pf_strerror(err));
		pf_lane_free(lane);
		return 1;
	}
	err = ing_server_start_lane(&cfg, lane, &srv);
	if (err != PF_OK) {
		pf_error("PF-SERVE-INGRESS", "err=\"%s\"", pf_strerror(err));
		wrk_worker_free(wrk);
		pf_lane_free(lane);
		return 1;
	}
	pf_info("PF-SERVE-READY", "listen=%s port=%u", cfg.listen,
	    ing_server_port(srv));
	sigdelset(&set, SIGPIPE);
	sigwait(&set, &sig);
	pf_info("PF-SERVE-STOP", "signal=%d", sig);
	ing_server_drain_wait(srv, &set);
	ing_server_free(srv);
	wrk_worker_free(wrk);
	pf_lane_free(lane);
	return 0;
}
