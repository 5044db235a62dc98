/*
 * fuzz_check.h -- the property every input must satisfy, shared by the
 * corpus replay test and the libFuzzer target:
 *   - pf_msg_decode never crashes, leaks or reads out of bounds (ASan);
 *   - when it accepts x, pf_msg_peek_kind agrees on the kind, and
 *     e1 = encode(decode(x)) decodes again to an equal message whose
 *     encoding is byte-identical to e1 (the codec is a fixed point after
 *     one step; x itself may differ from e1 by non-minimal integer forms
 *     or ignored trailing fields).
 */
#ifndef PF_TESTS_FUZZ_CHECK_H
#define PF_TESTS_FUZZ_CHECK_H

#include <string.h>

#include "common/msg.h"
#include "msg_samples.h"

/* fuzz_check returns NULL when the property holds, else what broke; with
 * ret_ok non-NULL it reports whether x decoded. */
static const char *
fuzz_check(const uint8_t *x, size_t len, int *ret_ok, char *why, size_t whylen)
{
	pf_msg *m1 = NULL, *m2 = NULL;
	pf_buf e1, e2;
	pf_msg_kind kind;
	const char *bad = NULL;
	pf_err err;

	if (ret_ok != NULL)
		*ret_ok = 0;
	err = pf_msg_decode(x, len, &m1);
	if (err != PF_OK)
		return m1 == NULL ? NULL : "ret_msg written on error";
	if (ret_ok != NULL)
		*ret_ok = 1;
	pf_buf_init(&e1);
	pf_buf_init(&e2);
	err = pf_msg_peek_kind(x, len, &kind);
	if (err != PF_OK || kind != m1->kind) {
		bad = "peek_kind disagrees with decode";
		goto out;
	}
	err = pf_msg_encode(m1, &e1);
	if (err != PF_OK) {
		bad = "a decoded message does not encode";
		goto out;
	}
	err = pf_msg_decode(e1.data, e1.len, &m2);
	if (err != PF_OK) {
		bad = "re-encoding does not decode";
		goto out;
	}
	if (!msg_equal(m1, m2, why, whylen)) {
		bad = "decode(encode(m)) differs from m";
		goto out;
	}
	err = pf_msg_encode(m2, &e2);
	if (err != PF_OK || e1.len != e2.len
	    || memcmp(e1.data, e2.data, e1.len) != 0)
		bad = "second encoding not byte-identical";
out:
	pf_msg_free(m1);
	pf_msg_free(m2);
	pf_buf_fini(&e1);
	pf_buf_fini(&e2);
	return bad;
}

#endif /* PF_TESTS_FUZZ_CHECK_H */
