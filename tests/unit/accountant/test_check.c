/*
 * test_check.c -- validation of admin input.
 */
#include <stdlib.h>
#include <string.h>

#include "accountant/check.h"
#include "common/limits.h"
#include "tests/tap.h"

static void
test_words(void)
{
	ok(acct_check_word("gpt-4o", 128), "plain word");
	ok(!acct_check_word("", 128), "empty word");
	ok(!acct_check_word("a b", 128), "space");
	ok(!acct_check_word("a,b", 128), "comma");
	ok(!acct_check_word("a\tb", 128), "tab");
	ok(!acct_check_word("abcde", 4), "too long");
	ok(acct_check_word("abcd", 4), "exactly max");
	ok(acct_check_text("", 4), "empty text");
	ok(acct_check_text("a b,c", 8), "text allows spaces and commas");
	ok(!acct_check_text("a\nb", 8), "text refuses newline");
	ok(!acct_check_text("a\x7f", 8), "text refuses DEL");
	ok(acct_check_control("\r"), "CR is a control character");
}

static void
test_cidr(void)
{
	ok(acct_check_cidr("10.0.0.1"), "IPv4");
	ok(acct_check_cidr("10.0.0.0/8"), "IPv4 CIDR");
	ok(acct_check_cidr("0.0.0.0/0"), "IPv4 /0");
	ok(!acct_check_cidr("10.0.0.0/33"), "IPv4 /33");
	ok(!acct_check_cidr("10.0.0/8"), "short IPv4");
	ok(!acct_check_cidr("10.0.0.1/"), "empty prefix");
	ok(!acct_check_cidr("10.0.0.1/x"), "non-numeric prefix");
	ok(acct_check_cidr("::1"), "IPv6");
	ok(acct_check_cidr("fe80::/10"), "IPv6 CIDR");
	ok(acct_check_cidr("2001:db8::/128"), "IPv6 /128");
	ok(!acct_check_cidr("2001:db8::/129"), "IPv6 /129");
	ok(!acct_check_cidr("/8"), "no address");
	ok(!acct_check_cidr("example.com"), "host name");
}

static void
test_lists(void)
{
	char out[64];

	ok(acct_check_list(" a, b ,c", 8, 0, out) && strcmp(out, "a,b,c") == 0,
	    "trimmed and joined: %s", out);
	ok(acct_check_list("m", 8, 0, out) && strcmp(out, "m") == 0, "one");
	ok(!acct_check_list("", 8, 0, out), "empty list");
	ok(!acct_check_list("a,,b", 8, 0, out), "empty item");
	ok(!acct_check_list("a,", 8, 0, out), "trailing comma");
	ok(!acct_check_list(" , ", 8, 0, out), "only spaces");
	ok(!acct_check_list("a,b c", 8, 0, out), "space inside an item");
	ok(!acct_check_list("a,abcdefghi", 8, 0, out), "item too long");
	ok(acct_check_list("10.0.0.0/8, ::1", 64, 1, out)
	        && strcmp(out, "10.0.0.0/8,::1") == 0,
	    "CIDR list: %s", out);
	ok(!acct_check_list("10.0.0.0/8,nope", 64, 1, out), "bad CIDR item");
}

static void
test_urls(void)
{
	ok(acct_check_url("http://127.0.0.1:9000/v1", 0), "http");
	ok(acct_check_url("https://api.openai.com/v1", 0), "https");
	ok(!acct_check_url("ftp://x", 0), "ftp");
	ok(!acct_check_url("http://", 0), "no host");
	ok(!acct_check_url("http:///v1", 0), "empty host");
	ok(!acct_check_url("http://a b", 0), "space");
	ok(!acct_check_url("http://a\r\nX: y", 0), "CRLF");
	ok(!acct_check_url("HTTP://x", 0), "scheme is case-sensitive");
	ok(!acct_check_url("socks5h://127.0.0.1:1080", 0),
	    "socks is not a base URL");
	ok(acct_check_url("socks5h://127.0.0.1:1080", 1), "socks5h proxy");
	ok(acct_check_url("http://u:p@proxy:3128", 1), "http proxy");
}

static void
test_mapping(void)
{
	char *json = (char *)"untouched";
	char big[PF_MODEL_MAPPING_MAX + 8];

	ok(acct_check_model_mapping("{\"b\": \"x\", \"a\": \"y\"}", &json)
	        && strcmp(json, "{\"a\":\"y\",\"b\":\"x\"}") == 0,
	    "object re-encoded compact and sorted: %s", json);
	free(json);
	ok(acct_check_model_mapping("{}", &json) && json == NULL,
	    "empty object gives NULL");
	json = (char *)"untouched";
	ok(!acct_check_model_mapping("[]", &json), "array");
	ok(!acct_check_model_mapping("{\"a\": 1}", &json), "number value");
	ok(!acct_check_model_mapping("{\"a\": \"\"}", &json), "empty value");
	ok(!acct_check_model_mapping("{\"a\": \"b\", \"a\": \"c\"}", &json),
	    "duplicate key");
	ok(!acct_check_model_mapping("{\"a b\": \"c\"}", &json),
	    "key with a space");
	ok(!acct_check_model_mapping("{\"a\": \"b\\u0000c\"}", &json),
	    "NUL inside a value");
	ok(!acct_check_model_mapping("{\"a\": \"b\"", &json), "truncated");
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	ok(!acct_check_model_mapping(big, &json), "over PF_MODEL_MAPPING_MAX");
	ok(strcmp(json, "untouched") == 0, "out untouched on failure");
}

int
main(void)
{
	test_words();
	test_cidr();
	test_lists();
	test_urls();
	test_mapping();
	return tap_done();
}
