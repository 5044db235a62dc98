/*
 * loadgen.c -- `planktonfly bench`: options, threads, the progress line,
 * the summary and the JSON result.
 */
#include "bench/loadgen.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/loadgen_billing.h"
#include "bench/loadgen_run.h"
#include "bench/loadgen_tls.h"
#include "common/limits.h"

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: planktonfly bench --url URL [OPTIONS]\n"
	    "\n"
	    "Load-tests an OpenAI-compatible endpoint (Planktonfly, the mock "
	    "model, or\nanything else speaking HTTP/1.1, plain or over TLS) "
	    "with POST {URL}/chat/completions\n"
	    "(or Anthropic's Messages API, POST {URL}/messages: --api "
	    "anthropic).\n"
	    "\n"
	    "options:\n"
	    "  --url URL            base URL, e.g. http://127.0.0.1:3000/v1 "
	    "or\n"
	    "                       https://gateway.example.com/v1\n"
	    "  --cacert FILE        https: trust the CA certificates in FILE "
	    "(PEM)\n"
	    "                       instead of the system's\n"
	    "  --insecure           https: do not check the server's "
	    "certificate\n"
	    "  --api openai|anthropic  the API: chat completions (openai), "
	    "or the\n"
	    "                       Messages API (POST {URL}/messages, "
	    "x-api-key,\n"
	    "                       max_tokens %d unless --max-tokens)\n"
	    "  --path PATH          appended to URL (/chat/completions, "
	    "/messages)\n"
	    "  --key KEY            sent as Authorization: Bearer KEY "
	    "(x-api-key: KEY\n"
	    "                       with --api anthropic)\n"
	    "  --model M            model in the body (mock-model)\n"
	    "  --stream             ask for a stream (with include_usage)\n"
	    "  --no-usage           streams: no stream_options.include_usage\n"
	    "  --connections N      connections (closed loop: 1; open: 64)\n"
	    "  --rate R             open loop: R requests/s at fixed "
	    "intervals; latency\n"
	    "                       counts from the intended send time\n"
	    "  --duration S         seconds to run (10; ignored with "
	    "--requests)\n"
	    "  --requests N         stop after N requests instead\n"
	    "  --warmup S           seconds not recorded, before the run (0)\n"
	    "  --threads N          load threads (1)\n"
	    "  --timeout S          per-request timeout in seconds (30)\n"
	    "  --body-bytes N       pad the request body to N bytes\n"
	    "  --max-tokens N       send max_tokens N\n"
	    "  -H, --header 'K: V'  extra request header (repeatable; e.g. "
	    "x-mock-chunk-delay-ms: 100)\n"
	    "  --json FILE          write the JSON result to FILE ('-' = "
	    "stdout)\n"
	    "  --check-billing URL  PostgreSQL URL: look up every completed "
	    "answer in the\n"
	    "                       ledger by its x-request-id; exit 1 unless "
	    "each was\n"
	    "                       charged the cost of its usage at the "
	    "model's price\n"
	    "  --expect-price P     the check's price instead of the "
	    "database's: IN,OUT\n"
	    "                       (USD per 1M tokens) or call:USD\n"
	    "  --quota-per-unit N   quota units per USD for the check "
	    "(500000)\n"
	    "  --quiet              no progress line\n"
	    "  --help\n",
	    LG_ANTHROPIC_MAX_TOKENS);
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || s[0] == '-' || v > max)
		return -1;
	*ret = v;
	return 0;
}

/* Seconds with up to 9 decimals ("0.5", "10") into ns, no floating point. */
static int
parse_seconds(const char *s, uint64_t *ret)
{
	uint64_t whole = 0, frac = 0, scale = 1000000000u;
	const char *p = s;
	int any = 0;
	for (; *p >= '0' && *p <= '9'; p++, any = 1) {
		whole = whole * 10u + (uint64_t)(*p - '0');
		if (whole > 86400u * 365u)
			return -1;
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, any = 1) {
			if (scale > 1) {
				scale /= 10u;
				frac += (uint64_t)(*p - '0') * scale;
			}
		}
	}
	if (!any || *p != '\0')
		return -1;
	*ret = whole * 1000000000u + frac;
	return 0;
}

