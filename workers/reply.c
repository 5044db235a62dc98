#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdlib.h>
#include <string.h>

#include "common/lane.h"
#include "common/limits.h"
#include "common/nngdial.h"
#include "common/nngsend.h"
#include "workers/reply.h"

struct wrk_reply {
	wrk_replies *owner;
	nng_socket sock;
	char *addr;
	size_t refs;    /* queues bound to this socket */
	size_t waiting; /* queues with messages waiting */
	int send_fd;    /* -1 until asked */
	int full;       /* refused a send this loop turn: do not retry */
	int batch;      /* the ingress reads packed replies */
	int lane;       /* the ingress is in this process: no socket */
	nng_msg *pend;  /* batch mode: replies packed, not yet sent */
};

struct wrk_replies {
	wrk_reply *socks[PF_REPLY_SOCKETS_MAX];
	size_t n;
	pf_lane *lane;     /* NULL: every reply address is an NNG socket */
	int lane_sent;     /* replies handed to the lane since the flush */
	nng_aio *send_aio; /* the sends' (common/nngsend.h); NULL: none */
};

struct wrk_outmsg {
	struct wrk_outmsg *next;
	nng_msg *msg;
};

pf_err
wrk_replies_new(wrk_replies **ret)
{
	wrk_replies *rs = calloc(1, sizeof *rs);

	if (rs == NULL)
		return PF_ENOMEM;
	/* without it sends allocate their own (nng_sendmsg) */
	if (nng_aio_alloc(&rs->send_aio, NULL, NULL) != 0)
		rs->send_aio = NULL;
	*ret = rs;
	return PF_OK;
}

/* A non-blocking send of m on r's socket (nng_sendmsg's contract). */
static int
send_nb(wrk_reply *r, nng_msg *m)
{
	return pf_nng_sendmsg(
	    r->owner->send_aio, r->sock, m, NNG_FLAG_NONBLOCK);
}

void
wrk_replies_set_lane(wrk_replies *rs, pf_lane *lane)
{
	rs->lane = lane;
}

static void
reply_free(wrk_reply *r)
{
	if (r->lane) {
		free(r->addr);
		free(r);
		return;
	}
	if (r->pend != NULL && send_nb(r, r->pend) != 0)
		nng_msg_free(r->pend);
	nng_close(r->sock);
	free(r->addr);
	free(r);
}

void
wrk_replies_free(wrk_replies *rs)
{
	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->n; i++)
		reply_free(rs->socks[i]);
	nng_aio_free(rs->send_aio);
	free(rs);
}

static pf_err
reply_open(wrk_replies *rs, const char *addr, wrk_reply **ret)
{
	wrk_reply *r = calloc(1, sizeof *r);
	int rv;

	if (r == NULL)
		return PF_ENOMEM;
	r->owner = rs;
	r->send_fd = -1;
	r->addr = strdup(addr);
	if (r->addr == NULL) {
		free(r);
		return PF_ENOMEM;
	}
	if (rs->lane != NULL
	    && pf_lane_has_reply(
	        rs->lane, (const uint8_t *)addr, strlen(addr))) {
		r->lane = 1;
		*ret = r;
		return PF_OK;
	}
	rv = nng_push0_open(&r->sock);
	if (rv != 0) {
		free(r->addr);
		free(r);
		return PF_ENET;
	}
	/* A queue in the socket absorbs bursts without EAGAIN round trips;
	 * failure to set it only costs speed. */
	(void)nng_socket_set_int(r->sock, NNG_OPT_SENDBUF, PF_REPLY_SENDBUF);
	rv = pf_nng_dial(r->sock, addr);
	if (rv != 0) {
		reply_free(r);
		return rv == NNG_ENOMEM                           ? PF_ENOMEM
		    : (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) ? PF_EINVAL
		                                                  : PF_ENET;
	}
	*ret = r;
	return PF_OK;
}

/* reply_get finds the socket for addr, opening it (and closing an unused
 * one to make room) when new. */
