/*
 * loadgen_run.h -- the load generator's options, per-thread statistics and
 * the event loop one thread runs (raw non-blocking sockets, epoll, HTTP/1.1
 * keep-alive, one request in flight per connection).
 */
#ifndef PF_BENCH_LOADGEN_RUN_H
#define PF_BENCH_LOADGEN_RUN_H

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench/loadgen_hist.h"
#include "common/limits.h"
#include "common/money.h"

/* --api anthropic: the max_tokens sent without --max-tokens (the Messages
 * API requires one), and the anthropic-version header. */
#define LG_ANTHROPIC_MAX_TOKENS 1024
#define LG_ANTHROPIC_VERSION "2023-06-01"

typedef struct lg_opts {
	/* target */
	char url[2048];
	char host[256];
	char port[8];
	char base_path[1024]; /* path of --url, e.g. "/v1" */
	char path[256];       /* appended to base_path */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int tls;                    /* --url https:// */
	int insecure;               /* --insecure: no certificate check */
	const char *cafile;         /* --cacert; NULL: the system's */
	struct ssl_ctx_st *tls_ctx; /* made by lg_cmd when tls */
	const char *key;
	const char *model;
	const char *json_path;
	const char *billing_url;
	char extra_headers[PF_LOADGEN_EXTRA_HEADERS_MAX]; /* "Name: v\r\n"... */
	size_t extra_len;
	/* load */
	int anthropic; /* --api anthropic: the Messages API, not chat */
	int stream;
	int include_usage;
	int quiet;
	uint32_t conns;
	uint32_t threads;
	uint64_t rate; /* requests/s; 0 = closed loop */
	uint64_t duration_ns;
	uint64_t warmup_ns;
	uint64_t requests; /* 0 = no limit */
	uint64_t timeout_ns;
	uint32_t body_bytes;
	int64_t max_tokens; /* -1 = not sent */
	/* billing: price known before the run */
	int check_billing;  /* keep each completed answer's id and cost */
	int price_override; /* --expect-price: price set, not read */
	int have_price;
	pf_price price;
	int64_t group_ratio_ppm;
	int64_t quota_per_unit;
} lg_opts;

enum lg_err_kind {
	LG_ERR_CONNECT = 0, /* connect() or the TLS handshake failed, or
	                     * timed out */
	LG_ERR_TIMEOUT,     /* no complete answer within --timeout */
	LG_ERR_IO,          /* reset, or closed before the answer ended */
	LG_ERR_MALFORMED,   /* not parseable as HTTP/1.1 */
	LG_ERR_TRUNCATED,   /* 2xx stream that ended without [DONE] */
	LG_ERR_KINDS
};

typedef struct lg_stats {
	lg_hist latency; /* from the intended send time (open loop) */
	lg_hist service; /* from the actual send time */
	lg_hist ttft;    /* first SSE event, from the intended send time */
	lg_hist gap;     /* between SSE events */
	uint64_t ok;     /* 2xx answers (after warmup) */
	uint64_t status_class[6]; /* [1..5] = 1xx..5xx after warmup */
	uint64_t status_code[600];
	uint64_t errors[LG_ERR_KINDS];
	uint64_t events;
	uint64_t body_bytes;
	uint64_t unsent;    /* open loop: due but never sent by the end */
	uint64_t abandoned; /* in flight when the run ended */
	uint64_t connects;
	/* every completed 2xx answer (a stream with its [DONE]), warmup
	 * included (billing) */
	uint64_t billed_requests;
	uint64_t usage_missing;
	uint64_t no_request_id; /* completed, usage seen, no x-request-id */
	int64_t prompt_tokens;
	int64_t completion_tokens;
	int64_t expected_cost;
	int cost_error;
} lg_stats;

/* Live counters the main thread reads for the progress line. */
typedef struct lg_live {
	_Atomic uint64_t done;   /* answers, any status */
	_Atomic uint64_t errors; /* non-2xx + error kinds */
	_Atomic uint64_t inflight;
	_Atomic uint64_t open_streams; /* 2xx event streams receiving */
	_Atomic int connected;         /* connect phase over */
	_Atomic int finished;          /* thread loop returned */
} lg_live;

typedef struct lg_shared {
	const lg_opts *opts;
	pthread_barrier_t ready; /* all threads connected */
	pthread_barrier_t go;    /* start_ns set */
	uint64_t start_ns;
	_Atomic int stop;
	_Atomic int tls_told; /* the first failed handshake was reported */
} lg_shared;

/* A completed answer the billing check looks up by its x-request-id. */
typedef struct lg_billed {
	char id[PF_LOADGEN_REQUEST_ID_MAX + 1];
	int64_t cost; /* expected, quota units */
} lg_billed;

/* A growable list of lg_billed; oom set when an append failed. */
typedef struct lg_billed_list {
	lg_billed *v;
	size_t n;
	size_t cap;
	int oom;
} lg_billed_list;

typedef struct lg_thread {
	uint32_t idx;
	lg_shared *sh;
	pthread_t th;
	lg_stats st;
	lg_live live;
	lg_billed_list billed; /* with opts->check_billing; caller frees v */
} lg_thread;

/* lg_now_ns returns CLOCK_MONOTONIC in nanoseconds. */
uint64_t lg_now_ns(void);

/*
 * lg_thread_main is the pthread entry of one load thread (arg: its
 * lg_thread).  Opens its share of the connections, waits on sh->ready and
 * sh->go, then runs until sh->stop or its share of --requests is done.
 * Results land in t->st; failures count as errors, never abort the run.
 */
void *lg_thread_main(void *arg);

#endif /* PF_BENCH_LOADGEN_RUN_H */