static int
parse_url(lg_opts *o, const char *url)
{
	size_t skip;
	if (strncmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else
		return -1;
	if (strlen(url) >= sizeof(o->url))
		return -1;
	o->tls = skip == 8;
	snprintf(o->url, sizeof(o->url), "%s", url);
	const char *h = url + skip;
	const char *slash = strchr(h, '/');
	size_t hl = slash ? (size_t)(slash - h) : strlen(h);
	char hostport[256];
	if (hl == 0 || hl >= sizeof(hostport))
		return -1;
	memcpy(hostport, h, hl);
	hostport[hl] = '\0';
	const char *port = o->tls ? "443" : "80";
	char *colon;
	if (hostport[0] == '[') {
		char *rb = strchr(hostport, ']');
		if (!rb)
			return -1;
		*rb = '\0';
		snprintf(o->host, sizeof(o->host), "%s", hostport + 1);
		if (rb[1] == ':')
			port = rb + 2;
	} else {
		colon = strrchr(hostport, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
		snprintf(o->host, sizeof(o->host), "%s", hostport);
	}
	if (strlen(port) >= sizeof(o->port) || o->host[0] == '\0')
		return -1;
	snprintf(o->port, sizeof(o->port), "%s", port);
	const char *path = slash ? slash : "";
	if (strlen(path) >= sizeof(o->base_path))
		return -1;
	snprintf(o->base_path, sizeof(o->base_path), "%s", path);
	size_t bl = strlen(o->base_path);
	if (bl > 0 && o->base_path[bl - 1] == '/')
		o->base_path[bl - 1] = '\0';
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	if (getaddrinfo(o->host, o->port, &hints, &ai) != 0 || !ai)
		return -2;
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int
add_header(lg_opts *o, const char *h)
{
	size_t n = strlen(h);
	if (!strchr(h, ':') || strpbrk(h, "\r\n")
	    || o->extra_len + n + 2 > sizeof(o->extra_headers))
		return -1;
	memcpy(o->extra_headers + o->extra_len, h, n);
	memcpy(o->extra_headers + o->extra_len + n, "\r\n", 2);
	o->extra_len += n + 2;
	return 0;
}

enum {
	OPT_URL = 256,
	OPT_PATH,
	OPT_KEY,
	OPT_MODEL,
	OPT_STREAM,
	OPT_NO_USAGE,
	OPT_CONNS,
	OPT_RATE,
	OPT_DURATION,
	OPT_REQUESTS,
	OPT_WARMUP,
	OPT_THREADS,
	OPT_TIMEOUT,
	OPT_BODY,
	OPT_MAXTOK,
	OPT_JSON,
	OPT_BILLING,
	OPT_QPU,
	OPT_PRICE,
	OPT_QUIET,
	OPT_CACERT,
	OPT_INSECURE,
	OPT_API,
	OPT_HELP,
};

static const struct option long_opts[] = {
	{ "url", required_argument, NULL, OPT_URL },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "stream", no_argument, NULL, OPT_STREAM },
	{ "no-usage", no_argument, NULL, OPT_NO_USAGE },
	{ "connections", required_argument, NULL, OPT_CONNS },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "requests", required_argument, NULL, OPT_REQUESTS },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "body-bytes", required_argument, NULL, OPT_BODY },
	{ "max-tokens", required_argument, NULL, OPT_MAXTOK },
	{ "header", required_argument, NULL, 'H' },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "check-billing", required_argument, NULL, OPT_BILLING },
	{ "quota-per-unit", required_argument, NULL, OPT_QPU },
	{ "expect-price", required_argument, NULL, OPT_PRICE },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "api", required_argument, NULL, OPT_API },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* --expect-price "IN,OUT" (USD per 1M tokens) or "call:USD". */
static int
parse_price(lg_opts *o, const char *s)
{
	memset(&o->price, 0, sizeof(o->price));
	o->price_override = 1;
	if (strncmp(s, "call:", 5) == 0)
		return pf_money_parse_micros(
		           s + 5, strlen(s + 5), &o->price.call)
		        != PF_OK
		    ? -1
		    : 0;
	const char *comma = strchr(s, ',');
	if (!comma
	    || pf_money_parse_micros(s, (size_t)(comma - s), &o->price.input)
	        != PF_OK
	    || pf_money_parse_micros(
	           comma + 1, strlen(comma + 1), &o->price.output)
	        != PF_OK)
		return -1;
	o->price.cached = o->price.input;
	return 0;
}

