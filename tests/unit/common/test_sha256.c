/*
 * test_sha256.c -- pf_sha256 against the FIPS 180-4 examples and against
 * OpenSSL for every length around the block and padding edges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/ids.h"
#include "common/sha256.h"
#include "tests/tap.h"

static int
hex_is(const char *msg, size_t len, const char *want)
{
	char got[65];

	return pf_sha256_hex(msg, len, got) == PF_OK && strcmp(got, want) == 0;
}

int
main(void)
{
	static uint8_t buf[1000000];
	uint8_t ours[PF_SHA256_LEN], ref[EVP_MAX_MD_SIZE];
	unsigned int rlen = 0;
	size_t bad = 0;
	char hex[65];

	ok(hex_is("abc", 3,
	       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015"
	       "ad"),
	    "FIPS 180-4: abc");
	ok(hex_is("", 0,
	       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8"
	       "55"),
	    "the empty message");
	ok(hex_is("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	       56,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06"
	       "c1"),
	    "FIPS 180-4: the 448-bit message (padding needs a second block)");
	memset(buf, 'a', sizeof(buf));
	ok(hex_is((const char *)buf, sizeof(buf),
	       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112c"
	       "d0"),
	    "one million 'a'");

	for (size_t i = 0; i < 300; i++)
		buf[i] = (uint8_t)(i * 131u + 7u);
	for (size_t n = 0; n <= 300; n++) {
		pf_sha256(buf, n, ours);
		if (EVP_Digest(buf, n, ref, &rlen, EVP_sha256(), NULL) != 1
		    || rlen != PF_SHA256_LEN
		    || memcmp(ours, ref, PF_SHA256_LEN) != 0)
			bad++;
	}
	ok(bad == 0, "equal to OpenSSL for every length 0..300 (%zu differ)",
	    bad);
	pf_sha256(NULL, 0, ours);
	pf_hex_encode(ours, PF_SHA256_LEN, hex);
	ok(strncmp(hex, "e3b0c442", 8) == 0, "NULL data with length 0");
	ok(pf_sha256_hex(NULL, 1, hex) == PF_EINVAL,
	    "NULL data with a length: PF_EINVAL");
	return tap_done();
}
