/*
 * grow.c -- room in a growable array (see grow.h).
 */
#include "common/grow.h"

#include <stdint.h>
#include <stdlib.h>

void *
pf_grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap > 0 ? *cap : 64;
	void *p;

	if (need <= *cap)
		return arr;
	while (c < need) {
		if (c > SIZE_MAX / 2)
			return NULL;
		c *= 2;
	}
	if (elem == 0 || c > SIZE_MAX / elem)
		return NULL;
	p = realloc(arr, c * elem);
	if (p == NULL)
		return NULL;
	*cap = c;
	return p;
}