/* Returns 0, or the exit status (2 usage error, 0 for --help). */
static int
parse_args(lg_opts *o, int argc, char **argv, int *done)
{
	uint64_t v;
	const char *url = NULL;
	int conns_set = 0;
	*done = 0;
	o->model = "mock-model";
	o->conns = 1;
	o->threads = 1;
	o->duration_ns = 10000000000u;
	o->timeout_ns = 30000000000u;
	o->max_tokens = -1;
	o->include_usage = 1;
	o->quota_per_unit = 500000;
	int path_set = 0;
	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "H:", long_opts, NULL);
		if (c == -1)
			break;
		int bad = 0;
		switch (c) {
		case OPT_URL:
			url = optarg;
			break;
		case OPT_PATH:
			bad = strlen(optarg) >= sizeof(o->path)
			    || optarg[0] != '/' || strpbrk(optarg, " \r\n");
			if (!bad)
				snprintf(
				    o->path, sizeof(o->path), "%s", optarg);
			path_set = 1;
			break;
		case OPT_KEY:
			bad = strlen(optarg) > PF_API_KEY_MAX * 4u
			    || strpbrk(optarg, "\r\n") != NULL;
			o->key = optarg;
			break;
		case OPT_MODEL:
			bad = strlen(optarg) > PF_MODEL_NAME_MAX
			    || strpbrk(optarg, "\"\\\r\n") != NULL;
			o->model = optarg;
			break;
		case OPT_STREAM:
			o->stream = 1;
			break;
		case OPT_NO_USAGE:
			o->include_usage = 0;
			break;
		case OPT_CONNS:
			bad = parse_u64(optarg, PF_LOADGEN_CONNS_MAX, &v) || !v;
			o->conns = (uint32_t)v;
			conns_set = 1;
			break;
		case OPT_RATE:
			bad = parse_u64(optarg, 10000000u, &v) || !v;
			o->rate = v;
			break;
		case OPT_DURATION:
			bad = parse_seconds(optarg, &o->duration_ns)
			    || !o->duration_ns;
			break;
		case OPT_REQUESTS:
			bad = parse_u64(optarg, UINT64_MAX / 2u, &o->requests)
			    || !o->requests;
			break;
		case OPT_WARMUP:
			bad = parse_seconds(optarg, &o->warmup_ns);
			break;
		case OPT_THREADS:
			bad = parse_u64(optarg, PF_LOADGEN_THREADS_MAX, &v)
			    || !v;
			o->threads = (uint32_t)v;
			break;
		case OPT_TIMEOUT:
			bad = parse_seconds(optarg, &o->timeout_ns)
			    || !o->timeout_ns;
			break;
		case OPT_BODY:
			bad = parse_u64(optarg, PF_BODY_MAX_CEILING, &v);
			o->body_bytes = (uint32_t)v;
			break;
		case OPT_MAXTOK:
			bad = parse_u64(optarg, 100000000u, &v);
			o->max_tokens = (int64_t)v;
			break;
		case 'H':
			bad = add_header(o, optarg);
			break;
		case OPT_JSON:
			o->json_path = optarg;
			break;
		case OPT_BILLING:
			o->billing_url = optarg;
			break;
		case OPT_PRICE:
			bad = parse_price(o, optarg);
			break;
		case OPT_QPU:
			bad = parse_u64(optarg, INT64_MAX, &v);
			o->quota_per_unit = (int64_t)v;
			break;
		case OPT_QUIET:
			o->quiet = 1;
			break;
		case OPT_CACERT:
			o->cafile = optarg;
			break;
		case OPT_INSECURE:
			o->insecure = 1;
			break;
		case OPT_API:
			bad = strcmp(optarg, "openai") != 0
			    && strcmp(optarg, "anthropic") != 0;
			o->anthropic = strcmp(optarg, "anthropic") == 0;
			break;
		case OPT_HELP:
			usage(stdout);
			*done = 1;
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "planktonfly bench: bad value for %s\n",
			    argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc || !url) {
		fprintf(stderr, "planktonfly bench: %s\n",
		    url ? "unexpected argument" : "--url is required");
		usage(stderr);
		return 2;
	}
	int r = parse_url(o, url);
	if (r != 0) {
		fprintf(stderr, "planktonfly bench: %s\n",
		    r == -2
		        ? "cannot resolve the --url host"
		        : "--url must look like http[s]://HOST[:PORT]/PATH");
		return 2;
	}
	if ((o->cafile || o->insecure) && !o->tls) {
		fprintf(stderr,
		    "planktonfly bench: --cacert and --insecure are for an "
		    "https:// --url\n");
		return 2;
	}
	if (!path_set)
		snprintf(o->path, sizeof(o->path), "%s",
		    o->anthropic ? "/messages" : "/chat/completions");
	if (o->rate && !conns_set)
		o->conns = 64;
	if (o->threads > o->conns)
		o->threads = o->conns;
	if (o->billing_url && !o->key) {
		fprintf(
		    stderr, "planktonfly bench: --check-billing needs --key\n");
		return 2;
	}
	if (o->price_override && !o->billing_url) {
		fprintf(stderr,
		    "planktonfly bench: --expect-price needs "
		    "--check-billing\n");
		return 2;
	}
	o->check_billing = o->billing_url != NULL;
	return 0;
}

