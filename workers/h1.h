/*
 * h1.h -- a transfer thread's own HTTP/1.1 client for plain http://
 * upstreams at an IP address, beside curl (which keeps everything else:
 * https, host names, proxies, HTTP/2).
 *
 * curl cost ~62 k of the ~207 k instructions of a relayed request and
 * ~14.5 KiB per transfer (bench/results/2026-11-26-vm-1714.md): it parses
 * the URL again, formats headers through its printf engine, polls each
 * socket twice and holds a receive buffer per transfer.  This client
 * writes the request with one sendmsg, reads into the thread's one
 * scratch buffer, and keeps per connection only the bytes a paused
 * consumer did not take or an unfinished line.
 *
 * A request leases a connection (wrk_h1_start): a kept-alive idle one to
 * the same address, or a new one.  A reused connection that dies before
 * any byte of the answer (the upstream closed it while idle) is replaced
 * by a new one once, as curl does.  When the answer is complete or the
 * transfer failed, the connection goes on the client's done list
 * (wrk_h1_take_done); the owner then releases it (wrk_h1_release): back
 * to the idle pool when complete and reusable, else closed.
 *
 * Sockets live in the thread's wrk_cloop epoll set (wrk_cloop_own_*).
 * Everything runs on the owning thread; nothing is locked.
 */
#ifndef PF_WORKERS_H1_H
#define PF_WORKERS_H1_H

#include <curl/curl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ctype.h"
#include "common/err.h"
#include "workers/cloop.h"
#include "workers/h1resp.h"

typedef struct wrk_h1 wrk_h1;
typedef struct wrk_h1_conn wrk_h1_conn;

/* An upstream's address. */
typedef union wrk_h1_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
} wrk_h1_addr;

/* Where a request goes: parsed from its URL by wrk_h1_parse_url. */
typedef struct wrk_h1_target {
	wrk_h1_addr addr;
	const char *authority; /* host[:port] as written (Host header) */
	size_t authority_len;
	const char *path; /* "/..." with any query */
	size_t path_len;
} wrk_h1_target;

/* How a transfer ended (wrk_h1_take_done). */
typedef enum wrk_h1_result {
	WRK_H1_OK,        /* the answer is complete */
	WRK_H1_ABORTED,   /* the body callback said stop */
	WRK_H1_CONNECT,   /* could not connect (errno in os_errno) */
	WRK_H1_LOCAL,     /* no socket or memory here (errno in os_errno) */
	WRK_H1_BROKEN,    /* the connection failed or ended early */
	WRK_H1_BAD_REPLY, /* not a well-formed HTTP/1.x answer */
	WRK_H1_TOO_BIG,   /* a head or line over its cap */
} wrk_h1_result;

/* A request to send.  Header lines are curl's form ("Name: value",
 * "Name;" for an empty value, "Name:" to leave a default header out). */
typedef struct wrk_h1_req {
	const char *method;
	const struct curl_slist *headers;
	const uint8_t *body; /* borrowed until the answer's first byte */
	size_t body_len;
	int send_length; /* send Content-Length (even when 0) */
} wrk_h1_req;

/*
 * wrk_h1_new makes a client whose sockets join loop's epoll set (loop is
 * not owned and must outlive it).  Errors: PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_h1_new(wrk_cloop *loop, wrk_h1 **ret);

/* wrk_h1_free closes every connection, leased or idle (owners must not
 * use theirs afterwards).  NULL is a no-op. */
void wrk_h1_free(wrk_h1 *c);

/*
 * wrk_h1_parse_url parses url ("http://IPv4[:port]/path" or
 * "http://[IPv6][:port]/path"; NUL-terminated, kept by the caller while
 * t is used).  Returns 0 when this client can carry it, -1 otherwise
 * (https, a host name, user info, a bad port): use curl.
 */
int wrk_h1_parse_url(const char *url, wrk_h1_target *t);

/*
 * wrk_h1_start leases a connection to t and begins sending req; answer
 * body bytes go to cb(arg, ...) as they arrive (the final head is then
 * available from wrk_h1_resp).  The outcome, success or failure, always
 * comes through wrk_h1_take_done, never from this call: a connect
 * refused at once is queued there too.  Errors (nothing leased):
 * PF_ENOMEM.
 */
PF_NODISCARD pf_err wrk_h1_start(wrk_h1 *c, const wrk_h1_target *t,
    const wrk_h1_req *req, wrk_h1_body_cb cb, void *arg, wrk_h1_conn **ret);

/* wrk_h1_resp returns the answer's parser state: status and head fields
 * once wrk_h1resp_has_head. */
const wrk_h1resp *wrk_h1_resp(const wrk_h1_conn *k);

/* wrk_h1_take_ctype moves the answer's Content-Type (copied when its
 * head came) into *ret, replacing what *ret held; none when it had none,
 * it was longer than PF_CTYPE_MAX, or it was taken already. */
void wrk_h1_take_ctype(wrk_h1_conn *k, pf_ctype *ret);

/* wrk_h1_connected: the connection is established. */
int wrk_h1_connected(const wrk_h1_conn *k);

/* wrk_h1_sent: the whole request, body included, has been sent. */
int wrk_h1_sent(const wrk_h1_conn *k);

/*
 * wrk_h1_resume continues a transfer whose body callback paused: the
 * bytes it held go to the callback now (which may pause again) and
 * reading resumes.  Completion, if this reaches it, is queued.
 */
void wrk_h1_resume(wrk_h1_conn *k);

/*
 * wrk_h1_take_done pops a finished transfer: *arg is what wrk_h1_start
 * was given, *res how it ended, *os_errno the errno behind a CONNECT or
 * LOCAL result (else 0).  Returns the connection, NULL when none is
 * done.  The owner must still wrk_h1_release it.
 */
wrk_h1_conn *wrk_h1_take_done(
    wrk_h1 *c, void **arg, wrk_h1_result *res, int *os_errno);

/* wrk_h1_has_done: a finished transfer waits for wrk_h1_take_done. */
int wrk_h1_has_done(const wrk_h1 *c);

/*
 * wrk_h1_release ends the owner's lease of k, finished or not: a
 * complete answer on a reusable connection returns it to the idle pool,
 * anything else closes it.  k must not be used afterwards.
 */
void wrk_h1_release(wrk_h1_conn *k);

/* wrk_h1_event handles epoll events for fd (wrk_cloop's handler). */
void wrk_h1_event(void *client, int fd, uint32_t events);

#endif /* PF_WORKERS_H1_H */
