/*
 * mock_cmd.c -- `planktonfly mock-model`: option parsing, signals, run.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/mock.h"
#include "common/config.h"
#include "common/limits.h"
#include "common/log.h"

extern char **environ;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly mock-model [OPTIONS]\n"
	    "\n"
	    "A fast, deterministic OpenAI- and Anthropic-compatible model "
	    "server for\ntests and load tests.  Endpoints under /v1: "
	    "chat/completions, completions,\nembeddings, models, "
	    "responses, messages; GET /mock/stats, POST /mock/reset,\n"
	    "GET /health.  Per-request x-mock-* headers override the "
	    "defaults below\n(see docs/mock-model.md).\n"
	    "\n"
	    "options:\n"
	    "  --listen HOST:PORT    address to listen on; port 0 picks a "
	    "free port\n"
	    "                        (default 127.0.0.1:9000)\n"
	    "  --ttfb-ms N           delay before the first byte of every "
	    "response (0)\n"
	    "  --chunks N            content chunks per answer = completion "
	    "tokens (16)\n"
	    "  --chunk-delay-ms N    delay between stream content chunks "
	    "(0)\n"
	    "  --chunk-bytes N       text bytes per chunk; 0 = \"tok<i> \" "
	    "(0)\n"
	    "  --hang-ms N           how long x-mock-hang-after hangs before "
	    "closing\n"
	    "                        (300000)\n"
	    "  --models LIST         comma-separated ids for GET /v1/models\n"
	    "                        (mock-model)\n"
	    "  --threads N           event threads; 0 = one per CPU (0)\n"
	    "  --coalesce            pack stream events that are due into one "
	    "write\n"
	    "                        (default: only without a chunk delay)\n"
	    "  --no-coalesce         one write per stream event\n"
	    "  --config FILE         configuration file (only PF_LOG_LEVEL "
	    "matters here)\n"
	    "  --help                this text\n"
	    "\n"
	    "Logs \"PF-MOCK-LISTEN port=N\" to stderr once listening; stops "
	    "on SIGINT or\nSIGTERM.\n\n");
	pf_config_usage_some(f, (const char *const[]) { "LOG_LEVEL", NULL });
}

/* parse_u32 accepts decimal digits only, up to max. */
static int
parse_u32(const char *s, uint32_t max, uint32_t *ret)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
	}
	*ret = (uint32_t)v;
	return 0;
}

/* raise_nofile lets one process hold PF_HTTP_MAX_CONNS connections. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
mock_cmd(int argc, char **argv)
{
	enum {
		O_LISTEN = 1,
		O_TTFB,
		O_CHUNKS,
		O_DELAY,
		O_BYTES,
		O_HANG,
		O_MODELS,
		O_THREADS,
		O_COALESCE,
		O_NO_COALESCE,
		O_CONFIG,
		O_HELP
	};
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "ttfb-ms", required_argument, NULL, O_TTFB },
		{ "chunks", required_argument, NULL, O_CHUNKS },
		{ "chunk-delay-ms", required_argument, NULL, O_DELAY },
		{ "chunk-bytes", required_argument, NULL, O_BYTES },
		{ "hang-ms", required_argument, NULL, O_HANG },
		{ "models", required_argument, NULL, O_MODELS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "coalesce", no_argument, NULL, O_COALESCE },
		{ "no-coalesce", no_argument, NULL, O_NO_COALESCE },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	mock_options opt;
	/* the integer options: where each goes and its largest value */
	const struct {
		int code;
		uint32_t *num;
		uint32_t max;
	} nums[] = {
		{ O_TTFB, &opt.ttfb_ms, PF_MOCK_DELAY_MAX_MS },
		{ O_CHUNKS, &opt.chunks, PF_MOCK_CHUNKS_MAX },
		{ O_DELAY, &opt.chunk_delay_ms, PF_MOCK_DELAY_MAX_MS },
		{ O_BYTES, &opt.chunk_bytes, PF_MOCK_CHUNK_BYTES_MAX },
		{ O_HANG, &opt.hang_ms, PF_MOCK_DELAY_MAX_MS },
		{ O_THREADS, &opt.threads, PF_MOCK_THREADS_MAX },
	};
	const char *config = NULL;
	pf_config cfg;
	char errbuf[256];
	mock_server *m = NULL;
	sigset_t set;
	int c, sig;
	pf_err err;

	mock_options_defaults(&opt);
	optind = 1;
	opterr = 1;
	for (;;) {
		uint32_t *num = NULL;
		uint32_t max = 0;

		c = getopt_long(argc, argv, "", longopts, NULL);
		if (c == -1)
			break;
		for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
			if (nums[i].code == c) {
				num = nums[i].num;
				max = nums[i].max;
			}
		}
		switch (c) {
		case O_LISTEN:
			opt.listen = optarg;
			break;
		case O_TTFB:
		case O_CHUNKS:
		case O_DELAY:
		case O_BYTES:
		case O_HANG:
		case O_THREADS:
			break; /* num and max set above */
		case O_MODELS:
			opt.models = optarg;
			break;
		case O_COALESCE:
			opt.coalesce = MOCK_COALESCE_ON;
			break;
		case O_NO_COALESCE:
			opt.coalesce = MOCK_COALESCE_OFF;
			break;
		case O_CONFIG:
			config = optarg;
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (num != NULL && parse_u32(optarg, max, num) != 0) {
			fprintf(stderr,
			    "mock-model: --%s wants an integer 0..%u\n",
			    longopts[c - 1].name, max);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mock-model: unexpected argument '%s'\n",
		    argv[optind]);
		return 2;
	}
	err = pf_config_load(config, environ, &cfg, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "mock-model: %s\n", errbuf);
		return 2;
	}
	pf_log_set_level(cfg.log_level);

	/* threads started from here on inherit the blocked set, so only
	 * sigwait below sees SIGINT/SIGTERM */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	err = mock_server_start(&opt, &m);
	if (err != PF_OK) {
		pf_error("PF-MOCK-START", "listen=%s err=\"%s\"", opt.listen,
		    pf_strerror(err));
		return 1;
	}
	pf_info("PF-MOCK-LISTEN", "port=%u listen=%s threads=%u chunks=%u",
	    mock_server_port(m), opt.listen, mock_server_threads(m),
	    opt.chunks);
	do {
		if (sigwait(&set, &sig) != 0)
			sig = SIGTERM;
	} while (sig != SIGINT && sig != SIGTERM);
	pf_info("PF-MOCK-STOP", "signal=%d", sig);
	mock_server_free(m);
	return 0;
}
