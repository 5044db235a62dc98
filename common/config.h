/*
 * config.h -- configuration, parsed once and passed down as const.
 *
 * Sources, later overriding earlier: built-in defaults, an optional INI file
 * (--config FILE; keys are the variable names without the PF_ prefix, in
 * any case, in any section), then PF_* environment variables.  Unknown PF_
 * variables, unknown file keys and malformed values are errors naming the
 * key.
 */
#ifndef PF_COMMON_CONFIG_H
#define PF_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/log.h"

#define PF_CONFIG_STR 512

typedef struct pf_config {
	/* PF_LISTEN: client HTTP address, host:port (default 127.0.0.1:3000) */
	char listen[PF_CONFIG_STR];
	/* PF_LISTEN_REUSEPORT: 1 = SO_REUSEPORT on PF_LISTEN, so a new
	 * gateway can start beside the old one (handover; both need it).
	 * Default 0: a second gateway on a port in use fails to start. */
	uint32_t listen_reuseport;
	/* PF_DATABASE_URL: libpq conninfo or postgres:// URL (secret) */
	char database_url[PF_CONFIG_STR];
	/* PF_REDIS_URL: redis://host:port[/db] (secret: may hold a password) */
	char redis_url[PF_CONFIG_STR];
	/* PF_WORKER_URL: NNG URLs workers listen on; the ingress dials each
	 * (comma-separated).  Default inproc://pf-worker. */
	char worker_url[PF_CONFIG_STR];
	/* PF_REPLY_URL: NNG URL the ingress listens on for worker replies and
	 * puts in relay.request.  Default inproc://pf-reply. */
	char reply_url[PF_CONFIG_STR];
	/* PF_WORKER_CTL_URL: NNG URL base of a worker's control sockets
	 * (relay.cancel, relay.credit; one per transfer thread: inproc/ipc
	 * get "-<n>" appended, tcp uses port + n).  Ingresses must be able to
	 * dial it.  Default "": derived from the first PF_WORKER_URL for
	 * inproc:// and ipc:// ("<url>-ctl"), none for other transports. */
	char worker_ctl_url[PF_CONFIG_STR];
	/* PF_ACCOUNTANT_URL: NNG URL of the accountant.  Default
	 * inproc://pf-accountant. */
	char accountant_url[PF_CONFIG_STR];
	/* PF_ACCOUNTANT_PUB_URL: NNG URL the accountant publishes balance
	 * changes on (pub0; ingresses subscribe).  Default
	 * inproc://pf-accountant-pub. */
	char accountant_pub_url[PF_CONFIG_STR];
	/* PF_ACCOUNTANT_LOG_DIR: directory of the accountant's event log
	 * segments and checkpoint.  Default data/accountant. */
	char accountant_log_dir[PF_CONFIG_STR];
	/* PF_SPOOL_DIR: directory of the ingress's usage spool (usage
	 * events kept until the accountant acks them; one ingress per
	 * directory).  Default data/spool. */
	char spool_dir[PF_CONFIG_STR];
	/* PF_SPOOL_SYNC_AFTER_MS: the spool is fdatasync'ed for the events
	 * still unacked this long after their write (default 100; 0 = as
	 * soon as written; an acked event is in the accountant's fsync'ed
	 * event log) */
	uint32_t spool_sync_after_ms;
	/* PF_BODY_MAX: client request body cap, bytes */
	uint32_t body_max;
	/* PF_HTTP_THREADS: ingress HTTP threads (default 2) */
	uint32_t http_threads;
	/* PF_HTTP_CONN_MEMORY: libmicrohttpd's memory per client connection,
	 * bytes (common/limits.h PF_HTTP_CONN_MEMORY_DEFAULT); it bounds the
	 * request header block */
	uint32_t http_conn_memory;
	/* PF_SCHED_BATCH: 1 = serve, ingress and worker run every thread
	 * under SCHED_BATCH (common/cli.h pf_cli_set_sched; default 0) */
	uint32_t sched_batch;
	/* PF_SERVE_FUSED: 1 = serve runs HTTP_THREADS loops, each an HTTP
	 * daemon and the transfers of its requests (default 1) */
	uint32_t serve_fused;
	/* PF_UPSTREAM_OWN_CLIENT: 1 = plain http:// upstreams at an IP
	 * address (no proxy) go through the worker's own HTTP/1.1 client
	 * (workers/h1.h), 0 = curl for every upstream (default 1) */
	uint32_t upstream_own_client;
	/* PF_WORKER_THREADS: upstream transfer threads per worker (default 1) */
	uint32_t worker_threads;
	/* PF_CONNECT_TIMEOUT_MS, PF_FIRST_BYTE_TIMEOUT_MS, PF_IDLE_TIMEOUT_MS,
	 * PF_TOTAL_TIMEOUT_MS: upstream defaults, channels may override */
	uint32_t connect_timeout_ms;
	uint32_t first_byte_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t total_timeout_ms;
	/* PF_CLIENT_TIMEOUT_S: idle client connection timeout */
	uint32_t client_timeout_s;
	/* PF_AUTH_CACHE_TTL_MS: how long a token lookup is trusted */
	uint32_t auth_cache_ttl_ms;
	/* PF_CHANNEL_REFRESH_MS: channel/routing snapshot reload interval */
	uint32_t channel_refresh_ms;
	/* PF_CHANNEL_FAIL_MAX: failures in a row that disable a channel
	 * automatically (status 3; 0 = never) */
	uint32_t channel_fail_max;
	/* PF_CHANNEL_PROBE_MS: how often automatically disabled channels are
	 * probed to re-enable them (0 = never) */
	uint32_t channel_probe_ms;
	/* PF_QUOTA_PER_UNIT: quota units per USD (default 500000) */
	int64_t quota_per_unit;
	/* PF_LOG_LEVEL: debug|info|warn|error (default info) */
	pf_log_level log_level;
} pf_config;

/* pf_config_defaults fills cfg with built-in defaults. */
void pf_config_defaults(pf_config *cfg);

/*
 * pf_config_load builds a configuration from defaults, the optional file
 * (path may be NULL) and the environment (envp, NULL-terminated "K=V"
 * strings; pass environ).  On error writes a message naming the key or
 * file line into errbuf (errlen bytes) and returns PF_ECONFIG (or PF_EIO
 * when the file cannot be read); *ret_cfg is written only on success.
 */
PF_NODISCARD pf_err pf_config_load(const char *path, char *const *envp,
    pf_config *ret_cfg, char *errbuf, size_t errlen);

/*
 * pf_config_set applies one key (with or without "PF_" prefix, any case)
 * to cfg.  Errors: PF_ECONFIG with a message in errbuf.
 */
PF_NODISCARD pf_err pf_config_set(pf_config *cfg, const char *key,
    const char *value, char *errbuf, size_t errlen);

/* pf_config_usage prints every key, its meaning and its default to f, for
 * the --help of every subcommand. */
void pf_config_usage(FILE *f);

/* pf_config_usage_some does the same for the keys named in names (without
 * PF_, NULL-terminated), for a subcommand that reads only those. */
void pf_config_usage_some(FILE *f, const char *const *names);

#endif /* PF_COMMON_CONFIG_H */
