/*
 * check.c -- validation of admin input.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "accountant/check.h"
#include "accountant/cli.h"
#include "common/limits.h"

int
acct_check_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	}
	return 0;
}

int
acct_check_word(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len == 0 || len > max || acct_check_control(s))
		return 0;
	return strpbrk(s, " ,") == NULL;
}

int
acct_check_text(const char *s, size_t max)
{
	return strlen(s) <= max && !acct_check_control(s);
}

int
acct_check_cidr(const char *item)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	const char *slash = strchr(item, '/');
	size_t alen = slash != NULL ? (size_t)(slash - item) : strlen(item);
	int64_t bits;
	int family;

	if (alen == 0 || alen >= sizeof(addr))
		return 0;
	memcpy(addr, item, alen);
	addr[alen] = '\0';
	family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(family, addr, bin) != 1)
		return 0;
	if (slash == NULL)
		return 1;
	return acct_parse_int(slash + 1, 0, family == AF_INET ? 32 : 128, &bits)
	    == PF_OK;
}

int
acct_check_list(const char *in, size_t max, int cidr, char *out)
{
	size_t o = 0;
	const char *p = in;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char item[PF_MODEL_NAME_MAX + 1];

		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0 || len > max || len >= sizeof(item))
			return 0;
		memcpy(item, p, len);
		item[len] = '\0';
		if (!acct_check_word(item, max))
			return 0;
		if (cidr && !acct_check_cidr(item))
			return 0;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, item, len);
		o += len;
		if (end == NULL)
			break;
		p = end + 1;
	}
	out[o] = '\0';
	return 1;
}

int
acct_check_url(const char *url, int proxy)
{
	static const char *const web[] = { "http://", "https://", NULL };
	static const char *const prox[] = { "http://", "https://", "socks4://",
		"socks4a://", "socks5://", "socks5h://", NULL };
	const char *const *schemes = proxy ? prox : web;
	size_t len = strlen(url);

	if (len > PF_URL_MAX || acct_check_control(url)
	    || strchr(url, ' ') != NULL)
		return 0;
	for (size_t i = 0; schemes[i] != NULL; i++) {
		size_t sl = strlen(schemes[i]);

		if (strncmp(url, schemes[i], sl) == 0)
			return url[sl] != '\0' && url[sl] != '/'
			    && url[sl] != '?' && url[sl] != '#';
	}
	return 0;
}

int
acct_check_model_mapping(const char *text, char **ret_json)
{
	json_error_t jerr;
	json_t *root;
	const char *k;
	json_t *v;
	char *out;
	int empty;

	if (strlen(text) > PF_MODEL_MAPPING_MAX)
		return 0;
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return 0;
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	json_object_foreach(root, k, v)
	{
		if (!acct_check_word(k, PF_MODEL_NAME_MAX) || !json_is_string(v)
		    || !acct_check_word(
		        json_string_value(v), PF_MODEL_NAME_MAX)) {
			json_decref(root);
			return 0;
		}
	}
	empty = json_object_size(root) == 0;
	out = empty ? NULL : json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!empty && out == NULL)
		return 0;
	*ret_json = out;
	return 1;
}
