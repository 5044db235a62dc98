/*
 * password.c -- PBKDF2 password hashes and API key generation.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "accountant/password.h"
#include "common/ids.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define PREFIX "pbkdf2-sha256$"

static const char key_alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static pf_err
derive(const char *password, size_t pwlen, const uint8_t *salt, int iter,
    uint8_t out[HASH_LEN])
{
	int rc;

	rc = PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, SALT_LEN, iter,
	    EVP_sha256(), HASH_LEN, out);
	return rc == 1 ? PF_OK : PF_ECRYPTO;
}

pf_err
acct_password_hash(const char *password, size_t pwlen, char *out, size_t outlen)
{
	uint8_t salt[SALT_LEN];
	uint8_t hash[HASH_LEN];
	char salthex[SALT_LEN * 2 + 1];
	char hashhex[HASH_LEN * 2 + 1];
	pf_err err;

	if (outlen < ACCT_PASSWORD_HASH_LEN || pwlen > INT32_MAX)
		return PF_EINVAL;
	err = pf_random_bytes(salt, sizeof(salt));
	if (err != PF_OK)
		return err;
	err = derive(password, pwlen, salt, ACCT_PASSWORD_ITER, hash);
	if (err != PF_OK)
		return err;
	pf_hex_encode(salt, sizeof(salt), salthex);
	pf_hex_encode(hash, sizeof(hash), hashhex);
	snprintf(out, outlen, PREFIX "%d$%s$%s", ACCT_PASSWORD_ITER, salthex,
	    hashhex);
	OPENSSL_cleanse(hash, sizeof(hash));
	return PF_OK;
}

/* Parses "ITER$" strictly: digits only, 1..ACCT_PASSWORD_ITER_MAX. */
static int
parse_iter(const char *s, const char **ret_end)
{
	long v = 0;
	const char *p = s;

	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		if (v > ACCT_PASSWORD_ITER_MAX)
			return -1;
		p++;
	}
	if (p == s || *p != '$' || v < 1)
		return -1;
	*ret_end = p + 1;
	return (int)v;
}

pf_err
acct_password_verify(const char *password, size_t pwlen, const char *stored)
{
	uint8_t salt[SALT_LEN];
	uint8_t want[HASH_LEN];
	uint8_t got[HASH_LEN];
	const char *p;
	int iter;
	pf_err err;

	if (stored == NULL || pwlen > INT32_MAX
	    || strncmp(stored, PREFIX, strlen(PREFIX)) != 0)
		return PF_EDENIED;
	iter = parse_iter(stored + strlen(PREFIX), &p);
	if (iter < 0)
		return PF_EDENIED;
	if (strlen(p) != SALT_LEN * 2 + 1 + HASH_LEN * 2
	    || p[SALT_LEN * 2] != '$')
		return PF_EDENIED;
	err = pf_hex_decode(p, SALT_LEN * 2, salt, SALT_LEN);
	if (err != PF_OK)
		return PF_EDENIED;
	err = pf_hex_decode(p + SALT_LEN * 2 + 1, HASH_LEN * 2, want, HASH_LEN);
	if (err != PF_OK)
		return PF_EDENIED;
	err = derive(password, pwlen, salt, iter, got);
	if (err != PF_OK)
		return err;
	err = CRYPTO_memcmp(got, want, HASH_LEN) == 0 ? PF_OK : PF_EDENIED;
	OPENSSL_cleanse(got, sizeof(got));
	return err;
}

pf_err
acct_token_key_new(char *out, size_t outlen)
{
	/* 62 * 4 = 248: bytes >= 248 are rejected so that b % 62 is uniform. */
	const unsigned limit = 62u * 4u;
	uint8_t buf[64];
	size_t have = 0;
	pf_err err;

	if (outlen <= ACCT_TOKEN_KEY_LEN)
		return PF_EINVAL;
	memcpy(out, "sk-", 3);
	while (have < ACCT_TOKEN_KEY_BODY) {
		err = pf_random_bytes(buf, sizeof(buf));
		if (err != PF_OK) {
			OPENSSL_cleanse(out, outlen);
			return err;
		}
		for (size_t i = 0;
		     i < sizeof(buf) && have < ACCT_TOKEN_KEY_BODY; i++) {
			if (buf[i] >= limit)
				continue;
			out[3 + have++] = key_alphabet[buf[i] % 62u];
		}
	}
	out[ACCT_TOKEN_KEY_LEN] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return PF_OK;
}
