/*
 * limits.h -- every cap on a buffer fed from outside lives here.
 *
 * Runtime-configurable limits (request body cap, timeouts) have their
 * defaults here and their values in pf_config.
 */
#ifndef PF_COMMON_LIMITS_H
#define PF_COMMON_LIMITS_H

/* HTTP ingress */
#define PF_BODY_MAX_DEFAULT (4u * 1024u * 1024u)  /* PF_BODY_MAX */
#define PF_BODY_MAX_CEILING (64u * 1024u * 1024u) /* hard upper bound */
/* MHD per-connection memory pool (PF_HTTP_CONN_MEMORY): request line +
 * headers, then the response headers and the chunk being written.  Paid
 * in full by every open connection, so by every open stream (MHD zeroes
 * what it frees, so every page is touched).  libmicrohttpd 0.9.75 keeps
 * the request head in the pool until the answer is out, and takes a head
 * that leaves too little for the answer's own head (then closes without
 * a word): the gateway answers 431 (JSON) to a head whose bytes plus
 * PF_MHD_HEADER_RECORD per header leave less than PF_HTTP_REPLY_RESERVE
 * (+ _ANTHROPIC on /v1/messages).  So 4096 takes 3,840 bytes less 64 per
 * header: ~3.4 KiB in 6 headers, ~2.5 KiB in 20 (the SDKs send ~1 KiB in
 * ~15); 8192 takes 4 KiB more.  Events bigger than what is left of the
 * pool go out in several writes. */
#define PF_HTTP_REPLY_RESERVE 256u /* our largest answer head: 233 bytes */
#define PF_HTTP_REPLY_RESERVE_ANTHROPIC 48u /* its request-id header */
#define PF_MHD_HEADER_RECORD 64u /* MHD's record per header (x86-64) */
#define PF_HTTP_CONN_MEMORY_DEFAULT 4096u
#define PF_HTTP_CONN_MEMORY_MIN 4096u
#define PF_HTTP_CONN_MEMORY_MAX (256u * 1024u)
#define PF_HTTP_CONN_TIMEOUT_S 30u          /* idle client connection */
#define PF_HTTP_BODY_MIN_RATE (16u * 1024u) /* body bytes/s we wait for */
#define PF_HTTP_MAX_CONNS 20000u
/* descriptors kept for the process's own files and sockets: the client
 * connections accepted are capped so they never take these */
#define PF_FD_RESERVE 256u
#define PF_JSON_MAX_DEPTH 64u    /* nesting in request bodies */
#define PF_MODEL_NAME_MAX 128u   /* bytes in a model name */
#define PF_API_KEY_MAX 128u      /* bytes in an sk- key */
#define PF_API_KEY_PREFIX_LEN 8u /* visible prefix kept in the DB */

#define PF_DRAIN_GRACE_MS 180000u /* SIGTERM: time left to requests in flight */

/* Process memory (common/cli.c) */
#define PF_MALLOC_ARENAS 2             /* glibc arenas (M_ARENA_MAX) */
#define PF_MALLOC_TRIM_EVERY_MS 5000u  /* look for free heap to return */
#define PF_MALLOC_TRIM_FREE (8u << 20) /* free bytes worth a malloc_trim */

/* Relay */
#define PF_RELAY_MAX_CANDIDATES 16u           /* channels tried per request */
#define PF_STREAM_BUFFER_MAX (256u * 1024u)   /* bytes queued per stream */
#define PF_RESPONSE_MAX (16u * 1024u * 1024u) /* non-stream response */
#define PF_SSE_EVENT_MAX (1024u * 1024u)      /* one SSE event from upstream */
#define PF_UPSTREAM_HEADER_MAX (64u * 1024u)  /* upstream response headers */
#define PF_ERROR_BODY_MAX (64u * 1024u)       /* upstream error body kept */
#define PF_REPLY_SOCKETS_MAX 64u /* worker: reply sockets per thread */
#define PF_REPLY_SENDBUF 1024    /* worker: messages queued per reply socket */
/* worker: replies packed into one transport message before it goes out
 * (a loop turn's replies to one ingress, when the ingress reads batches) */
