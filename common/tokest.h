/*
 * tokest.h -- token count estimates for when the upstream reports none.
 *
 * Used for billing (docs/billing.md, "Estimated usage"): a cut stream's
 * delivered completion and a request's prompt.  The aim is unbiased to
 * slightly low against real BPE tokenizers on typical text, and never
 * above the count the mock model reports (docs/mock-model.md), so an
 * estimate never bills more than the upstream's own usage would have.
 *
 * The estimate is the smaller of two counts over the text fed:
 *   - a word count shaped like BPE pre-tokenization: a run of letters,
 *     digits and '_' is one token per 8 weight units (ASCII weighs 1, a
 *     two-byte UTF-8 code point 2: accented Latin, Greek, Cyrillic...); a
 *     run of ASCII punctuation one token per 3 bytes; each code point of
 *     three or four UTF-8 bytes (CJK, kana, emoji, typographic marks) one
 *     token; whitespace nothing, except a run of two or more, or one with
 *     a newline, is one token;
 *   - ceil(bytes / 4) (the mock's rule; ~4 bytes a token for English).
 * Runs continue across pf_tokest_feed calls, so a word split over two
 * stream deltas counts once, and the count of a prefix of a text never
 * exceeds the count of the whole text.  Against the mock: its natural
 * chunk "tok<i> " counts 1 (i < 100000), a prompt at most ceil(bytes/4).
 */
#ifndef PF_COMMON_TOKEST_H
#define PF_COMMON_TOKEST_H

#include <stddef.h>
#include <stdint.h>

struct pf_json;

/* Estimator state; zero-initialise (memset or = { 0 }) to start. */
typedef struct pf_tokest {
	uint64_t bytes;  /* bytes fed (token ids count 4) */
	uint64_t tokens; /* word count so far */
	uint32_t run;    /* weight of the current run */
	uint8_t cls;     /* class of the current run (tokest.c) */
} pf_tokest;

/* pf_tokest_feed adds len bytes of UTF-8 text s, continuing the current
 * run.  Invalid UTF-8 is counted byte by byte, never rejected. */
void pf_tokest_feed(pf_tokest *e, const char *s, size_t len);

/* pf_tokest_break ends the current run: the next text is separate (a
 * new message, another field). */
void pf_tokest_break(pf_tokest *e);

/* pf_tokest_id counts one token id (an integer in a prompt): 1 token,
 * 4 bytes. */
void pf_tokest_id(pf_tokest *e);

/* pf_tokest_tokens returns the estimate: min(word count, ceil(bytes/4)). */
int64_t pf_tokest_tokens(const pf_tokest *e);

/*
 * pf_tokest_prompt_json feeds the input text of a parsed request body
 * (d's root, borrowed; common/json.h) into *e, each string separately: the top-level
 * "messages", "system", "prompt", "input" and "instructions"; a string
 * counts its text, an integer is a token id, an array each element, an
 * object its "text", "content" (recursively), "arguments", "output" and
 * tool_calls[].function.{name,arguments}.  Keys, roles and JSON syntax
 * never count.  Not an object: nothing fed.
 */
void pf_tokest_prompt_json(pf_tokest *e, struct pf_json *d);

/*
 * pf_tokest_prompt_body parses body[0..len) (JSON) and returns its prompt
 * estimate (pf_tokest_prompt_json, then pf_tokest_tokens); 0 for a body
 * that is not a JSON object.
 */
int64_t pf_tokest_prompt_body(const uint8_t *body, size_t len);

#endif /* PF_COMMON_TOKEST_H */
