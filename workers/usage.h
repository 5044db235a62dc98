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
 * Estimation, when upstream reported nothing (common/tokest.h): the
 * completion over the generated text the relay passed on (content,
 * reasoning, refusal, tool-call names and arguments), the prompt over the
 * request's input text only (no keys, roles or JSON syntax).
 */
#ifndef PF_WORKERS_USAGE_H
#define PF_WORKERS_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"
#include "common/tokest.h"

struct pf_json;

/* Usage state of one relay. */
typedef struct wrk_usage {
	pf_usage_tokens reported; /* valid when found */
	uint8_t found;            /* upstream reported usage */
	pf_tokest completion;     /* estimate over the delivered text */
	int64_t parts[3]; /* provider's running counts (Anthropic: input,
			     cache write, cache read) */
	/* the request body's prompt estimate, taken before the body was
	 * given back (workers/attempt.c drop_request_body) when
	 * has_prompt_estimate */
	int64_t prompt_estimate;
	uint8_t has_prompt_estimate;
} wrk_usage;

/*
 * wrk_usage_openai_read reads the usage member of d's root (a parsed
 * answer or chunk, common/json.h) when it is an object:
 * prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens
 * (missing or non-integer members count 0, negatives are refused).
 * Returns 1 and writes *ret when found, 0 otherwise.
 */
int wrk_usage_openai_read(const struct pf_json *d, pf_usage_tokens *ret);

/*
 * wrk_usage_openai_is_usage_chunk says whether a parsed stream chunk is
 * the usage-only chunk OpenAI sends when stream_options.include_usage is
 * set: "choices" is an empty array and "usage" an object.
 */
int wrk_usage_openai_is_usage_chunk(const struct pf_json *d);

/*
 * wrk_usage_openai_content feeds the generated text of a chat completion,
 * a stream chunk, a legacy completion or a Responses API object or delta
 * event (d's root, borrowed) into *e: choices[].message / choices[].delta
 * (content, reasoning_content, refusal, tool_calls[].function.name and
 * .arguments), choices[].text, output[].content[].text, output[].arguments
 * and the delta of response.output_text.delta and
 * response.function_call_arguments.delta events.
 */
void wrk_usage_openai_content(struct pf_json *d, pf_tokest *e);

/*
 * wrk_usage_result fills *ret with the reported usage, or else with an
 * estimate flagged estimated: prompt from u->prompt_estimate when
 * has_prompt_estimate,
 * else from the request body's input text (pf_tokest_prompt_body),
 * completion from u->completion.
 */
void wrk_usage_result(const wrk_usage *u, const uint8_t *req_body,
    size_t req_len, pf_usage_tokens *ret);

#endif /* PF_WORKERS_USAGE_H */
