/*
 * loadgen_tls.c -- TLS for the load generator (see loadgen_tls.h).
 */
#include "bench/loadgen_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct ssl_ctx_st *
lg_tls_ctx_new(const char *cafile, int insecure, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot set up TLS");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* partial writes: send_more keeps its own offset; release: an idle
	 * connection does not hold two record buffers */
	SSL_CTX_set_mode(ctx,
	    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
	        | SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* a server that closes without close_notify ends the session like
	 * one that sends it (HTTP framing says whether the answer was
	 * whole) */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	if (insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ok = cafile != NULL ? SSL_CTX_load_verify_locations(ctx, cafile, NULL)
	                    : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(err, errlen,
		    "cannot load the trusted certificates%s%s",
		    cafile != NULL ? " of " : "", cafile != NULL ? cafile : "");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
lg_tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

/* is_ip says whether host is an IPv4 or IPv6 literal. */
static int
is_ip(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1
	    || inet_pton(AF_INET6, host, a) == 1;
}

struct ssl_st *
lg_tls_open(struct ssl_ctx_st *ctx, int fd, const char *host)
{
	SSL *ssl = SSL_new(ctx);
	int ok;

	if (ssl == NULL)
		return NULL;
	ok = SSL_set_fd(ssl, fd);
	if (ok && is_ip(host))
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else if (ok)
		ok = SSL_set_tlsext_host_name(ssl, host)
		    && SSL_set1_host(ssl, host);
	if (!ok) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

void
lg_tls_close(struct ssl_st *ssl)
{
	SSL_free(ssl);
}

/* outcome maps a failed call's SSL_get_error to LG_TLS_WANT, 0 (the peer
 * ended the session) or LG_TLS_ERR. */
static int
outcome(SSL *ssl, int r)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return LG_TLS_WANT;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && errno == 0)
			return 0; /* EOF without close_notify (older OpenSSL) */
		return LG_TLS_ERR;
	default:
		return LG_TLS_ERR;
	}
}

int
lg_tls_handshake(struct ssl_st *ssl)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(ssl);
	if (r == 1)
		return 1;
	r = outcome(ssl, r);
	return r == LG_TLS_WANT ? LG_TLS_WANT : LG_TLS_ERR;
}

ssize_t
lg_tls_read(struct ssl_st *ssl, void *buf, size_t n)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	return outcome(ssl, r);
}

ssize_t
lg_tls_write(struct ssl_st *ssl, const void *buf, size_t n)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	r = outcome(ssl, r);
	return r == 0 ? LG_TLS_ERR : r;
}

const char *
lg_tls_why(struct ssl_st *ssl, char *buf, size_t n)
{
	long v = SSL_get_verify_result(ssl);
	unsigned long e = ERR_get_error();

	if (v != X509_V_OK)
		snprintf(buf, n, "certificate: %s",
		    X509_verify_cert_error_string(v));
	else if (e != 0)
		ERR_error_string_n(e, buf, n);
	else
		snprintf(buf, n, "the connection closed during the handshake");
	ERR_clear_error();
	return buf;
}
