/*
 * check.h -- validation of admin input before it reaches the database:
 * names, comma lists, CIDRs, URLs, model mappings.
 *
 * The predicates return 1 when the input is acceptable, 0 otherwise; none
 * of them allocates except acct_check_model_mapping.
 */
#ifndef PF_ACCOUNTANT_CHECK_H
#define PF_ACCOUNTANT_CHECK_H

#include <stddef.h>

/* acct_check_control returns 1 when s holds a control character (below
 * 0x20) or DEL. */
int acct_check_control(const char *s);

/* acct_check_word: s is 1..max bytes without control characters, spaces
 * or commas (usernames, groups and model names end up in comma lists). */
int acct_check_word(const char *s, size_t max);

/* acct_check_text: s is 0..max bytes without control characters. */
int acct_check_text(const char *s, size_t max);

/* acct_check_cidr: item is an IPv4 or IPv6 address, optionally followed
 * by "/bits" (0..32 or 0..128). */
int acct_check_cidr(const char *item);

/*
 * acct_check_list normalizes a comma list "a, b,c" into out ("a,b,c"):
 * items are trimmed of spaces and each must pass acct_check_word with max
 * (at most PF_MODEL_NAME_MAX) and, with cidr set, acct_check_cidr.  An
 * empty list or an empty item is refused.  out must hold strlen(in) + 1
 * bytes; its content is unspecified when 0 is returned.
 */
int acct_check_list(const char *in, size_t max, int cidr, char *out);

/* acct_check_url: url is http:// or https:// (with proxy set also
 * socks4://, socks4a://, socks5://, socks5h://) followed by a host, at most
 * PF_URL_MAX bytes, without spaces or control characters. */
int acct_check_url(const char *url, int proxy);

/*
 * acct_check_model_mapping checks that text (at most PF_MODEL_MAPPING_MAX
 * bytes) is a JSON object mapping model names to model names (both
 * acct_check_word with PF_MODEL_NAME_MAX, no duplicate keys).  On success
 * *ret_json receives its compact re-encoding with sorted keys (free() it),
 * or NULL for the empty object.  Returns 0 on malformed input or when out
 * of memory; *ret_json untouched then.
 */
int acct_check_model_mapping(const char *text, char **ret_json);

#endif /* PF_ACCOUNTANT_CHECK_H */