static void
raise_nofile(uint32_t conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)conns + 64u;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

typedef struct totals {
	lg_stats st;
	lg_billed_list billed; /* every thread's, with --check-billing */
	uint64_t max_open_streams;
	uint64_t elapsed_ns; /* measured part (warmup excluded) */
	uint64_t connect_ns;
	int stalled; /* a --requests run stopped: nothing happened (STALL_NS) */
} totals;

static void
sum_stats(lg_stats *dst, const lg_stats *s)
{
	lg_hist_merge(&dst->latency, &s->latency);
	lg_hist_merge(&dst->service, &s->service);
	lg_hist_merge(&dst->ttft, &s->ttft);
	lg_hist_merge(&dst->gap, &s->gap);
	dst->ok += s->ok;
	for (int i = 0; i < 6; i++)
		dst->status_class[i] += s->status_class[i];
	for (int i = 0; i < 600; i++)
		dst->status_code[i] += s->status_code[i];
	for (int i = 0; i < LG_ERR_KINDS; i++)
		dst->errors[i] += s->errors[i];
	dst->events += s->events;
	dst->body_bytes += s->body_bytes;
	dst->unsent += s->unsent;
	dst->abandoned += s->abandoned;
	dst->connects += s->connects;
	dst->billed_requests += s->billed_requests;
	dst->usage_missing += s->usage_missing;
	dst->prompt_tokens += s->prompt_tokens;
	dst->completion_tokens += s->completion_tokens;
	dst->expected_cost += s->expected_cost;
	dst->no_request_id += s->no_request_id;
	dst->cost_error |= s->cost_error;
}

/* "123.4us" / "12.34ms" / "1.234s" */
static const char *
fmt_ns(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000000u)
		snprintf(buf, len, "%" PRIu64 ".%01" PRIu64 "us", ns / 1000u,
		    ns % 1000u / 100u);
	else if (ns < 1000000000u)
		snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "ms", ns / 1000000u,
		    ns % 1000000u / 10000u);
	else
		snprintf(buf, len, "%" PRIu64 ".%03" PRIu64 "s",
		    ns / 1000000000u, ns % 1000000000u / 1000000u);
	return buf;
}

static const uint32_t quantiles[] = { 500000u, 900000u, 990000u, 999000u };
static const char *const qnames[] = { "p50", "p90", "p99", "p99.9" };

static void
print_hist(FILE *f, const char *name, const lg_hist *h)
{
	char b[32];
	if (h->count == 0)
		return;
	fprintf(f, "  %-8s", name);
	for (size_t i = 0; i < 4; i++)
		fprintf(f, " %s %s", qnames[i],
		    fmt_ns(lg_hist_quantile(h, quantiles[i]), b, sizeof(b)));
	fprintf(f, " max %s", fmt_ns(h->max, b, sizeof(b)));
	fprintf(f, " mean %s", fmt_ns(lg_hist_mean(h), b, sizeof(b)));
	fprintf(f, " (n=%" PRIu64 ")\n", h->count);
}

