/* test_auth.c -- key checks that need no database, and the answer when
 * the database is unreachable (nothing listens on 127.0.0.1:1): a miss
 * is parked and resumed by the lookup thread, like an HTTP connection;
 * a lookup without a wait queues nothing. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "ingress/auth.h"
#include "tests/tap.h"

#define KEY "sk-abcdefghijklmnopqrstuvwxyz"

static int resumed;
static int pending; /* misses that went to the lookup thread */

static void
resume_cb(void *conn)
{
	(void)conn;
	__atomic_store_n(&resumed, 1, __ATOMIC_RELEASE);
}

static void
suspend_cb(void *conn)
{
	(void)conn;
}

/* lookup answers like the server: first without a wait, then with one
 * (PF_EPENDING), parked on PF_EPENDING until resumed */
static pf_err
lookup(ing_auth *a, const char *key)
{
	ing_auth_wait w;
	ing_token *t = NULL;
	pf_err err;

	err = ing_auth_lookup(a, key, strlen(key), NULL, &t);
	if (err != PF_EPENDING) {
		ing_token_unref(t);
		return err;
	}
	ing_auth_wait_init(&w, &w, resume_cb);
	for (int i = 0; i < 1000; i++) {
		err = ing_auth_lookup(a, key, strlen(key), &w, &t);
		if (err != PF_EPENDING)
			break;
		pending++;
		__atomic_store_n(&resumed, 0, __ATOMIC_RELEASE);
		/* the thread may have answered already: then no park */
		if (!ing_auth_wait_park(&w, suspend_cb))
			continue;
		while (!__atomic_load_n(&resumed, __ATOMIC_ACQUIRE))
			usleep(1000);
	}
	ing_auth_wait_fini(a, &w);
	ing_token_unref(t);
	return err;
}

int
main(void)
{
	pf_config cfg;
	ing_auth *a = NULL;
	ing_token *tok = NULL;
	char longkey[200];

	pf_config_defaults(&cfg);
	snprintf(cfg.database_url, sizeof(cfg.database_url),
	    "postgresql://nobody@127.0.0.1:1/none");
	ok(ing_auth_new(&cfg, &a) == PF_OK, "authenticator made");
	/* without a wait a miss queues nothing: were the key looked up,
	 * the refused connection would make the next miss fail at once */
	ok(ing_auth_lookup(a, KEY, strlen(KEY), NULL, &tok) == PF_EPENDING,
	    "a miss without a wait answers pending");
	usleep(300 * 1000);
	ok(ing_auth_lookup(a, KEY, strlen(KEY), NULL, &tok) == PF_EPENDING,
	    "and queued no lookup");
	ok(ing_auth_lookup(a, "sk-", 3, NULL, &tok) == PF_EDENIED,
	    "a malformed key without a wait is denied at once");
	ok(lookup(a, "") == PF_EDENIED, "empty key denied");
	ok(lookup(a, "sk-") == PF_EDENIED, "bare prefix denied");
	ok(lookup(a, "pk-abcdefgh") == PF_EDENIED, "not an sk- key denied");
	memset(longkey, 'a', sizeof(longkey) - 1);
	memcpy(longkey, "sk-", 3);
	longkey[sizeof(longkey) - 1] = '\0';
	ok(lookup(a, longkey) == PF_EDENIED, "key over PF_API_KEY_MAX denied");
	ok(lookup(a, "sk-abcdefghijklmnopqrstuvwxyz") == PF_EDB,
	    "unreachable database is an error, not a denial");
	ok(pending == 1, "the miss was answered by the lookup thread");
	ok(lookup(a, "sk-abcdefghijklmnopqrstuvwxyz") == PF_EDB,
	    "and is not cached as a denial");
	ing_auth_free(a);
	ing_auth_free(NULL);
	/* a wait that ends by shutdown: closed, parked ones resumed */
	ok(ing_auth_new(&cfg, &a) == PF_OK, "another authenticator");
	ing_auth_close_waits(a);
	ok(ing_auth_lookup(a, KEY, strlen(KEY), NULL, &tok) == PF_ECLOSED,
	    "after close_waits a miss without a wait is refused at once");
	ok(lookup(a, "sk-abcdefghijklmnopqrstuvwxyz") == PF_ECLOSED,
	    "after close_waits a miss is refused at once");
	ing_auth_free(a);
	ok(tok == NULL, "no token handed out");
	return tap_done();
}
