/* test_acl.c -- model allow-list and CIDR matching. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "ingress/acl.h"
#include "tests/tap.h"

static int
allowed4(const char *list, const char *ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };

	inet_pton(AF_INET, ip, &sa.sin_addr);
	return ing_acl_ip_allowed(list, (struct sockaddr *)&sa);
}

static int
allowed6(const char *list, const char *ip)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };

	inet_pton(AF_INET6, ip, &sa.sin6_addr);
	return ing_acl_ip_allowed(list, (struct sockaddr *)&sa);
}

int
main(void)
{
	ok(ing_acl_model_allowed("", "gpt-4o"), "empty list allows all");
	ok(ing_acl_model_allowed(" , ", "gpt-4o"), "blank list allows all");
	ok(ing_acl_model_allowed("gpt-4o,gpt-4o-mini", "gpt-4o-mini"),
	    "listed model");
	ok(ing_acl_model_allowed(" a , gpt-4o ", "gpt-4o"), "trimmed");
	ok(!ing_acl_model_allowed("gpt-4o-mini", "gpt-4o"),
	    "prefix is not a match");
	ok(!ing_acl_model_allowed("gpt-4o", "gpt-4"), "no substring match");

	ok(allowed4("", "8.8.8.8"), "empty IP list allows all");
	ok(allowed4("10.0.0.0/8", "10.200.3.4"), "inside /8");
	ok(!allowed4("10.0.0.0/8", "11.0.0.1"), "outside /8");
	ok(allowed4("192.168.1.7", "192.168.1.7"), "bare address");
	ok(!allowed4("192.168.1.7", "192.168.1.8"), "bare address, other");
	ok(allowed4("192.168.1.0/25", "192.168.1.127"), "/25 edge in");
	ok(!allowed4("192.168.1.0/25", "192.168.1.128"), "/25 edge out");
	ok(allowed4("0.0.0.0/0", "1.2.3.4"), "/0 matches all v4");
	ok(allowed4("junk, 127.0.0.1", "127.0.0.1"), "malformed entry skipped");
	ok(!allowed4("10.0.0.0/33", "10.0.0.1"), "bad prefix never matches");
	ok(!allowed4("::1/128", "127.0.0.1"), "v6 rule does not match v4");
	ok(allowed6("::1", "::1"), "v6 bare");
	ok(allowed6("2001:db8::/32", "2001:db8:1::5"), "v6 /32 in");
	ok(!allowed6("2001:db8::/32", "2001:db9::5"), "v6 /32 out");
	ok(allowed6("127.0.0.0/8", "::ffff:127.0.0.1"),
	    "v4-mapped v6 matches v4 rule");
	ok(!ing_acl_ip_allowed("127.0.0.1", NULL),
	    "unknown peer refused by a list");

	unsigned char a[4] = { 172, 16, 5, 1 };
	ok(ing_acl_cidr_match("172.16.0.0/12", 13, a, 4) == 1, "raw match");
	ok(ing_acl_cidr_match("nonsense", 8, a, 4) == -1, "raw malformed");
	return tap_done();
}