static const char *const err_names[LG_ERR_KINDS]
    = { "connect", "timeout", "io", "malformed", "truncated" };

/* requests per second, x1000, from a count and ns */
static uint64_t
rate_milli(uint64_t n, uint64_t ns)
{
	if (ns == 0)
		return 0;
	/* display only: a double is exact enough for a rate */
	return (uint64_t)((double)n * 1e12 / (double)ns);
}

static void
print_summary(const lg_opts *o, const totals *t, const lg_billing_result *br,
    const char *billing_note)
{
	const lg_stats *s = &t->st;
	char b[32];
	uint64_t rm = rate_milli(s->ok, t->elapsed_ns);
	printf("planktonfly bench: POST %s://%s:%s%s%s model=%s%s\n",
	    o->tls ? "https" : "http", o->host, o->port, o->base_path, o->path,
	    o->model, o->stream ? " stream" : "");
	if (o->rate)
		printf("  open loop at %" PRIu64 " req/s, %u connections, "
		       "%u threads, %s measured\n",
		    o->rate, o->conns, o->threads,
		    fmt_ns(t->elapsed_ns, b, sizeof(b)));
	else
		printf("  closed loop, %u connections, %u threads, %s "
		       "measured\n",
		    o->conns, o->threads, fmt_ns(t->elapsed_ns, b, sizeof(b)));
	printf("  requests %" PRIu64 " ok (%" PRIu64 ".%01" PRIu64
	       " req/s); 1xx %" PRIu64 " 2xx %" PRIu64 " 3xx %" PRIu64
	       " 4xx %" PRIu64 " 5xx %" PRIu64 "\n",
	    s->ok, rm / 1000u, rm % 1000u / 100u, s->status_class[1],
	    s->status_class[2], s->status_class[3], s->status_class[4],
	    s->status_class[5]);
	print_hist(stdout, "latency", &s->latency);
	if (o->rate)
		print_hist(stdout, "service", &s->service);
	print_hist(stdout, "ttft", &s->ttft);
	print_hist(stdout, "gap", &s->gap);
	printf("  errors  ");
	for (int i = 0; i < LG_ERR_KINDS; i++)
		printf(" %s %" PRIu64, err_names[i], s->errors[i]);
	printf("\n");
	if (s->unsent || s->abandoned)
		printf("  end      %" PRIu64 " in flight abandoned, %" PRIu64
		       " due but never sent (rate not reached)\n",
		    s->abandoned, s->unsent);
	if (o->stream)
		printf("  streams  %" PRIu64 " events, max %" PRIu64
		       " open at once\n",
		    s->events, t->max_open_streams);
	printf("  usage    prompt %" PRId64 " completion %" PRId64
	       " tokens in %" PRIu64 " answers (%" PRIu64 " without usage)\n",
	    s->prompt_tokens, s->completion_tokens, s->billed_requests,
	    s->usage_missing);
	if (billing_note) {
		printf("  billing  FAILED: %s\n", billing_note);
	} else if (br) {
		printf("  billing  %s: %" PRId64
		       " completed answers checked, %" PRId64
		       " in the ledger: charged %" PRId64 " expected %" PRId64
		       "\n",
		    br->ok ? "OK" : "FAILED", br->checked, br->found,
		    br->charged, br->expected);
		if (!br->ok)
			printf("           %s\n", br->why);
		printf("           not checked: %" PRIu64 " answers without "
		       "usage, %" PRIu64 " without x-request-id; %" PRId64
		       " other ledger rows for the token (cost %" PRId64
		       ": cut, failed or abandoned requests)\n",
		    s->usage_missing, s->no_request_id, br->other_rows,
		    br->other_cost);
	}
}

static void
json_hist(FILE *f, const char *name, const lg_hist *h, int last)
{
	fprintf(f,
	    "  \"%s\": {\"count\": %" PRIu64 ", \"min\": %" PRIu64
	    ", \"mean\": %" PRIu64,
	    name, h->count, h->count ? h->min : 0, lg_hist_mean(h));
	for (size_t i = 0; i < 4; i++)
		fprintf(f, ", \"%s\": %" PRIu64, qnames[i],
		    lg_hist_quantile(h, quantiles[i]));
	fprintf(f, ", \"max\": %" PRIu64 "}%s\n", h->max, last ? "" : ",");
}

