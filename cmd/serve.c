/*
 * serve.c -- `planktonfly serve`: the accountant, the worker and the
 * ingress in one process, wired over inproc:// (PF_ACCOUNTANT_URL,
 * PF_ACCOUNTANT_PUB_URL, PF_WORKER_URL, PF_REPLY_URL defaults).  With
 * inproc:// worker and reply URLs the ingress and the worker are wired by
 * an in-process lane (common/lane.h) that bypasses NNG for requests and
 * replies; other URLs go over NNG, so outside ingresses or workers can
 * join.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accountant/actor.h"
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
	    "Runs every role in one process: the accountant (event log in\n"
	    "PF_ACCOUNTANT_LOG_DIR), a worker and the HTTP ingress on\n"
	    "PF_LISTEN (usage spool in PF_SPOOL_DIR), connected over\n"
	    "inproc://.  SIGTERM/SIGINT drain:\n"
	    "new requests get 503 while requests in flight finish (a second\n"
	    "signal stops at once).\n\n"
	    "options:\n"
	    "  --config FILE  read settings from FILE (env overrides it)\n"
	    "  --help         show this help\n\n");
	pf_config_usage(f);
}

/*
 * start_fused starts the ingress with cfg->http_threads HTTP daemons and
 * the worker with as many threads, each running one daemon beside its
 * transfers: a request is read, checked, sent upstream and answered on
 * one thread.
 */
static pf_err
start_fused(const pf_config *cfg, pf_lane *lane, ing_server **ret_srv,
    wrk_worker **ret_wrk)
{
	unsigned n = cfg->http_threads > 0 ? cfg->http_threads : 1;
	pf_loop_hook hook;
	pf_err err;

	err = ing_server_start_loops(cfg, lane, n, ret_srv);
	if (err != PF_OK) {
		pf_error("PF-SERVE-INGRESS", "err=\"%s\"", pf_strerror(err));
		return err;
	}
	ing_server_loop_hook(*ret_srv, &hook);
	err = wrk_worker_start_hooked(cfg, lane, &hook, ret_wrk);
	if (err != PF_OK) {
		pf_error("PF-SERVE-WORKER", "err=\"%s\"", pf_strerror(err));
		ing_server_free(*ret_srv);
		*ret_srv = NULL;
		return err;
	}
	return PF_OK;
}

int
pf_cmd_serve(int argc, char **argv)
{
	pf_config cfg;
	int rc;
	acct_accountant *acct = NULL;
	char errbuf[512];
	wrk_worker *wrk = NULL;
	ing_server *srv = NULL;
	pf_lane *lane = NULL;
	sigset_t set;
	int sig = 0;
	int fused;
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
	pf_cli_tune_process();
	pf_cli_set_sched(&cfg);

	/* first: the ingress's billing dials it (and would wait for it) */
	err = acct_accountant_start(&cfg, &acct, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		pf_error("PF-SERVE-ACCOUNTANT", "err=\"%s\" msg=\"%s\"",
		    pf_strerror(err), errbuf);
		return 1;
	}
	if (strncmp(cfg.worker_url, "inproc://", 9) == 0
	    && strchr(cfg.worker_url, ',') == NULL
	    && strncmp(cfg.reply_url, "inproc://", 9) == 0) {
		err = pf_lane_new(&lane);
		if (err != PF_OK) {
			pf_error(
			    "PF-SERVE-LANE", "err=\"%s\"", pf_strerror(err));
			acct_accountant_stop(acct);
			return 1;
		}
	}
	fused = lane != NULL && cfg.serve_fused;
	if (fused) {
		err = start_fused(&cfg, lane, &srv, &wrk);
		if (err != PF_OK) {
			pf_lane_free(lane);
			acct_accountant_stop(acct);
			return 1;
		}
		goto ready;
	}
	err = wrk_worker_start_lane(&cfg, lane, &wrk);
	if (err != PF_OK) {
		pf_error("PF-SERVE-WORKER", "err=\"%s\"", pf_strerror(err));
		pf_lane_free(lane);
		acct_accountant_stop(acct);
		return 1;
	}
	err = ing_server_start_lane(&cfg, lane, &srv);
	if (err != PF_OK) {
		pf_error("PF-SERVE-INGRESS", "err=\"%s\"", pf_strerror(err));
		wrk_worker_free(wrk);
		pf_lane_free(lane);
		acct_accountant_stop(acct);
		return 1;
	}
ready:
	pf_info("PF-SERVE-READY", "listen=%s port=%u", cfg.listen,
	    ing_server_port(srv));
	sigdelset(&set, SIGPIPE);
	sig = pf_cli_wait_signal(&set);
	pf_info("PF-SERVE-STOP", "signal=%d", sig);
	ing_server_drain_wait(srv, &set);
	/* fused: the loops run the HTTP daemons, so they stop first */
	if (fused)
		wrk_worker_stop(wrk);
	/* the ingress flushes its spool to the accountant as it stops */
	ing_server_free(srv);
	wrk_worker_free(wrk);
	pf_lane_free(lane);
	acct_accountant_stop(acct);
	return 0;
}
