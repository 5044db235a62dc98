/*
 * ctype.c -- Content-Types kept compactly (ctype.h).
 */
#include <stdlib.h>
#include <string.h>

#include "common/ctype.h"

/* what upstreams send nearly always (at most 255 entries: _common) */
static const char *const common_types[] = {
	"text/event-stream",
	"application/json",
	"text/event-stream; charset=utf-8",
	"application/json; charset=utf-8",
};

#define N_COMMON (sizeof(common_types) / sizeof(common_types[0]))

pf_err
pf_ctype_set(pf_ctype *c, const char *p, size_t n)
{
	pf_ctype_clear(c);
	if (n == 0)
		return PF_OK;
	if (n > PF_CTYPE_MAX)
		return PF_ETOOBIG;
	for (size_t i = 0; i < N_COMMON; i++) {
		if (strlen(common_types[i]) == n
		    && memcmp(common_types[i], p, n) == 0) {
			c->_common = (uint8_t)(i + 1);
			return PF_OK;
		}
	}
	c->_other = malloc(n + 1);
	if (c->_other == NULL)
		return PF_ENOMEM;
	memcpy(c->_other, p, n);
	c->_other[n] = '\0';
	return PF_OK;
}

const char *
pf_ctype_str(const pf_ctype *c)
{
	if (c->_common > 0)
		return common_types[c->_common - 1];
	return c->_other;
}

void
pf_ctype_clear(pf_ctype *c)
{
	free(c->_other);
	c->_other = NULL;
	c->_common = 0;
}
