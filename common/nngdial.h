/*
 * nngdial.h -- dialing a peer that may restart.
 *
 * Every dialed socket between the roles (ingress -> worker requests and
 * control, worker -> ingress replies, ingress -> accountant grants and
 * its broadcasts) redials a lost peer every PF_REDIAL_MIN_MS, backing
 * off to PF_REDIAL_MAX_MS.  NNG's own default is a fixed 1 s with a
 * random part of it waited before each dial: a peer back after a
 * restart waited up to that long for its first messages
 * (bench/results/2026-11-27-vm-reply-redial.md).
 */
#ifndef PF_COMMON_NNGDIAL_H
#define PF_COMMON_NNGDIAL_H

#include <nng/nng.h>

#include "common/limits.h"

/*
 * pf_nng_dial sets s's redial interval and dials url without waiting for
 * the connection (it is made, and remade, in the background).  Returns
 * what nng_dial does.
 */
static inline int
pf_nng_dial(nng_socket s, const char *url)
{
	/* failing to set them only makes the redial slower */
	(void)nng_socket_set_ms(s, NNG_OPT_RECONNMINT, PF_REDIAL_MIN_MS);
	(void)nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, PF_REDIAL_MAX_MS);
	return nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
}

#endif /* PF_COMMON_NNGDIAL_H */
