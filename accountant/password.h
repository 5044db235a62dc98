/*
 * password.h -- credential material: password hashing for logins and
 * generation of "sk-" API keys.
 *
 * Stored password format: "pbkdf2-sha256$ITER$SALTHEX$HASHHEX"
 * (PBKDF2-HMAC-SHA256, 16-byte random salt, 32-byte hash, lowercase hex).
 */
#ifndef PF_ACCOUNTANT_PASSWORD_H
#define PF_ACCOUNTANT_PASSWORD_H

#include <stddef.h>

#include "common/err.h"

#define ACCT_PASSWORD_ITER 600000       /* OWASP 2023 for PBKDF2-HMAC-SHA256 */
#define ACCT_PASSWORD_ITER_MAX 10000000 /* refuse stored hashes above */
#define ACCT_PASSWORD_HASH_LEN 128      /* buffer for a stored hash, with NUL */

/* "sk-" + 48 characters of [A-Za-z0-9], plus NUL. */
#define ACCT_TOKEN_KEY_BODY 48
#define ACCT_TOKEN_KEY_LEN (3 + ACCT_TOKEN_KEY_BODY)

/*
 * acct_password_hash hashes password (pwlen bytes) with a fresh random
 * salt into out (outlen >= ACCT_PASSWORD_HASH_LEN) in the stored format.
 * Errors: PF_EINVAL (outlen too small), PF_ECRYPTO; out untouched then.
 */
PF_NODISCARD pf_err acct_password_hash(
    const char *password, size_t pwlen, char *out, size_t outlen);

/*
 * acct_password_verify checks password against a stored hash in constant
 * time.  Returns PF_OK on a match, PF_EDENIED on a mismatch and also when
 * stored is empty (no password set) or malformed, PF_ECRYPTO when OpenSSL
 * fails.
 */
PF_NODISCARD pf_err acct_password_verify(
    const char *password, size_t pwlen, const char *stored);

/*
 * acct_token_key_new writes a new API key "sk-" + 48 characters drawn
 * uniformly from [A-Za-z0-9] (rejection sampling over pf_random_bytes)
 * and a NUL into out (outlen > ACCT_TOKEN_KEY_LEN).  The key is a secret:
 * the caller wipes it when done.  Errors: PF_EINVAL (outlen), PF_ECRYPTO.
 */
PF_NODISCARD pf_err acct_token_key_new(char *out, size_t outlen);

#endif /* PF_ACCOUNTANT_PASSWORD_H */
