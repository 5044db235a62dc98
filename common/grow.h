/*
 * grow.h -- room in a growable array.
 */
#ifndef PF_COMMON_GROW_H
#define PF_COMMON_GROW_H

#include <stddef.h>

/*
 * pf_grow returns arr (capacity *cap elements of elem bytes) reallocated
 * to hold at least need elements: the capacity doubles (64 at least), so
 * appending one at a time is amortised O(1).  arr itself when it already
 * has room.  NULL when out of memory or when the size would overflow;
 * arr and *cap are then untouched (the caller still owns arr).  On
 * success the caller stores the result in place of arr, and *cap is the
 * new capacity.
 */
void *pf_grow(void *arr, size_t *cap, size_t need, size_t elem);

#endif /* PF_COMMON_GROW_H */
