#include <stdlib.h>
#include <string.h>

#include "workers/buf.h"

void
wrk_buf_init(wrk_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
wrk_buf_fini(wrk_buf *b)
{
	free(b->data);
	wrk_buf_init(b);
}

pf_err
wrk_buf_append(wrk_buf *b, const void *p, size_t n, size_t max)
{
	size_t need, cap;
	uint8_t *nd;

	if (n > max || b->len > max - n)
		return PF_ETOOBIG;
	need = b->len + n + 1;
	if (need > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < need)
			cap *= 2;
		nd = realloc(b->data, cap);
		if (nd == NULL)
			return PF_ENOMEM;
		b->data = nd;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return PF_OK;
}

const char *
wrk_buf_cstr(wrk_buf *b)
{
	if (b->data == NULL)
		return "";
	b->data[b->len] = 0;
	return (const char *)b->data;
}