static pf_err
reply_get(wrk_replies *rs, const uint8_t *addr, size_t len, wrk_reply **ret)
{
	char name[PF_URL_MAX + 1];
	wrk_reply *r = NULL;
	pf_err err;

	if (len == 0 || len > PF_URL_MAX || memchr(addr, 0, len) != NULL)
		return PF_EINVAL;
	memcpy(name, addr, len);
	name[len] = 0;
	for (size_t i = 0; i < rs->n; i++) {
		if (strcmp(rs->socks[i]->addr, name) == 0) {
			*ret = rs->socks[i];
			return PF_OK;
		}
	}
	if (rs->n == PF_REPLY_SOCKETS_MAX) {
		size_t i;

		for (i = 0; i < rs->n; i++)
			if (rs->socks[i]->refs == 0
			    && rs->socks[i]->pend == NULL)
				break;
		if (i == rs->n)
			return PF_EAGAIN;
		reply_free(rs->socks[i]);
		rs->socks[i] = rs->socks[--rs->n];
	}
	err = reply_open(rs, name, &r);
	if (err != PF_OK)
		return err;
	rs->socks[rs->n++] = r;
	*ret = r;
	return PF_OK;
}

pf_err
wrk_replies_batch(wrk_replies *rs, const uint8_t *addr, size_t len)
{
	wrk_reply *r;
	pf_err err = reply_get(rs, addr, len, &r);

	if (err == PF_OK)
		r->batch = 1;
	return err;
}

pf_err
wrk_outq_open(wrk_replies *rs, wrk_outq *q, const uint8_t *addr, size_t len)
{
	wrk_reply *r;
	pf_err err = reply_get(rs, addr, len, &r);

	if (err != PF_OK)
		return err;
	r->refs++;
	memset(q, 0, sizeof *q);
	q->reply = r;
	return PF_OK;
}

static void
queue_drop(wrk_outq *q)
{
	struct wrk_outmsg *o = q->_head, *next;

	for (; o != NULL; o = next) {
		next = o->next;
		nng_msg_free(o->msg);
		free(o);
	}
	if (q->n > 0 && q->reply != NULL)
		q->reply->waiting--;
	q->_head = q->_tail = NULL;
	q->n = 0;
}

void
wrk_outq_close(wrk_outq *q)
{
	if (q->reply == NULL)
		return;
	queue_drop(q);
	q->reply->refs--;
	q->reply = NULL;
}

static pf_err
enqueue(wrk_outq *q, nng_msg *msg)
{
	struct wrk_outmsg *o = malloc(sizeof *o);

	if (o == NULL)
		return PF_ENOMEM;
	o->next = NULL;
	o->msg = msg;
	if (q->_tail != NULL)
		q->_tail->next = o;
	else
		q->_head = o;
	q->_tail = o;
	if (q->n++ == 0)
		q->reply->waiting++;
	return PF_OK;
}

/* pend_send hands r's packed replies to the socket: PF_OK when none are
 * left, PF_EAGAIN when the socket is busy, PF_ENET when it failed (the
 * packed replies are dropped). */
static pf_err
pend_send(wrk_reply *r)
{
	int rv;

	if (r->pend == NULL)
		return PF_OK;
	if (r->full)
		return PF_EAGAIN;
	rv = send_nb(r, r->pend);
	if (rv == NNG_EAGAIN) {
		r->full = 1;
		return PF_EAGAIN;
	}
	if (rv != 0)
		nng_msg_free(r->pend);
	r->pend = NULL;
	return rv == 0 ? PF_OK : PF_ENET;
}

/* pend_add packs enc behind r's earlier replies; -1 when it must not (the
 * batch would be too large and cannot go out now). */
