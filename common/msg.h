/*
 * msg.h -- every message that crosses a socket between roles.
 *
 * Wire format: one msgpack array per message,
 *   [version, kind, field1, field2, ...]
 * version first (PF_MSG_VERSION), then the kind, then the kind's fields in
 * the order of the structs below.  A decoder accepts trailing fields it does
 * not know (a newer peer with the same major version) and rejects a message
 * with fewer fields than its kind needs.
 *
 * Decoding is defensive: every declared length (array count, string length)
 * is checked against the bytes left before anything is allocated, nesting is
 * capped at PF_MSG_MAX_DEPTH, and caps from limits.h apply to every field.
 *
 * Ownership: a decoded pf_msg owns one allocation holding the struct and
 * every byte its pf_bytes fields point to; pf_msg_free releases it all.
 * Encoders copy nothing they do not write to the output buffer.
 *
 * Encoding details: ids are bin(16); body and data are bin; every other
 * pf_bytes is str; candidates and usage tokens are nested arrays in struct
 * order; uint8_t flags are integers.  Caps (encoder and decoder alike):
 * urls, reply_addr, path PF_URL_MAX; key PF_SECRET_MAX; model names
 * PF_MODEL_NAME_MAX; method, content_type, provider PF_MSG_SHORT_MAX;
 * event ids, trade_no PF_EVENT_ID_MAX; error PF_ERROR_BODY_MAX; body, data
 * PF_MSG_STR_MAX; PF_RELAY_MAX_CANDIDATES candidates and attempts;
 * PF_RELAY_HEADERS_MAX headers (name PF_RELAY_HEADER_NAME_MAX, value
 * PF_RELAY_HEADER_VALUE_MAX); PF_MSG_ARRAY_MAX ack ids.
 *
 * Fields marked optional were added later and sit at the end of their
 * kind: a decoder fills them with zero / "" / an empty list when an older
 * peer did not send them, so old and new roles interoperate.  In a decoded message every pf_bytes.ptr is non-NULL and followed by
 * a NUL byte not counted in len, so text fields can be used as C strings
 * (check for embedded NULs where it matters).
 */
#ifndef PF_COMMON_MSG_H
#define PF_COMMON_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define PF_MSG_VERSION 1
#define PF_ID_LEN 16 /* request / event ids: 16 random bytes */

typedef enum pf_msg_kind {
	PF_MSG_RELAY_REQUEST = 1,
	PF_MSG_RELAY_HEAD = 2,
	PF_MSG_RELAY_DATA = 3,
	PF_MSG_RELAY_END = 4,
	PF_MSG_RELAY_CANCEL = 5,
	PF_MSG_RELAY_CREDIT = 6,
	PF_MSG_GRANT_REQUEST = 10,
	PF_MSG_GRANT_REPLY = 11,
	PF_MSG_GRANT_RELEASE = 12,
	PF_MSG_USAGE = 20,
	PF_MSG_PAYMENT = 21,
	PF_MSG_ACK = 22,
	PF_MSG_BALANCE = 23,
	PF_MSG_USAGE_BATCH = 24,
} pf_msg_kind;

/* A byte string; not NUL-terminated unless stated.  len 0 = absent. */
typedef struct pf_bytes {
	const uint8_t *ptr;
	size_t len;
} pf_bytes;

/* Upstream API dialect of a channel (and of a client request). */
typedef enum pf_api_type {
	PF_API_OPENAI = 1,
	PF_API_ANTHROPIC = 2,
} pf_api_type;

/* One upstream channel the worker may try, in the order given. */
typedef struct pf_candidate {
	int64_t channel_id;
	int32_t type;            /* pf_api_type */
	pf_bytes base_url;       /* e.g. "https://api.openai.com/v1" */
	pf_bytes key;            /* secret: never logged */
	pf_bytes proxy;          /* "" = no proxy, env ignored */
	pf_bytes upstream_model; /* model name after model_mapping */
	uint32_t connect_timeout_ms;
	uint32_t first_byte_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t total_timeout_ms;
} pf_candidate;

