/*
 * ids.c -- randomness, hex and SHA-256.
 */
#include "common/ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/clock.h"

pf_err
pf_random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t off = 0;

	while (off < n) {
		ssize_t got = getrandom(p + off, n - off, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			break; /* ENOSYS on old kernels: fall back below */
		}
		off += (size_t)got;
	}
	if (off == n)
		return PF_OK;
	/* RAND_bytes takes an int; ids and keys are tiny. */
	if (n - off > (size_t)INT32_MAX)
		return PF_ECRYPTO;
	if (RAND_bytes(p + off, (int)(n - off)) != 1)
		return PF_ECRYPTO;
	return PF_OK;
}

pf_err
pf_id_new(uint8_t id[PF_ID_LEN])
{
	uint64_t ms = (uint64_t)pf_clock_ms();

	for (int i = 5; i >= 0; i--) {
		id[i] = (uint8_t)(ms & 0xff);
		ms >>= 8;
	}
	return pf_random_bytes(id + 6, PF_ID_LEN - 6);
}

void
pf_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

pf_err
pf_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n)
{
	if (in == NULL || inlen / 2 != n || inlen % 2 != 0)
		return PF_EINVAL;
	for (size_t i = 0; i < inlen; i++) {
		if (hex_value(in[i]) < 0)
			return PF_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		out[i] = (uint8_t)(hex_value(in[2 * i]) << 4
		    | hex_value(in[2 * i + 1]));
	}
	return PF_OK;
}

pf_err
pf_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (data == NULL && len > 0)
		return PF_EINVAL;
	if (EVP_Digest(
	        data != NULL ? data : "", len, md, &mdlen, EVP_sha256(), NULL)
	        != 1
	    || mdlen != 32)
		return PF_ECRYPTO;
	pf_hex_encode(md, 32, out);
	return PF_OK;
}
