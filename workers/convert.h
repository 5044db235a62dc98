/*
 * convert.h -- Anthropic Messages clients on OpenAI-compatible channels.
 *
 * The request body is translated to a chat completion (system, text,
 * images, tool use and tool results, tools, tool_choice, stop sequences),
 * and the answer back: a chat.completion becomes a message, a chunk
 * stream becomes message_start, content_block_start/_delta/_stop per text
 * or tool_use block, message_delta (stop_reason, usage) and message_stop.
 * Usage: Anthropic's input_tokens exclude cached tokens, so input_tokens
 * = prompt_tokens - cached_tokens and cache_read_input_tokens = cached.
 * Upstream error bodies become Anthropic error objects.
 */
#ifndef PF_WORKERS_CONVERT_H
#define PF_WORKERS_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "workers/buf.h"
#include "workers/provider.h"

/* The stream translation state of one relay. */
typedef struct wrk_conv {
	char id[64];     /* message id, from the first chunk */
	char model[128]; /* model, from the first chunk */
	uint8_t started; /* message_start sent */
	uint8_t ended;   /* message_stop sent */
	int open_block;  /* index of the open content block, -1 none */
	int open_kind;   /* 1 text, 2 tool_use */
	int next_block;  /* index of the next block */
	int tool_index;  /* OpenAI tool_calls index of the open block */
	char stop_reason[32];
	int64_t prompt, completion, cached; /* upstream usage, -1 unknown */
	int64_t input_estimate; /* message_start's input_tokens (upstream
	                         * reports usage only at the end) */
} wrk_conv;

/* wrk_conv_emit_cb receives one translated SSE event ("event: T\ndata:
 * {...}\n\n"); a non-zero return stops the translation with it. */
typedef pf_err (*wrk_conv_emit_cb)(void *arg, const uint8_t *ev, size_t len);

/* wrk_conv_init prepares c for a stream; input_estimate is the prompt's
 * estimated token count, announced in message_start (clients that read
 * it there get an estimate; message_delta brings the real count). */
void wrk_conv_init(wrk_conv *c, int64_t input_estimate);

/*
 * wrk_conv_request translates an Anthropic Messages body into a chat
 * completion body in *ret (model set to model when mlen > 0; usage asked
 * for on streams).  Errors: PF_EINVAL (not a Messages request),
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_conv_request(const uint8_t *body, size_t len,
    const char *model, size_t mlen, wrk_body *ret);

/*
 * wrk_conv_stream_event translates one upstream chat completion chunk
 * event (data is its data field, NUL-terminated) into zero or more
 * Anthropic events.  "[DONE]" ends the message.  Errors: the callback's,
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_conv_stream_event(wrk_conv *c, const char *data,
    size_t len, wrk_conv_emit_cb emit, void *arg);

/* wrk_conv_stream_end closes the message when the stream ended without
 * "[DONE]" (nothing when already closed or never started). */
PF_NODISCARD pf_err wrk_conv_stream_end(
    wrk_conv *c, wrk_conv_emit_cb emit, void *arg);

/*
 * wrk_conv_response translates a chat.completion body into an Anthropic
 * message body in out (reset first).  Errors: PF_EINVAL (not a chat
 * completion: the caller passes the bytes on as they are), PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_conv_response(
    const uint8_t *body, size_t len, wrk_buf *out);

/*
 * wrk_conv_error turns an upstream error body with HTTP status into an
 * Anthropic error object in out (the upstream message kept when there is
 * one).  Errors: PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_conv_error(
    long status, const uint8_t *body, size_t len, wrk_buf *out);

#endif /* PF_WORKERS_CONVERT_H */