#define PF_REPLY_BATCH_BYTES (64u * 1024u)
#define PF_CANCEL_INBOX_MAX 1024u /* worker: cancels queued per thread */
#define PF_LANE_QUEUE_MAX 4096u   /* serve: requests waiting for a worker */
#define PF_LANE_LOCAL_MAX 16384u  /* serve, fused: one loop's own requests */
/* worker: requests taken off the pull socket ahead of the transfer
 * threads (more wait in the ingresses, free for other workers) */
#define PF_WORKER_INTAKE_AHEAD 64u
/* flow control: relay.data bytes a worker may send ahead of the client */
#define PF_STREAM_CREDIT_WINDOW (64u * 1024u)
#define PF_STREAM_CREDIT_STEP (16u * 1024u) /* ingress grants in steps */
/* a flow-controlled stream's queue: the window, one event past it, and
 * one curl read */
#define PF_STREAM_BUFFER_FLOW_MAX                                              \
	(PF_STREAM_CREDIT_WINDOW + PF_SSE_EVENT_MAX + 64u * 1024u)
#define PF_CTL_SOCKETS_MAX 256u /* ingress: worker control sockets */
#define PF_CTL_MSG_MAX 256u     /* worker: control message (cancel, credit) */
#define PF_CTL_QUEUE 8192 /* control messages queued per socket (NNG max) */
/* a dialed socket redials a lost peer this often, backing off to the max
 * (common/nngdial.h) */
#define PF_REDIAL_MIN_MS 50
#define PF_REDIAL_MAX_MS 250
#define PF_RELAY_HEADERS_MAX 16u        /* client headers passed upstream */
#define PF_RELAY_HEADER_NAME_MAX 64u    /* bytes in such a header name */
#define PF_RELAY_HEADER_VALUE_MAX 1024u /* bytes in its value */

/* Messages between roles */
#define PF_MSG_MAX (PF_BODY_MAX_CEILING + 64u * 1024u)
#define PF_MSG_MAX_DEPTH 8u                /* msgpack nesting */
#define PF_MSG_STR_MAX PF_BODY_MAX_CEILING /* one str/bin field */
#define PF_MSG_ARRAY_MAX 4096u             /* entries in one array */
#define PF_EVENT_ID_MAX 128u               /* bytes in an event id */
#define PF_URL_MAX 2048u                   /* base URLs, proxy URLs, NNG URLs */
#define PF_SECRET_MAX 4096u                /* channel keys */
#define PF_MSG_SHORT_MAX 256u              /* method, content type, provider */
/* msgpack objects in one message: an ack of PF_MSG_ARRAY_MAX ids plus room
 * for fields a newer peer adds; bounds msgpack-c's allocations */
#define PF_MSG_OBJECTS_MAX (PF_MSG_ARRAY_MAX + 1024u)

/* Configuration */
#define PF_CONFIG_VALUE_MAX 2048u
#define PF_CONFIG_FILE_MAX (256u * 1024u)

/* Admin CLI and logins */
#define PF_PASSWORD_MAX 1024u              /* bytes in a password */
#define PF_MODEL_MAPPING_MAX (64u * 1024u) /* channel model_mapping JSON */

/* Mock model (bench/mock*.c) */
#define PF_MOCK_CHUNKS_MAX 1000000u             /* content chunks */
#define PF_MOCK_CHUNK_BYTES_MAX (1024u * 1024u) /* text bytes per chunk */
#define PF_MOCK_BODY_MAX (64u * 1024u * 1024u)  /* non-stream body built */
#define PF_MOCK_DELAY_MAX_MS 3600000u           /* any *-ms knob */
#define PF_MOCK_THREADS_MAX 256u                /* --threads */
#define PF_MOCK_EMBED_INPUTS_MAX 2048u          /* embeddings inputs */
#define PF_MOCK_EMBED_DIMS_MAX 8192u            /* embeddings dimensions */
#define PF_MOCK_EMBED_DIMS_DEFAULT 16u
#define PF_MOCK_STATS_BODY_MAX (64u * 1024u)    /* last body kept */
#define PF_MOCK_STATS_HEADERS_MAX (16u * 1024u) /* last headers kept */
#define PF_MOCK_CONN_MEMORY (8u * 1024u)        /* MHD pool per connection */

/* /mock/knobs/SPEC/ path prefix and POST /mock/knobs body */
#define PF_MOCK_PATH_KNOBS_MAX 256u