/* A client header forwarded upstream (names lower-case, from the ingress's
 * allow-list). */
typedef struct pf_header {
	pf_bytes name;
	pf_bytes value;
} pf_header;

/* relay.request: ingress -> worker. */
typedef struct pf_relay_request {
	uint8_t id[PF_ID_LEN];
	pf_bytes reply_addr; /* NNG URL the worker sends replies to */
	int64_t deadline_ms; /* unix ms; worker gives up after it */
	pf_bytes method;     /* "POST", "GET" */
	pf_bytes path;  /* upstream path below base_url: "/chat/completions" */
	uint8_t stream; /* client asked for SSE */
	uint8_t client_usage; /* client asked for stream usage chunk */
	int32_t client_api;   /* pf_api_type of the client request */
	pf_bytes body;        /* request body as the client sent it */
	uint32_t n_candidates;
	pf_candidate *candidates; /* n_candidates entries */
	/* optional (absent from older peers: zero / empty) */
	uint32_t credit; /* flow control: relay.data payload bytes the worker
	                  * may send before a relay.credit; 0 = unlimited */
	uint8_t probe;   /* a channel health probe: not billed */
	uint32_t n_headers;
	pf_header *headers; /* client headers to pass upstream */
	uint8_t batch;      /* the ingress reads several replies packed back to
	                * back in one transport message (pf_msg_split) */
} pf_relay_request;

/* relay.head: worker -> ingress, once, before any data. */
typedef struct pf_relay_head {
	uint8_t id[PF_ID_LEN];
	int32_t status; /* HTTP status for the client */
	pf_bytes content_type;
	int64_t channel_id; /* channel that answered */
	uint32_t attempts;  /* upstream attempts made so far */
	/* optional: the worker's control address (NNG URL) taking
	 * relay.cancel and relay.credit for this request; "" = none */
	pf_bytes ctl_addr;
} pf_relay_head;

/* relay.data: worker -> ingress, body bytes in order. */
typedef struct pf_relay_data {
	uint8_t id[PF_ID_LEN];
	uint32_t seq;  /* 0, 1, 2, ... per request */
	pf_bytes data; /* for streams: whole SSE events */
	/* optional (0 from older workers): the worker's completion token
	 * estimate (common/tokest.h) over all it sent up to and including
	 * this message, so the ingress can bill a stream cut by a lost
	 * worker for what it delivered (docs/billing.md) */
	int64_t completion;
} pf_relay_data;

/* Why a relay ended. */
typedef enum pf_end_reason {
	PF_END_DONE = 0,
	PF_END_CLIENT_GONE = 1,
	PF_END_UPSTREAM_ERROR = 2,
	PF_END_TIMEOUT = 3,
	PF_END_WORKER_LOST = 4,
	PF_END_NO_CHANNEL = 5,
} pf_end_reason;

typedef struct pf_usage_tokens {
	int64_t prompt; /* OpenAI meaning: includes cached */
	int64_t completion;
	int64_t cached;
	uint8_t estimated; /* upstream reported none; we counted */
} pf_usage_tokens;

/* How one upstream attempt went, for channel health (not the client's
 * fault: bad input is never a channel failure). */
typedef enum pf_attempt_outcome {
	PF_ATTEMPT_OK = 0,      /* answered; status is the HTTP status */
	PF_ATTEMPT_CONNECT = 1, /* could not connect / TLS / proxy */
	PF_ATTEMPT_TIMEOUT = 2, /* connect, first byte, idle or total */
	PF_ATTEMPT_STATUS = 3,  /* failed over on status (429, 5xx, 401, 403) */
	PF_ATTEMPT_BROKEN = 4,  /* transfer broke (after or before bytes) */
	PF_ATTEMPT_LOCAL = 5,   /* not tried or stopped on our side */
} pf_attempt_outcome;

typedef struct pf_attempt {
	int64_t channel_id;
	int32_t status;  /* upstream HTTP status, 0 if none */
	int32_t outcome; /* pf_attempt_outcome */
} pf_attempt;

