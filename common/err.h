/*
 * err.h -- the one error enum of Planktonfly.
 *
 * Every fallible function returns a pf_err; 0 is success.  Library errors
 * (libpq, curl, nng, hiredis, errno) are mapped to these codes once, at the
 * module boundary that calls the library.
 */
#ifndef PF_COMMON_ERR_H
#define PF_COMMON_ERR_H

#define PF_NODISCARD __attribute__((warn_unused_result))

typedef enum pf_err {
	PF_OK = 0,
	PF_ENOMEM,    /* allocation failed */
	PF_EINVAL,    /* invalid argument or malformed input */
	PF_ETOOBIG,   /* input exceeds a limit from limits.h */
	PF_EPROTO,    /* peer spoke a malformed or unknown protocol */
	PF_EVERSION,  /* message version not understood */
	PF_EIO,       /* operating-system I/O error */
	PF_EDB,       /* PostgreSQL error */
	PF_EREDIS,    /* Redis error */
	PF_ENOTFOUND, /* no such object */
	PF_EEXIST,    /* object already exists */
	PF_ETIMEDOUT, /* deadline passed */
	PF_ECLOSED,   /* object closed or shutting down */
	PF_ECANCELED, /* operation canceled */
	PF_EOVERFLOW, /* integer arithmetic would overflow */
	PF_ECONFIG,   /* bad configuration */
	PF_EUPSTREAM, /* upstream provider failed */
	PF_EAGAIN,    /* try again later */
	PF_ENET,      /* messaging (NNG) error */
	PF_ECRYPTO,   /* OpenSSL / randomness failure */
	PF_EDENIED,   /* authentication or authorization refused */
	PF_EPENDING,  /* started; the outcome is signalled later */
	PF_ERR_COUNT
} pf_err;

/*
 * pf_strerror returns a static, human-readable description of err.  Never
 * returns NULL; unknown values map to "unknown error".
 */
const char *pf_strerror(pf_err err);

#endif /* PF_COMMON_ERR_H */
