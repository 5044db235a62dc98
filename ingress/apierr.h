/*
 * apierr.h -- OpenAI-style error bodies and the mapping of relay endings to
 * HTTP statuses.
 *
 *   {"error":{"message":"...","type":"...","param":null,"code":"..."}}
 */
#ifndef PF_INGRESS_APIERR_H
#define PF_INGRESS_APIERR_H

#include <stddef.h>

/* One error class: status, OpenAI "type" and "code" (code may be NULL,
 * written as null). */
typedef struct ing_apierr {
	unsigned status;
	const char *type;
	const char *code;
} ing_apierr;

extern const ing_apierr ING_ERR_BAD_REQUEST;       /* 400 */
extern const ing_apierr ING_ERR_INVALID_KEY;       /* 401 */
extern const ing_apierr ING_ERR_MODEL_DENIED;      /* 403 */
extern const ing_apierr ING_ERR_IP_DENIED;         /* 403 */
extern const ing_apierr ING_ERR_NOT_FOUND;         /* 404 unknown URL */
extern const ing_apierr ING_ERR_MODEL_NOT_FOUND;   /* 404 */
extern const ing_apierr ING_ERR_TOO_LARGE;         /* 413 */
extern const ing_apierr ING_ERR_HEADERS_TOO_LARGE; /* 431 */
extern const ing_apierr ING_ERR_RATE_LIMITED;      /* 429 from every upstream */
extern const ing_apierr ING_ERR_INSUFFICIENT_QUOTA; /* 429 no credit */
extern const ing_apierr ING_ERR_INTERNAL;           /* 500 */
extern const ing_apierr ING_ERR_UPSTREAM;           /* 502 */
extern const ing_apierr ING_ERR_NO_CHANNEL;         /* 503 */
extern const ing_apierr ING_ERR_NO_WORKER;          /* 503 */
extern const ing_apierr ING_ERR_UNAVAILABLE;        /* 503 backend down */
extern const ing_apierr ING_ERR_TIMEOUT;            /* 504 upstream timeout */
extern const ing_apierr ING_ERR_WORKER_LOST;        /* 504 */

/*
 * ing_apierr_json returns a new NUL-terminated JSON error body for e with
 * message (any bytes; invalid UTF-8 is replaced) and writes its length to
 * *ret_len.  The caller frees the result with free().  Returns NULL only
 * when out of memory.
 */
char *ing_apierr_json(
    const ing_apierr *e, const char *message, size_t *ret_len);

/*
 * ing_apierr_anthropic_json is ing_apierr_json in Anthropic's shape, for
 * /v1/messages: {"type":"error","error":{"type":...,"message":...}} with
 * the type derived from e->status.  Same ownership and errors.
 */
char *ing_apierr_anthropic_json(
    const ing_apierr *e, const char *message, size_t *ret_len);

/*
 * ing_apierr_for_end maps a relay.end reason (pf_end_reason) that came
 * without a relay.head to the error class the client sees.
 */
const ing_apierr *ing_apierr_for_end(int reason);

/*
 * ing_apierr_for_failure is ing_apierr_for_end that also weighs the last
 * upstream status: when the last channel tried answered 429, the client
 * gets 429 (back off and retry) instead of 502.
 */
const ing_apierr *ing_apierr_for_failure(int reason, int upstream_status);

#endif /* PF_INGRESS_APIERR_H */
