/*
 * guard.h -- cuts client connections that are too slow to send a request.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that
 * sends its header block one byte every few seconds (slowloris) is never
 * idle long enough to be cut.  The guard gives every connection a
 * deadline for its whole header block, counted from the accept (or from
 * the end of the previous request on a keep-alive connection), and one
 * for its body, counted from the end of the headers; a sweeper thread
 * shuts down the socket of a connection past its deadline, and
 * libmicrohttpd then closes it as it would any peer that went away.
 *
 * Records are owned by the guard; the HTTP side keeps the pointer
 * ing_guard_add returns (MHD's socket context) until ing_guard_remove.
 */
#ifndef PF_INGRESS_GUARD_H
#define PF_INGRESS_GUARD_H

#include <stdint.h>

#include "common/err.h"

typedef struct ing_guard ing_guard;
typedef struct ing_guard_rec ing_guard_rec;

/* Where a connection is (ing_guard_busy). */
enum {
	ING_GUARD_HEADERS = 0, /* waiting for a header block */
	ING_GUARD_BODY = 1,    /* headers done, the body is coming */
	ING_GUARD_RUNNING = 2, /* request received: no deadline */
};

/*
 * ing_guard_start starts the sweeper: a header block must be complete
 * within header_ms, a body within body_ms after its headers.  Errors:
 * PF_ENOMEM, PF_EIO (thread).
 */
PF_NODISCARD pf_err ing_guard_start(
    uint32_t header_ms, uint32_t body_ms, ing_guard **ret);

/* ing_guard_add starts watching connected socket fd (its peer address is
 * remembered, so a reused fd number is never cut); NULL when out of
 * memory (the connection is then not guarded). */
ing_guard_rec *ing_guard_add(ing_guard *g, int fd);

/* ing_guard_busy moves rec to state (ING_GUARD_*); a change starts that
 * state's deadline now (none for RUNNING).  rec may be NULL. */
void ing_guard_busy(ing_guard *g, ing_guard_rec *rec, int state);

/* ing_guard_remove stops watching and frees rec; NULL is a no-op.  Call
 * before the socket is closed. */
void ing_guard_remove(ing_guard *g, ing_guard_rec *rec);

/* ing_guard_cut returns how many connections the guard has cut. */
uint64_t ing_guard_cut(ing_guard *g);

/* ing_guard_free stops the sweeper and frees g and any records left;
 * NULL is a no-op.  Blocks. */
void ing_guard_free(ing_guard *g);

#endif /* PF_INGRESS_GUARD_H */