/* relay.end: worker -> ingress, last message of a request. */
typedef struct pf_relay_end {
	uint8_t id[PF_ID_LEN];
	uint32_t seq;            /* = number of relay.data sent */
	int32_t reason;          /* pf_end_reason */
	int32_t upstream_status; /* last upstream HTTP status, 0 if none */
	int64_t channel_id;
	pf_usage_tokens usage;
	pf_bytes error; /* short message when reason != DONE */
	/* optional: every upstream attempt in order */
	uint32_t n_attempts;
	pf_attempt *attempt_list;
} pf_relay_end;

/* relay.cancel: ingress -> worker, the client went away. */
typedef struct pf_relay_cancel {
	uint8_t id[PF_ID_LEN];
} pf_relay_cancel;

/* relay.credit: ingress -> worker (control address), the client took
 * `bytes` more relay.data payload bytes: the worker may send that much
 * more (flow control, see pf_relay_request.credit). */
typedef struct pf_relay_credit {
	uint8_t id[PF_ID_LEN];
	uint32_t bytes;
} pf_relay_credit;

/* grant.request: ingress -> accountant, ask for credit. */
typedef struct pf_grant_request {
	uint64_t corr; /* correlation id chosen by the ingress */
	int64_t user_id;
	int64_t token_id;
	int64_t amount; /* quota units wanted */
} pf_grant_request;

/* grant.reply: accountant -> ingress. */
typedef struct pf_grant_reply {
	uint64_t corr;
	int64_t user_id;
	int64_t token_id;
	int64_t granted;    /* quota units, 0..amount */
	int64_t expires_ms; /* unix ms */
	int32_t status;     /* pf_err */
	/* optional, trailing: the accountant's epoch, a random nonzero value
	 * chosen at each start (its grant pools live in memory only); 0 =
	 * unknown (an older accountant).  A new epoch tells the ingress its
	 * earlier grants are gone (docs/billing.md). */
	uint64_t epoch;
} pf_grant_reply;

/* grant.release: ingress -> accountant, give unused credit back. */
typedef struct pf_grant_release {
	int64_t user_id;
	int64_t token_id;
	int64_t amount;
} pf_grant_release;

/* usage: ingress -> accountant, one per finished request. */
typedef struct pf_usage {
	uint8_t event_id[PF_ID_LEN]; /* = relay request id */
	int64_t user_id;
	int64_t token_id;
	int64_t channel_id;
	pf_bytes model;
	pf_usage_tokens tokens;
	int64_t cost;        /* quota units */
	int64_t price_input; /* micro-USD per million tokens */
	int64_t price_output;
	int64_t price_cached;
	int64_t price_call;      /* micro-USD per call, 0 if per-token */
	int64_t group_ratio_ppm; /* group multiplier, parts per million */
	int64_t started_ms;
	int64_t ended_ms;
	int32_t reason; /* pf_end_reason */
	uint8_t stream;
} pf_usage;

/* payment: payments -> accountant, a credit. */
typedef struct pf_payment {
	pf_bytes event_id; /* "topup:<trade_no>" or "redeem:<code>" */
	int64_t user_id;
	int64_t quota;     /* quota units credited */
	int64_t money;     /* minor units of the currency paid */
	pf_bytes provider; /* "epay", "stripe", "admin", "redeem" */
	pf_bytes trade_no;
} pf_payment;

/* ack: accountant -> sender, event ids durably applied. */
typedef struct pf_ack {
	uint32_t n_ids;
	pf_bytes *ids; /* n_ids entries */
} pf_ack;

/* balance: accountant -> subscribers (pub0, best effort), a committed
 * balance changed.  token_id 0: quota is the user's users.quota;
 * token_id > 0: quota is that token's remain_quota (meaningless when
 * unlimited), user_id its owner. */
typedef struct pf_balance {
	int64_t user_id;
	int64_t token_id;
	int64_t quota;
	uint8_t unlimited; /* token notices: the token has no quota limit */
	int64_t at_ms;     /* unix ms of the commit */
} pf_balance;

