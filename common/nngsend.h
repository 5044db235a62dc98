/*
 * nngsend.h -- nng_sendmsg on an aio the caller keeps.
 *
 * NNG 1.5.2's nng_sendmsg allocates an aio for every call, and an aio's
 * init picks its expiry queue with nni_random(), a getrandom(2) system
 * call: 1.6 of them per request in split, measured.  The hot senders
 * keep an idle aio and send through pf_nng_sendmsg instead.
 */
#ifndef PF_COMMON_NNGSEND_H
#define PF_COMMON_NNGSEND_H

#include <nng/nng.h>

/*
 * pf_nng_sendmsg is nng_sendmsg(s, msg, flags) done on aio (idle, from
 * nng_aio_alloc(&aio, NULL, NULL), owned by the caller and used by one
 * send at a time); aio NULL: nng_sendmsg itself.  Returns what
 * nng_sendmsg would (NNG_EAGAIN for a non-blocking send that found no
 * room); msg is taken on 0 only, as nng_sendmsg does.
 */
static inline int
pf_nng_sendmsg(nng_aio *aio, nng_socket s, nng_msg *msg, int flags)
{
	int rv;

	if (aio == NULL)
		return nng_sendmsg(s, msg, flags);
	nng_aio_set_timeout(aio,
	    (flags & NNG_FLAG_NONBLOCK) ? NNG_DURATION_ZERO
	                                : NNG_DURATION_DEFAULT);
	nng_aio_set_msg(aio, msg);
	nng_send_aio(s, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	nng_aio_set_msg(aio, NULL);
	if (rv == NNG_ETIMEDOUT && flags == NNG_FLAG_NONBLOCK)
		rv = NNG_EAGAIN;
	return rv;
}

#endif /* PF_COMMON_NNGSEND_H */
