/*
 * fuzz_msg.c -- libFuzzer entry point for the message codec.
 *
 *   meson setup build-fuzz -Dfuzzers=true (CC=clang)
 *   build-fuzz/tests/fuzz/fuzz_msg tests/fuzz/corpus/msg
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256] = "";
	const char *bad = fuzz_check(data, size, NULL, why, sizeof(why));

	if (bad != NULL) {
		fprintf(stderr, "fuzz_msg: %s %s\n", bad, why);
		abort();
	}
	return 0;
}