/* Writes s as the inside of a JSON string (quotes, backslashes and
 * control characters escaped). */
static void
json_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static int
write_json(const lg_opts *o, const totals *t, const lg_billing_result *br,
    const char *billing_note)
{
	FILE *f = strcmp(o->json_path, "-") == 0 ? stdout
	                                         : fopen(o->json_path, "w");
	if (!f)
		return -1;
	const lg_stats *s = &t->st;
	uint64_t rm = rate_milli(s->ok, t->elapsed_ns);
	fprintf(f, "{\n  \"tool\": \"planktonfly bench\",\n");
	fprintf(f, "  \"units\": \"ns\",\n");
	fprintf(f,
	    "  \"config\": {\"url\": \"%s\", \"api\": \"%s\", \"path\": "
	    "\"%s\", \"model\": "
	    "\"%s\", \"stream\": %s, \"connections\": %u, \"threads\": %u, "
	    "\"rate\": %" PRIu64 ", \"duration_ns\": %" PRIu64
	    ", \"warmup_ns\": %" PRIu64 ", \"requests\": %" PRIu64
	    ", \"body_bytes\": %u, \"max_tokens\": %" PRId64 "},\n",
	    o->url, o->anthropic ? "anthropic" : "openai", o->path, o->model,
	    o->stream ? "true" : "false", o->conns, o->threads, o->rate,
	    o->duration_ns, o->warmup_ns, o->requests, o->body_bytes,
	    o->max_tokens);
	fprintf(f,
	    "  \"elapsed_ns\": %" PRIu64 ",\n  \"connect_ns\": %" PRIu64
	    ",\n  \"ok\": %" PRIu64 ",\n  \"rps\": %" PRIu64 ".%03" PRIu64
	    ",\n",
	    t->elapsed_ns, t->connect_ns, s->ok, rm / 1000u, rm % 1000u);
	fprintf(f, "  \"status_class\": {");
	for (int i = 1; i < 6; i++)
		fprintf(f, "%s\"%dxx\": %" PRIu64, i > 1 ? ", " : "", i,
		    s->status_class[i]);
	fprintf(f, "},\n  \"status\": {");
	int first = 1;
	for (int i = 0; i < 600; i++) {
		if (!s->status_code[i])
			continue;
		fprintf(f, "%s\"%d\": %" PRIu64, first ? "" : ", ", i,
		    s->status_code[i]);
		first = 0;
	}
	fprintf(f, "},\n  \"errors\": {");
	for (int i = 0; i < LG_ERR_KINDS; i++)
		fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", err_names[i],
		    s->errors[i]);
	fprintf(f, "},\n");
	fprintf(f,
	    "  \"unsent\": %" PRIu64 ",\n  \"abandoned\": %" PRIu64
	    ",\n  \"connects\": %" PRIu64 ",\n  \"events\": %" PRIu64
	    ",\n  \"body_bytes\": %" PRIu64
	    ",\n  \"max_open_streams\": %" PRIu64 ",\n",
	    s->unsent, s->abandoned, s->connects, s->events, s->body_bytes,
	    t->max_open_streams);
	fprintf(f,
	    "  \"usage\": {\"answers\": %" PRIu64
	    ", \"without_usage\": %" PRIu64 ", \"prompt_tokens\": %" PRId64
	    ", \"completion_tokens\": %" PRId64 "},\n",
	    s->billed_requests, s->usage_missing, s->prompt_tokens,
	    s->completion_tokens);
	if (billing_note) {
		fprintf(f, "  \"billing\": {\"error\": \"");
		json_text(f, billing_note);
		fprintf(f, "\"},\n");
	} else if (br)
		fprintf(f,
		    "  \"billing\": {\"ok\": %s, \"why\": \"%s\", "
		    "\"checked\": %" PRId64 ", \"found\": %" PRId64
		    ", \"wrong\": %" PRId64 ", \"charged\": %" PRId64
		    ", \"expected\": %" PRId64 ", \"answers\": %" PRIu64
		    ", \"without_usage\": %" PRIu64
		    ", \"without_request_id\": %" PRIu64
		    ", \"other_rows\": %" PRId64 ", \"other_cost\": %" PRId64
		    ", \"ledger_prompt_tokens\": %" PRId64
		    ", \"ledger_completion_tokens\": %" PRId64 "},\n",
		    br->ok ? "true" : "false", br->why, br->checked, br->found,
		    br->wrong, br->charged, br->expected, s->billed_requests,
		    s->usage_missing, s->no_request_id, br->other_rows,
		    br->other_cost, br->prompt_tokens, br->completion_tokens);
	json_hist(f, "latency", &s->latency, 0);
	json_hist(f, "service", &s->service, 0);
	json_hist(f, "ttft", &s->ttft, 0);
	json_hist(f, "gap", &s->gap, 1);
	fprintf(f, "}\n");
	if (f != stdout)
		return fclose(f) == 0 ? 0 : -1;
	return fflush(f) == 0 ? 0 : -1;
}

