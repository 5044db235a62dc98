/*
 * acl.c -- model and IP allow-lists of a token.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "ingress/acl.h"

#define CIDR_TEXT_MAX 64

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* next_item yields the next trimmed comma-separated item of *p. */
static int
next_item(const char **p, const char **ret_item, size_t *ret_len)
{
	const char *s = *p;

	while (*s != '\0') {
		const char *start = s;
		while (*s != '\0' && *s != ',')
			s++;
		const char *end = s;
		if (*s == ',')
			s++;
		while (start < end && is_blank(*start))
			start++;
		while (end > start && is_blank(end[-1]))
			end--;
		if (end > start) {
			*p = s;
			*ret_item = start;
			*ret_len = (size_t)(end - start);
			return 1;
		}
	}
	*p = s;
	return 0;
}

static int
list_empty(const char *list)
{
	const char *p = list;
	const char *item;
	size_t n;

	return list == NULL || !next_item(&p, &item, &n);
}

int
ing_acl_model_allowed(const char *list, const char *model)
{
	const char *p = list;
	const char *item;
	size_t n;
	size_t mlen = strlen(model);

	if (list_empty(list))
		return 1;
	while (next_item(&p, &item, &n)) {
		if (n == mlen && memcmp(item, model, n) == 0)
			return 1;
	}
	return 0;
}

static int
parse_prefix(const char *s, unsigned max, unsigned *ret)
{
	unsigned v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -1;
	}
	*ret = v;
	return 0;
}

int
ing_acl_cidr_match(
    const char *cidr, size_t clen, const unsigned char *addr, size_t alen)
{
	char text[CIDR_TEXT_MAX];
	unsigned char net[16];
	unsigned bits;
	size_t nlen;
	char *slash;

	if (clen == 0 || clen >= sizeof(text))
		return -1;
	memcpy(text, cidr, clen);
	text[clen] = '\0';
	slash = strchr(text, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, text, net) == 1)
		nlen = 4;
	else if (inet_pton(AF_INET6, text, net) == 1)
		nlen = 16;
	else
		return -1;
	bits = (unsigned)nlen * 8;
	if (slash != NULL && parse_prefix(slash + 1, bits, &bits) != 0)
		return -1;
	if (nlen != alen)
		return 0;
	for (size_t i = 0; i < nlen && bits > 0; i++) {
		unsigned take = bits >= 8 ? 8 : bits;
		unsigned char mask = (unsigned char)(0xffu << (8 - take));
		if ((net[i] & mask) != (addr[i] & mask))
			return 0;
		bits -= take;
	}
	return 1;
}

int
ing_acl_ip_allowed(const char *list, const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12]
	    = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const unsigned char *addr;
	size_t alen;
	const char *p = list;
	const char *item;
	size_t n;

	if (list_empty(list))
		return 1;
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		addr = (const unsigned char *)&in->sin_addr;
		alen = 4;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6
		    = (const struct sockaddr_in6 *)sa;
		addr = in6->sin6_addr.s6_addr;
		alen = 16;
		if (memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
			addr += 12;
			alen = 4;
		}
	} else {
		return 0;
	}
	while (next_item(&p, &item, &n)) {
		if (ing_acl_cidr_match(item, n, addr, alen) == 1)
			return 1;
	}
	return 0;
}
