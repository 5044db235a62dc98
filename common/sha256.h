/*
 * sha256.h -- SHA-256 (FIPS 180-4) without OpenSSL.
 *
 * The ingress hashes every API key it looks up.  Through OpenSSL 3 the
 * first digest loads the provider tables and the configuration file,
 * about 2 MB of resident memory in a process that needs nothing else
 * from OpenSSL (bench/results/2026-11-26-vm-mem5-before-after.md).
 */
#ifndef PF_COMMON_SHA256_H
#define PF_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define PF_SHA256_LEN 32u

/* pf_sha256 writes the SHA-256 digest of data[0..len) to out.  data may
 * be NULL when len is 0.  No allocation, no errors. */
void pf_sha256(const void *data, size_t len, uint8_t out[PF_SHA256_LEN]);

#endif /* PF_COMMON_SHA256_H */