static void
sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u) };
	nanosleep(&ts, NULL);
}

/* Moves the entries of src to the end of dst and frees src's. */
static void
take_billed(lg_billed_list *dst, lg_billed_list *src)
{
	dst->oom |= src->oom;
	if (src->n > 0 && !dst->oom) {
		size_t need = dst->n + src->n;
		lg_billed *v = need > dst->cap
		    ? realloc(dst->v, need * sizeof(*v))
		    : dst->v;
		if (!v) {
			dst->oom = 1;
		} else {
			memcpy(v + dst->n, src->v, src->n * sizeof(*v));
			dst->v = v;
			dst->n = need;
			if (need > dst->cap)
				dst->cap = need;
		}
	}
	free(src->v);
	memset(src, 0, sizeof(*src));
}

/* A --requests run ends after this long with no request in flight and no
 * answer: no connection could be made, so no request will ever be sent (a
 * request in flight is bounded by --timeout; an open loop's requests are
 * at most 1 s apart).  A --duration run ends on time anyway. */
#define STALL_NS 10000000000u

/* Runs the threads; fills *t.  Returns 0, or -1 if threads failed. */
static int
run(const lg_opts *o, totals *t)
{
	lg_shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.opts = o;
	lg_thread *th = calloc(o->threads, sizeof(lg_thread));
	if (!th)
		return -1;
	if (pthread_barrier_init(&sh.ready, NULL, o->threads + 1u) != 0
	    || pthread_barrier_init(&sh.go, NULL, o->threads + 1u) != 0) {
		free(th);
		return -1;
	}
	uint64_t t0 = lg_now_ns();
	uint32_t started = 0;
	for (uint32_t i = 0; i < o->threads; i++) {
		th[i].idx = i;
		th[i].sh = &sh;
		if (pthread_create(&th[i].th, NULL, lg_thread_main, &th[i])
		    != 0)
			break;
		started++;
	}
	if (started < o->threads) {
		/* cannot meet the barriers: stop the started ones */
		fprintf(stderr, "planktonfly bench: cannot start threads\n");
		_exit(1);
	}
	pthread_barrier_wait(&sh.ready);
	sh.start_ns = lg_now_ns();
	t->connect_ns = sh.start_ns - t0;
	pthread_barrier_wait(&sh.go);

	/* --duration is the measured time: the warmup comes first */
	uint64_t end = o->requests
	    ? UINT64_MAX
	    : sh.start_ns + o->warmup_ns + o->duration_ns;
	uint64_t next_print = sh.start_ns + 1000000000u, last_done = 0;
	uint64_t busy_ns = sh.start_ns, busy_done = 0;
	for (;;) {
		sleep_ns(20000000u);
		uint64_t now = lg_now_ns();
		uint64_t open = 0, done = 0, errs = 0, infl = 0;
		int all_finished = 1;
		for (uint32_t i = 0; i < o->threads; i++) {
			open += atomic_load(&th[i].live.open_streams);
			done += atomic_load(&th[i].live.done);
			errs += atomic_load(&th[i].live.errors);
			infl += atomic_load(&th[i].live.inflight);
			all_finished &= atomic_load(&th[i].live.finished);
		}
		if (open > t->max_open_streams)
			t->max_open_streams = open;
		if (now >= next_print && !o->quiet) {
			fprintf(stderr,
			    "[%4" PRIu64 "s] %7" PRIu64 " req/s  done %" PRIu64
			    "  errors %" PRIu64 "  in flight %" PRIu64
			    "  open streams %" PRIu64 "\n",
			    (now - sh.start_ns) / 1000000000u, done - last_done,
			    done, errs, infl, open);
			last_done = done;
			next_print += 1000000000u;
		}
		if (infl > 0 || done != busy_done) {
			busy_ns = now;
			busy_done = done;
		}
		if (o->requests && now - busy_ns >= STALL_NS) {
			t->stalled = 1;
			fprintf(stderr,
			    "planktonfly bench: no request in flight and no "
			    "answer for %" PRIu64 " s (%" PRIu64
			    " errors): stopping\n",
			    (uint64_t)(STALL_NS / 1000000000u), errs);
			break;
		}
		if (all_finished || now >= end || interrupted)
			break;
	}
	atomic_store(&sh.stop, 1);
	uint64_t stop_ns = lg_now_ns();
	lg_hist_init(&t->st.latency);
	lg_hist_init(&t->st.service);
	lg_hist_init(&t->st.ttft);
	lg_hist_init(&t->st.gap);
	for (uint32_t i = 0; i < o->threads; i++) {
		pthread_join(th[i].th, NULL);
		sum_stats(&t->st, &th[i].st);
		take_billed(&t->billed, &th[i].billed);
	}
	uint64_t from = sh.start_ns + o->warmup_ns;
	t->elapsed_ns = stop_ns > from ? stop_ns - from : 0;
	pthread_barrier_destroy(&sh.ready);
	pthread_barrier_destroy(&sh.go);
	free(th);
	return 0;
}

