/*
 * usage.h -- token usage: what upstream reported, or an estimate of it.
 *
 * OpenAI semantics are the reference (prompt includes cached tokens):
 * relay.end carries them.  Providers with other semantics convert when
 * they read: the Anthropic provider (to come) reads input_tokens +
 * cache_creation_input_tokens + cache_read_input_tokens as prompt,
 * cache_read_input_tokens as cached, and assigns (never adds) the
 * cumulative output_tokens of the last message_delta as completion.
 *
 * Estimation, when upstream reported nothing: "units" are counted over
 * text actually delivered (ASCII bytes count 1, each non-ASCII code point
 * counts 4, since CJK text runs about a token per character) and tokens =
 * ceil(units / 4).
 */
#ifndef PF_WORKERS_USAGE_H
#define PF_WORKERS_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"

struct json_t;

/* Usage state of one relay. */
typedef struct wrk_usage {
	pf_usage_tokens reported;  /* valid when found */
	uint8_t found;             /* upstream reported usage */
	uint64_t completion_units; /* estimation units of delivered text */
	int64_t parts[3]; /* provider's running counts (Anthropic: input,
			     cache write, cache read) */
} wrk_usage;

/* wrk_text_units returns the estimation units of len bytes of UTF-8. */
uint64_t wrk_text_units(const char *s, size_t len);

/* wrk_units_tokens converts units to tokens, rounding up. */
int64_t wrk_units_tokens(uint64_t units);

/*
 * wrk_usage_openai_read reads root.usage when it is an object:
 * prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens
 * (missing or non-integer members count 0, negatives are refused).
 * Returns 1 and writes *ret when found, 0 otherwise.
 */
int wrk_usage_openai_read(const struct json_t *root, pf_usage_tokens *ret);

/*
 * wrk_usage_openai_is_usage_chunk says whether a parsed stream chunk is
 * the usage-only chunk OpenAI sends when stream_options.include_usage is
 * set: "choices" is an empty array and "usage" an object.
 */
int wrk_usage_openai_is_usage_chunk(const struct json_t *root);

/*
 * wrk_usage_openai_content_units counts the units of the generated text
 * in a chat completion, a stream chunk or a legacy completion:
 * choices[].message / choices[].delta (content, reasoning_content,
 * refusal, tool_calls[].function.arguments) and choices[].text.
 */
uint64_t wrk_usage_openai_content_units(const struct json_t *root);

/*
 * wrk_usage_prompt_units estimates the units of a request body's input:
 * messages[].content (string or parts' text), system, prompt, input.
 * Returns 0 for a body that is not a JSON object.
 */
uint64_t wrk_usage_prompt_units(const uint8_t *body, size_t len);

/*
 * wrk_usage_result fills *ret with the reported usage, or else with an
 * estimate (prompt from the request body, completion from the delivered
 * text) flagged estimated.
 */
void wrk_usage_result(const wrk_usage *u, const uint8_t *req_body,
    size_t req_len, pf_usage_tokens *ret);

#endif /* PF_WORKERS_USAGE_H */
