/*
 * acl.h -- a token's model and IP allow-lists.
 */
#ifndef PF_INGRESS_ACL_H
#define PF_INGRESS_ACL_H

#include <stddef.h>

struct sockaddr;

/*
 * ing_acl_model_allowed says whether model is in list, a comma-separated
 * list of model names (blanks around names ignored).  An empty list (or
 * NULL) allows every model.  Returns 1 if allowed, 0 if not.
 */
int ing_acl_model_allowed(const char *list, const char *model);

/*
 * ing_acl_ip_allowed says whether the client address sa (AF_INET or
 * AF_INET6; IPv4-mapped IPv6 counts as IPv4) is inside one of the CIDRs of
 * list ("10.0.0.0/8, 192.168.1.7, ::1/128").  A bare address means the one
 * host.  An empty list (or NULL) allows any address; malformed entries
 * match nothing; a NULL sa is refused when the list is not empty.
 */
int ing_acl_ip_allowed(const char *list, const struct sockaddr *sa);

/*
 * ing_acl_cidr_match says whether addr (4 or 16 bytes, alen) is inside
 * cidr (one entry, not NUL-terminated: cidr[0..clen)).  Returns 1 inside,
 * 0 outside, -1 malformed.
 */
int ing_acl_cidr_match(
    const char *cidr, size_t clen, const unsigned char *addr, size_t alen);

#endif /* PF_INGRESS_ACL_H */
