/*
 * alloc.h -- a zeroed allocation for objects made once per request.
 */
#ifndef PF_COMMON_ALLOC_H
#define PF_COMMON_ALLOC_H

#include <stdlib.h>
#include <string.h>

/*
 * pf_zalloc returns size zeroed bytes (free with free), or NULL when out
 * of memory.  It is calloc(1, size) through malloc: glibc's calloc
 * (before 2.42) never takes a chunk from the thread's cache and goes to
 * the arena under its lock every time, where a malloc of a small size
 * freed a moment ago is a few instructions.  Use it for the objects made
 * and freed per request; calloc stays right for large or rare ones.
 */
static inline void *
pf_zalloc(size_t size)
{
	void *p = malloc(size);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

#endif /* PF_COMMON_ALLOC_H */