int
lg_cmd(int argc, char **argv)
{
	static lg_opts o; /* large; zeroed */
	static totals t;
	int done = 0;
	int rc = parse_args(&o, argc, argv, &done);
	if (rc != 0 || done)
		return rc;
	raise_nofile(o.conns);
	signal(SIGPIPE, SIG_IGN);
	if (o.tls) {
		char why[256];
		o.tls_ctx
		    = lg_tls_ctx_new(o.cafile, o.insecure, why, sizeof(why));
		if (o.tls_ctx == NULL) {
			fprintf(stderr, "planktonfly bench: %s\n", why);
			return 1;
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	lg_billing *bill = NULL;
	char msg[512] = "";
	const char *billing_note = NULL;
	if (o.billing_url) {
		pf_err e = lg_billing_begin(
		    o.billing_url, o.key, o.model, &o, &bill, msg, sizeof(msg));
		if (e != PF_OK) {
			fprintf(stderr,
			    "planktonfly bench: billing check: %s\n", msg);
			billing_note = msg;
		}
	}
	int ran = run(&o, &t);
	lg_tls_ctx_free(o.tls_ctx);
	o.tls_ctx = NULL;
	if (ran != 0) {
		fprintf(stderr, "planktonfly bench: cannot start\n");
		lg_billing_free(bill);
		return 1;
	}
	lg_billing_result br;
	lg_billing_result *brp = NULL;
	int failed = billing_note != NULL; /* asked for and not possible */
	if (bill) {
		if (t.st.cost_error) {
			billing_note = "cost overflow in the check";
		} else if (t.billed.oom) {
			billing_note = "out of memory keeping the answers' ids";
		} else {
			pf_err e = lg_billing_end(bill, t.billed.v, t.billed.n,
			    15000u, &br, msg, sizeof(msg));
			if (e != PF_OK)
				billing_note = msg;
			else
				brp = &br;
		}
		failed = billing_note != NULL || !br.ok;
		lg_billing_free(bill);
	}
	free(t.billed.v);
	print_summary(&o, &t, brp, billing_note);
	if (o.json_path && write_json(&o, &t, brp, billing_note) != 0) {
		fprintf(stderr, "planktonfly bench: cannot write %s\n",
		    o.json_path);
		return 1;
	}
	return failed || t.stalled ? 1 : 0;
}
