/*
 * loadgen_tls.h -- TLS for `planktonfly bench --url https://...` (OpenSSL,
 * non-blocking, one session per connection).
 */
#ifndef PF_BENCH_LOADGEN_TLS_H
#define PF_BENCH_LOADGEN_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_ctx_st;
struct ssl_st;

/* What lg_tls_handshake, lg_tls_read and lg_tls_write return besides a
 * count: wait for the socket (edge-triggered epoll reports the change),
 * or the session failed. */
#define LG_TLS_WANT (-2)
#define LG_TLS_ERR (-1)

/* lg_tls_ctx_new makes the client context of a run: TLS 1.2 or later;
 * the server's certificate is checked against cafile (NULL: the system's
 * trust store) unless insecure.  NULL on failure, the reason in err. */
struct ssl_ctx_st *lg_tls_ctx_new(
    const char *cafile, int insecure, char *err, size_t errlen);

void lg_tls_ctx_free(struct ssl_ctx_st *ctx);

/* lg_tls_open starts a client session on the connected socket fd.  The
 * certificate must name host (a DNS name, or an IP literal), which is
 * also sent as the server name (SNI) when it is a DNS name.  NULL when out
 * of memory. */
struct ssl_st *lg_tls_open(struct ssl_ctx_st *ctx, int fd, const char *host);

/* lg_tls_close frees a session (the socket stays open). */
void lg_tls_close(struct ssl_st *ssl);

/* lg_tls_handshake advances the handshake: 1 when done, LG_TLS_WANT or
 * LG_TLS_ERR (then lg_tls_why says why). */
int lg_tls_handshake(struct ssl_st *ssl);

/* lg_tls_read: bytes read (> 0), 0 when the server ended the session or
 * closed the connection, LG_TLS_WANT or LG_TLS_ERR.  Reads until the
 * socket has nothing left is the caller's job: a short read does not mean
 * the socket is drained (the rest may be the next TLS record). */
ssize_t lg_tls_read(struct ssl_st *ssl, void *buf, size_t n);

/* lg_tls_write: bytes written (> 0; may be fewer than n), LG_TLS_WANT or
 * LG_TLS_ERR.  After LG_TLS_WANT, call again with the same bytes. */
ssize_t lg_tls_write(struct ssl_st *ssl, const void *buf, size_t n);

/* lg_tls_why writes why the last call on ssl failed (a certificate that
 * did not verify, or OpenSSL's error) into buf, and returns buf.  Clears
 * the thread's OpenSSL error queue. */
const char *lg_tls_why(struct ssl_st *ssl, char *buf, size_t n);

#endif /* PF_BENCH_LOADGEN_TLS_H */
