/*
 * buf.h -- a capped, growable byte buffer for the worker's upstream data.
 */
#ifndef PF_WORKERS_BUF_H
#define PF_WORKERS_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wrk_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} wrk_buf;

/* wrk_buf_init makes b empty; no allocation. */
void wrk_buf_init(wrk_buf *b);

/* wrk_buf_fini frees b's storage and makes it empty. */
void wrk_buf_fini(wrk_buf *b);

/*
 * wrk_buf_append copies n bytes to the end of b, growing it.  max is the
 * cap for b->len.  Errors: PF_ETOOBIG (would exceed max), PF_ENOMEM; on
 * error b is unchanged.  One spare byte is kept so b->data[b->len] can be
 * a NUL (see wrk_buf_cstr).
 */
PF_NODISCARD pf_err wrk_buf_append(
    wrk_buf *b, const void *p, size_t n, size_t max);

/* wrk_buf_cstr NUL-terminates b (without counting the NUL) and returns its
 * data, or "" when b never held anything. */
const char *wrk_buf_cstr(wrk_buf *b);

#endif /* PF_WORKERS_BUF_H */
