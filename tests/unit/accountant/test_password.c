/*
 * test_password.c -- PBKDF2 password hashes and sk- key generation.
 */
#include <string.h>

#include "accountant/password.h"
#include "common/limits.h"
#include "tests/tap.h"

/* Computed independently: Python hashlib.pbkdf2_hmac("sha256",
 * b"correct horse", bytes(range(16)), 1000). */
static const char known[] = "pbkdf2-sha256$1000$"
                            "000102030405060708090a0b0c0d0e0f$"
                            "c914cc4f06cc6e8f46d157e3a1b5aa7a"
                            "bceebb17bb0444cd4c4ac16ca2ae9864";

static int
all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9')
		        || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

static void
test_hash(void)
{
	char h1[ACCT_PASSWORD_HASH_LEN], h2[ACCT_PASSWORD_HASH_LEN];
	const char *p;
	char small[16];

	ok(acct_password_hash("s3cret", 6, h1, sizeof(h1)) == PF_OK, "hash");
	ok(strncmp(h1, "pbkdf2-sha256$600000$", 21) == 0, "format prefix: %s",
	    h1);
	p = h1 + 21;
	ok(strlen(p) == 32 + 1 + 64 && p[32] == '$' && all_hex(p, 32)
	        && all_hex(p + 33, 64),
	    "salt and hash are lowercase hex");
	ok(strstr(h1, "s3cret") == NULL, "password not in the hash");
	ok(acct_password_verify("s3cret", 6, h1) == PF_OK, "verify right");
	ok(acct_password_verify("s3cres", 6, h1) == PF_EDENIED, "verify wrong");
	ok(acct_password_verify("s3cre", 5, h1) == PF_EDENIED,
	    "verify prefix of the password");
	ok(acct_password_hash("s3cret", 6, h2, sizeof(h2)) == PF_OK
	        && strcmp(h1, h2) != 0,
	    "same password, fresh salt, different hash");
	ok(acct_password_hash("x", 1, small, sizeof(small)) == PF_EINVAL,
	    "too small an output buffer is refused");
}

static void
test_verify_stored(void)
{
	char bad[sizeof(known)];

	ok(acct_password_verify("correct horse", 13, known) == PF_OK,
	    "verifies a hash made by another PBKDF2 implementation");
	ok(acct_password_verify("correct horsE", 13, known) == PF_EDENIED,
	    "and rejects a wrong password against it");
	ok(acct_password_verify("", 0, "") == PF_EDENIED,
	    "empty stored hash (no password set) never matches");
	ok(acct_password_verify("x", 1, NULL) == PF_EDENIED, "NULL stored");
	ok(acct_password_verify("correct horse", 13,
	       "pbkdf2-sha256$0$000102030405060708090a0b0c0d0e0f$"
	       "c914cc4f06cc6e8f46d157e3a1b5aa7abceebb17bb0444cd4c4ac16ca2ae98"
	       "64")
	        == PF_EDENIED,
	    "iteration count 0 refused");
	ok(acct_password_verify("correct horse", 13,
	       "pbkdf2-sha256$99999999$000102030405060708090a0b0c0d0e0f$"
	       "c914cc4f06cc6e8f46d157e3a1b5aa7abceebb17bb0444cd4c4ac16ca2ae98"
	       "64")
	        == PF_EDENIED,
	    "iteration count above the cap refused (no CPU burn)");
	memcpy(bad, known, sizeof(known));
	bad[sizeof(known) - 2] = 'g';
	ok(acct_password_verify("correct horse", 13, bad) == PF_EDENIED,
	    "non-hex hash refused");
	bad[sizeof(known) - 2] = '\0';
	ok(acct_password_verify("correct horse", 13, bad) == PF_EDENIED,
	    "truncated hash refused");
	ok(acct_password_verify("correct horse", 13,
	       "bcrypt$1000$000102030405060708090a0b0c0d0e0f$"
	       "c914cc4f06cc6e8f46d157e3a1b5aa7abceebb17bb0444cd4c4ac16ca2ae98"
	       "64")
	        == PF_EDENIED,
	    "unknown scheme refused");
}

static void
test_keys(void)
{
	static const char alphabet[]
	    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned seen[256] = { 0 };
	char key[ACCT_TOKEN_KEY_LEN + 1], prev[ACCT_TOKEN_KEY_LEN + 1] = "";
	int shape_ok = 1, distinct = 1, all_seen = 1;

	for (int i = 0; i < 1000; i++) {
		if (acct_token_key_new(key, sizeof(key)) != PF_OK) {
			shape_ok = 0;
			break;
		}
		if (strlen(key) != 51 || strncmp(key, "sk-", 3) != 0
		    || strspn(key + 3, alphabet) != 48)
			shape_ok = 0;
		if (strcmp(key, prev) == 0)
			distinct = 0;
		memcpy(prev, key, sizeof(key));
		for (int j = 3; j < 51; j++)
			seen[(unsigned char)key[j]]++;
	}
	ok(shape_ok, "1000 keys are sk- + 48 of [A-Za-z0-9]");
	ok(distinct, "consecutive keys differ");
	/* 48000 draws, ~774 per character: a missing one means a bias. */
	for (size_t i = 0; i < 62; i++) {
		if (seen[(unsigned char)alphabet[i]] < 300)
			all_seen = 0;
	}
	ok(all_seen, "every alphabet character is drawn often");
	ok(ACCT_TOKEN_KEY_LEN <= PF_API_KEY_MAX, "key fits PF_API_KEY_MAX");
	ok(acct_token_key_new(key, ACCT_TOKEN_KEY_LEN) == PF_EINVAL,
	    "no room for the NUL is refused");
}

int
main(void)
{
	test_hash();
	test_verify_stored();
	test_keys();
	return tap_done();
}
