/*
 * body.h -- checks on a client's JSON request body before it is relayed.
 *
 * The body is forwarded verbatim; the ingress only needs the model, the
 * stream flag and stream_options.include_usage, and must refuse bodies an
 * upstream should never see (not JSON, too deep, invalid UTF-8).
 */
#ifndef PF_INGRESS_BODY_H
#define PF_INGRESS_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"

/* What the ingress reads from a request body. */
typedef struct ing_body_info {
	char model[PF_MODEL_NAME_MAX + 1];
	int stream;       /* "stream": true */
	int client_usage; /* "stream_options": {"include_usage": true} */
	/* "max_tokens", "max_completion_tokens" or "max_output_tokens"
	 * (the largest non-negative integer given), -1 when absent */
	int64_t max_tokens;
} ing_body_info;

/*
 * ing_json_depth_ok scans buf[0..len) for [ and { outside JSON strings and
 * returns 1 if the nesting never exceeds max_depth, 0 otherwise.  It does
 * not validate the JSON; a parser still must.
 */
int ing_json_depth_ok(const char *buf, size_t len, unsigned max_depth);

/*
 * ing_body_parse validates a chat/completions-style body: a JSON object
 * (depth <= PF_JSON_MAX_DEPTH, valid UTF-8) with "model" a non-empty
 * string of at most PF_MODEL_NAME_MAX bytes, "stream" a boolean if
 * present, "stream_options" an object if present.  The max-tokens members
 * are read when they are integers (anything else is left to upstream).  On success fills
 * *ret_info.  Errors: PF_EINVAL with a client-facing message in errbuf
 * (errlen bytes); *ret_info untouched.  PF_ENOMEM.
 */
PF_NODISCARD pf_err ing_body_parse(const char *buf, size_t len,
    ing_body_info *ret_info, char *errbuf, size_t errlen);

#endif /* PF_INGRESS_BODY_H */
