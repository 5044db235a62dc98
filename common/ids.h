/*
 * ids.h -- random 16-byte ids (request ids = usage event ids) and hex.
 */
#ifndef PF_COMMON_IDS_H
#define PF_COMMON_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"

#define PF_ID_HEX_LEN (PF_ID_LEN * 2)

/* pf_id_new fills id with a time-ordered id: the first 6 bytes are the
 * wall clock in milliseconds (big-endian), the other 10 come from the OS
 * CSPRNG (getrandom, falling back to /dev/urandom), through a
 * per-thread pool filled for 24 ids at a time (each byte used once; a
 * forked child refills first).  Ids made later
 * sort later (to the millisecond), so the ledger's unique event_id index
 * grows at its right edge instead of at random pages: a random key
 * dirties (and after each checkpoint fully WAL-logs) one leaf page per
 * event.  80 random bits per millisecond keep ids unique.  Request ids
 * are not secrets.  Errors: PF_ECRYPTO. */
PF_NODISCARD pf_err pf_id_new(uint8_t id[PF_ID_LEN]);

/* pf_id_hash mixes all 16 bytes of id into a hash for id tables (no
 * allocation).  Use it, not the id's first bytes: those are the clock's
 * high bytes and change once a minute, so every id of a burst would
 * share one bucket. */
uint32_t pf_id_hash(const uint8_t id[PF_ID_LEN]);

/* pf_random_bytes fills buf with n cryptographically random bytes.
 * Errors: PF_ECRYPTO. */
PF_NODISCARD pf_err pf_random_bytes(void *buf, size_t n);

/* pf_hex_encode writes 2*n lowercase hex digits and a NUL to out, which
 * must hold 2*n+1 bytes. */
void pf_hex_encode(const uint8_t *in, size_t n, char *out);

/* pf_hex_digit returns the value of one hex digit (either case), -1 for
 * any other character. */
int pf_hex_digit(int c);

/* pf_hex_decode parses exactly 2*n hex digits (either case) from in into
 * out[n].  Errors: PF_EINVAL (wrong length or non-hex); out untouched. */
PF_NODISCARD pf_err pf_hex_decode(
    const char *in, size_t inlen, uint8_t *out, size_t n);

/* pf_sha256_hex writes the SHA-256 of data as 64 hex digits + NUL into
 * out[65] (common/sha256.c, not OpenSSL).  Errors: PF_EINVAL (data NULL
 * with len > 0). */
PF_NODISCARD pf_err pf_sha256_hex(const void *data, size_t len, char out[65]);

#endif /* PF_COMMON_IDS_H */
