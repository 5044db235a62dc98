/*
 * test_grow.c -- pf_grow: room on demand, capacity doubling, refusals
 * that leave the array untouched.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/grow.h"
#include "tests/tap.h"

int
main(void)
{
	size_t cap = 0, n = 0;
	int *a = NULL, *p;
	int in_order = 1;

	for (int i = 0; i < 1000; i++) {
		p = pf_grow(a, &cap, n + 1, sizeof(*a));
		if (p == NULL)
			break;
		a = p;
		a[n++] = i;
	}
	ok(n == 1000, "1000 appends one at a time");
	for (size_t i = 0; i < n; i++)
		in_order = in_order && a[i] == (int)i;
	ok(in_order, "the elements survive every reallocation");
	ok(cap == 1024, "capacity doubled from 64: %zu", cap);
	ok(pf_grow(a, &cap, 1000, sizeof(*a)) == a && cap == 1024,
	    "room already there: the same array, the same capacity");

	p = pf_grow(a, &cap, SIZE_MAX / 2 + 2, sizeof(*a));
	ok(p == NULL && cap == 1024, "a count that overflows: NULL, untouched");
	p = pf_grow(a, &cap, SIZE_MAX / 4, 64);
	ok(p == NULL && cap == 1024, "a size that overflows: NULL, untouched");
	ok(a[999] == 999, "the array is still the caller's after a refusal");
	free(a);

	cap = 0;
	p = pf_grow(NULL, &cap, 1, 8);
	ok(p != NULL && cap == 64, "from nothing: 64 elements at least");
	free(p);
	return tap_done();
}
