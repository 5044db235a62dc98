/*
 * test_ctype.c -- pf_ctype: common types as codes, any other kept byte
 * for byte, over-long ones refused, clear and set again.
 */
#include <string.h>

#include "common/ctype.h"
#include "tests/tap.h"

int
main(void)
{
	pf_ctype c = { 0 };
	char big[PF_CTYPE_MAX + 2];
	const char *odd = "application/x-ndjson; profile=\"urn:example\"";

	ok(pf_ctype_str(&c) == NULL, "zeroed: no type");
	ok(pf_ctype_set_str(&c, "text/event-stream") == PF_OK
	        && strcmp(pf_ctype_str(&c), "text/event-stream") == 0
	        && c._other == NULL,
	    "text/event-stream: a code, no copy");
	ok(pf_ctype_set_str(&c, "application/json; charset=utf-8") == PF_OK
	        && strcmp(pf_ctype_str(&c), "application/json; charset=utf-8")
	            == 0
	        && c._other == NULL,
	    "application/json; charset=utf-8: a code, no copy");
	ok(pf_ctype_set_str(&c, "Application/JSON") == PF_OK
	        && strcmp(pf_ctype_str(&c), "Application/JSON") == 0
	        && c._other != NULL,
	    "another spelling is kept as sent");
	ok(pf_ctype_set_str(&c, odd) == PF_OK
	        && strcmp(pf_ctype_str(&c), odd) == 0,
	    "an uncommon type is kept byte for byte");
	ok(pf_ctype_set(&c, "text/event-streamX", 17) == PF_OK
	        && strcmp(pf_ctype_str(&c), "text/event-stream") == 0,
	    "only n bytes are read");

	memset(big, 'a', sizeof big);
	big[sizeof big - 1] = '\0';
	ok(pf_ctype_set(&c, big, PF_CTYPE_MAX) == PF_OK
	        && strlen(pf_ctype_str(&c)) == PF_CTYPE_MAX,
	    "%u bytes are kept", PF_CTYPE_MAX);
	ok(pf_ctype_set(&c, big, PF_CTYPE_MAX + 1) == PF_ETOOBIG
	        && pf_ctype_str(&c) == NULL,
	    "%u bytes: refused, and no type is left", PF_CTYPE_MAX + 1);
	ok(pf_ctype_set(&c, "x", 0) == PF_OK && pf_ctype_str(&c) == NULL,
	    "length 0: no type");
	ok(pf_ctype_set_str(&c, odd) == PF_OK, "set again after a refusal");
	pf_ctype_clear(&c);
	ok(pf_ctype_str(&c) == NULL && c._other == NULL,
	    "clear frees the copy");
	pf_ctype_clear(&c);
	ok(1, "clear twice is harmless");
	return tap_done();
}