/* usage.batch: ingress -> accountant, several usage events in one request
 * (e.g. a spool resent after a restart), at most PF_USAGE_BATCH_MAX.
 * Answered by one ack with one id entry per usage, in order: "<event
 * id>" applied or already present, "rejected: <reason>" refused for good,
 * "" not applied now (resend later). */
typedef struct pf_usage_batch {
	uint32_t n_usages;
	pf_usage *usages; /* n_usages entries */
} pf_usage_batch;

/* A decoded message: kind says which union member is valid. */
typedef struct pf_msg {
	uint32_t version;
	pf_msg_kind kind;
	union {
		pf_relay_request relay_request;
		pf_relay_head relay_head;
		pf_relay_data relay_data;
		pf_relay_end relay_end;
		pf_relay_cancel relay_cancel;
		pf_relay_credit relay_credit;
		pf_grant_request grant_request;
		pf_grant_reply grant_reply;
		pf_grant_release grant_release;
		pf_usage usage;
		pf_payment payment;
		pf_ack ack;
		pf_balance balance;
		pf_usage_batch usage_batch;
	} u;
} pf_msg;

/* A growable output buffer for encoders.  Caller owns data; free with
 * pf_buf_fini. */
typedef struct pf_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} pf_buf;

void pf_buf_init(pf_buf *b);
void pf_buf_fini(pf_buf *b);

/*
 * pf_msg_encode appends the encoding of msg (msg->kind selects the member;
 * msg->version is ignored and PF_MSG_VERSION written) to out.  Returns
 * PF_EINVAL for an unknown kind, PF_ETOOBIG if a field exceeds its cap or
 * the result would exceed PF_MSG_MAX, PF_ENOMEM.  On error out->len is
 * unchanged.
 */
PF_NODISCARD pf_err pf_msg_encode(const pf_msg *msg, pf_buf *out);

/*
 * pf_msg_decode parses exactly one message from buf[0..len).  On success
 * *ret_msg is a new message owned by the caller (free with pf_msg_free).
 * Errors: PF_EPROTO (garbage, truncation, wrong types, trailing bytes),
 * PF_EVERSION (unknown version), PF_ETOOBIG (a cap exceeded), PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_msg_decode(
    const void *buf, size_t len, pf_msg **ret_msg);

/*
 * pf_msg_split measures the first encoded message in buf[0..len) (a
 * transport message may hold several back to back, see
 * pf_relay_request.batch) and writes its length to *ret_len; the bytes are
 * only scanned, decode them with pf_msg_decode.  Errors: PF_EPROTO
 * (garbage or truncation), PF_ETOOBIG (a cap exceeded); *ret_len is then
 * untouched.
 */
PF_NODISCARD pf_err pf_msg_split(const void *buf, size_t len, size_t *ret_len);

/* pf_msg_free releases a decoded message; NULL is a no-op. */
void pf_msg_free(pf_msg *msg);

/*
 * pf_msg_clone makes *ret_msg a copy of msg that owns every byte it
 * points to, as pf_msg_decode(pf_msg_encode(msg)) would (free with
 * pf_msg_free), without the codec: for a message handed between threads
 * of one process (common/lane.h).  The encoder's caps apply.  Errors:
 * PF_EINVAL (unknown kind, a NULL pointer with a length), PF_ETOOBIG,
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_msg_clone(const pf_msg *msg, pf_msg **ret_msg);

/* pf_msg_peek_kind reads the kind of an encoded message without decoding
 * the rest (only the array header, version and kind are checked).  Errors
 * as pf_msg_decode. */
PF_NODISCARD pf_err pf_msg_peek_kind(
    const void *buf, size_t len, pf_msg_kind *ret_kind);

/* pf_msg_kind_name returns "relay.request", ...; "unknown" otherwise. */
const char *pf_msg_kind_name(pf_msg_kind kind);

#endif /* PF_COMMON_MSG_H */
