/*
 * ctype.h -- a Content-Type kept for the life of a request: one of the
 * common types as a code, any other as a heap copy.
 *
 * An open stream keeps its answer's type (the worker, to send relay.head;
 * the ingress, for an answer it sends whole); nearly every upstream sends
 * one of a few values, so a 128-byte buffer per copy was waste that every
 * held stream paid.
 */
#ifndef PF_COMMON_CTYPE_H
#define PF_COMMON_CTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"

/* longest type kept, bytes */
#define PF_CTYPE_MAX 127u

/* Zero-initialised: no type. */
typedef struct pf_ctype {
	char *_other;    /* an uncommon type, owned; NULL otherwise */
	uint8_t _common; /* 1 + index of a common type; 0: _other or none */
} pf_ctype;

/*
 * pf_ctype_set makes c's type p[0..n) (as given, byte for byte); n 0
 * means none.  Errors (c then has none): PF_ETOOBIG (n > PF_CTYPE_MAX),
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err pf_ctype_set(pf_ctype *c, const char *p, size_t n);

/* pf_ctype_set_str is pf_ctype_set for a NUL-terminated s. */
PF_NODISCARD static inline pf_err
pf_ctype_set_str(pf_ctype *c, const char *s)
{
	return pf_ctype_set(c, s, strlen(s));
}

/* pf_ctype_str returns c's type, NULL when it has none; valid until c
 * changes. */
const char *pf_ctype_str(const pf_ctype *c);

/* pf_ctype_clear frees c's copy; c then has no type (and may be set
 * again). */
void pf_ctype_clear(pf_ctype *c);

#endif /* PF_COMMON_CTYPE_H */