/* Load generator (bench/loadgen*.c) */
#define PF_LOADGEN_LINE_MAX 4096u /* status/header/chunk-size line */
#define PF_LOADGEN_HEADER_BLOCK_MAX (64u * 1024u) /* response header block */
#define PF_LOADGEN_EVENT_KEEP 1024u  /* SSE event start / body tail kept */
#define PF_LOADGEN_CONNS_MAX 100000u /* --connections */
#define PF_LOADGEN_THREADS_MAX 64u   /* --threads */
#define PF_LOADGEN_EXTRA_HEADERS_MAX 8192u /* bytes of -H headers */
/* x-request-id the bench keeps per answer for --check-billing */
#define PF_LOADGEN_REQUEST_ID_MAX 64u

/* Caches */
#define PF_AUTH_CACHE_MAX 100000u /* tokens kept in memory */
/* key lookups off the HTTP threads (ingress/auth.c): distinct keys queued
 * or in flight (beyond: "unavailable" at once), keys per query, and how
 * long a request waits for its lookup */
#define PF_AUTH_PENDING_MAX 128u
#define PF_AUTH_BATCH_MAX 64u
#define PF_AUTH_WAIT_MS 5000u

/* Record logs (common/reclog.c): accountant event log, ingress spool */
#define PF_RECLOG_RECORD_MAX (1024u * 1024u)              /* payload bytes */
#define PF_RECLOG_SEGMENT_DEFAULT (64u * 1024u * 1024u)   /* rotate after */
#define PF_RECLOG_FILE_MAX (4ull * 1024u * 1024u * 1024u) /* file read */
#define PF_RECLOG_BUFFER_FLUSH (1024u * 1024u) /* write(2) before a sync */

/* Accountant */
#define PF_ACCT_BATCH_MAX 2048u     /* events applied in one transaction */
#define PF_ACCT_BATCH_WINDOW_MS 2u  /* group commit: wait for more events */
#define PF_ACCT_CONTEXTS 512u       /* requests in flight on its socket */
#define PF_ACCT_QUEUE_MAX 65536u    /* requests queued for the actor */
#define PF_ACCT_GRANT_TTL_MS 30000u /* a grant lapses unless renewed */
#define PF_ACCT_CACHE_MAX 1000000u  /* users / grant pools kept in memory */
#define PF_ACCT_RELOAD_MS 5000u     /* re-read a cached balance after */
#define PF_ACCT_STOP_GRACE_MS 5000u /* stop: then cancel what still waits */
#define PF_DB_STOP_GRACE_MS 1000u   /* ingress reload/health threads: same */
/* usage events in one usage.batch message (21 msgpack objects each: stays
 * under PF_MSG_OBJECTS_MAX) */
#define PF_USAGE_BATCH_MAX 128u

/* Ingress billing (ingress/billing.c) */
#define PF_BILLING_CONTEXTS 64u         /* accountant requests in flight */
#define PF_BILLING_TIMEOUT_MS 5000u     /* usage send: resend after */
#define PF_BILLING_GRANT_WAIT_MS 3000u  /* a request waits for credit */
#define PF_BILLING_RETRY_MS 1000u       /* unacked usage: resend after */
#define PF_BILLING_RENEW_MS 10000u      /* renew grants while holding */
#define PF_BILLING_IDLE_MS 10000u       /* release credit unused this long */
#define PF_BILLING_DENY_MS 1000u        /* "no credit" trusted this long */
#define PF_BILLING_GRANT_AHEAD 4        /* ask for 1 + this many estimates */
#define PF_BILLING_GRANT_AHEAD_MAX 64   /* ... and at most */
#define PF_BILLING_CREDITS_MAX 1000000u /* (user, token) credits kept */
#define PF_BILLING_PENDING_MAX 1000000u /* usage events awaiting an ack */
/* completion tokens held when a request names no max_tokens */
#define PF_BILLING_DEFAULT_COMPLETION 4096
#define PF_BILLING_COMPLETION_MAX 10000000 /* max_tokens taken at most */

/* ingress: worker URLs in PF_WORKER_URL (one push socket each) */
#define PF_RELAY_WORKERS_MAX 64u

#endif /* PF_COMMON_LIMITS_H */
