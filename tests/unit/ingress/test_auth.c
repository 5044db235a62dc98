/* test_auth.c -- key checks that need no database, and the answer when
 * the database is unreachable (nothing listens on 127.0.0.1:1). */
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "ingress/auth.h"
#include "tests/tap.h"

static pf_err
lookup(ing_auth *a, const char *key)
{
	ing_token *t = NULL;
	pf_err err = ing_auth_lookup(a, key, strlen(key), &t);

	ing_token_unref(t);
	return err;
}

int
main(void)
{
	pf_config cfg;
	ing_auth *a = NULL;
	char longkey[200];

	pf_config_defaults(&cfg);
	snprintf(cfg.database_url, sizeof(cfg.database_url),
	    "postgresql://nobody@127.0.0.1:1/none");
	ok(ing_auth_new(&cfg, &a) == PF_OK, "authenticator made");
	ok(lookup(a, "") == PF_EDENIED, "empty key denied");
	ok(lookup(a, "sk-") == PF_EDENIED, "bare prefix denied");
	ok(lookup(a, "pk-abcdefgh") == PF_EDENIED, "not an sk- key denied");
	memset(longkey, 'a', sizeof(longkey) - 1);
	memcpy(longkey, "sk-", 3);
	longkey[sizeof(longkey) - 1] = '\0';
	ok(lookup(a, longkey) == PF_EDENIED, "key over PF_API_KEY_MAX denied");
	ok(lookup(a, "sk-abcdefghijklmnopqrstuvwxyz") == PF_EDB,
	    "unreachable database is an error, not a denial");
	ok(lookup(a, "sk-abcdefghijklmnopqrstuvwxyz") == PF_EDB,
	    "and is not cached as a denial");
	ing_auth_free(a);
	ing_auth_free(NULL);
	return tap_done();
}