static int
pend_add(wrk_reply *r, const pf_buf *enc)
{
	if (r->pend != NULL && nng_msg_len(r->pend) + enc->len > PF_MSG_MAX
	    && pend_send(r) != PF_OK)
		return -1;
	if (r->pend == NULL && nng_msg_alloc(&r->pend, 0) != 0) {
		r->pend = NULL;
		return -1;
	}
	if (nng_msg_append(r->pend, enc->data, enc->len) != 0) {
		if (nng_msg_len(r->pend) == 0) {
			nng_msg_free(r->pend);
			r->pend = NULL;
		}
		return -1;
	}
	/* a full batch goes now; a refusal keeps it for the flush */
	if (nng_msg_len(r->pend) >= PF_REPLY_BATCH_BYTES)
		(void)pend_send(r);
	return 0;
}

pf_err
wrk_outq_send(wrk_outq *q, const pf_msg *m, pf_buf *enc)
{
	nng_msg *msg;
	pf_err err;
	int rv;

	if (q->reply == NULL)
		return PF_ENET;
	/* in this process: the ingress files m before the call returns */
	if (q->reply->lane) {
		q->reply->owner->lane_sent = 1;
		return pf_lane_reply(q->reply->owner->lane,
		    (const uint8_t *)q->reply->addr, strlen(q->reply->addr), m);
	}
	enc->len = 0;
	err = pf_msg_encode(m, enc);
	if (err != PF_OK)
		return err;
	/* packed with the turn's other replies, sent by wrk_replies_flush */
	if (q->n == 0 && q->reply->batch && pend_add(q->reply, enc) == 0)
		return PF_OK;
	rv = nng_msg_alloc(&msg, enc->len);
	if (rv != 0)
		return PF_ENOMEM;
	memcpy(nng_msg_body(msg), enc->data, enc->len);
	if (q->n == 0 && !q->reply->full && q->reply->pend == NULL) {
		rv = send_nb(q->reply, msg);
		if (rv == 0)
			return PF_OK;
		if (rv != NNG_EAGAIN) {
			nng_msg_free(msg);
			return PF_ENET;
		}
		q->reply->full = 1;
	}
	err = enqueue(q, msg);
	if (err != PF_OK)
		nng_msg_free(msg);
	return err;
}

pf_err
wrk_outq_flush(wrk_outq *q)
{
	pf_err err;

	if (q->_head == NULL)
		return PF_OK;
	/* the packed replies are older than this queue */
	err = pend_send(q->reply);
	if (err == PF_EAGAIN)
		return err;
	if (err != PF_OK) {
		queue_drop(q);
		return err;
	}
	while (q->_head != NULL) {
		struct wrk_outmsg *o = q->_head;
		int rv;

		if (q->reply->full)
			return PF_EAGAIN;
		rv = send_nb(q->reply, o->msg);
		if (rv == NNG_EAGAIN) {
			q->reply->full = 1;
			return PF_EAGAIN;
		}
		if (rv != 0) {
			queue_drop(q);
			return PF_ENET;
		}
		q->_head = o->next;
		if (q->_head == NULL)
			q->_tail = NULL;
		free(o);
		if (--q->n == 0)
			q->reply->waiting--;
	}
	return PF_OK;
}

void
wrk_replies_flush(wrk_replies *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		(void)pend_send(rs->socks[i]);
	/* the ingress wakes its billing once for the turn's replies */
	if (rs->lane_sent) {
		rs->lane_sent = 0;
		pf_lane_flush(rs->lane);
	}
}

void
wrk_replies_new_turn(wrk_replies *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		rs->socks[i]->full = 0;
}

size_t
wrk_replies_poll_fds(wrk_replies *rs, int *fds, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < rs->n && k < max; i++) {
		wrk_reply *r = rs->socks[i];

		if (r->waiting == 0 && r->pend == NULL)
			continue;
		if (r->send_fd < 0
		    && nng_socket_get_int(r->sock, NNG_OPT_SENDFD, &r->send_fd)
		        != 0) {
			r->send_fd = -1;
			continue;
		}
		fds[k++] = r->send_fd;
	}
	return k;
}
