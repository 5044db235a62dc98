#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "workers/reply.h"

struct wrk_reply {
	wrk_replies *owner;
	nng_socket sock;
	char *addr;
	size_t refs;    /* queues bound to this socket */
	size_t waiting; /* queues with messages waiting */
	int send_fd;    /* -1 until asked */
	int full;       /* refused a send this loop turn: do not retry */
};

struct wrk_replies {
	wrk_reply *socks[PF_REPLY_SOCKETS_MAX];
	size_t n;
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
	*ret = rs;
	return PF_OK;
}

static void
reply_free(wrk_reply *r)
{
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
	rv = nng_push0_open(&r->sock);
	if (rv != 0) {
		free(r->addr);
		free(r);
		return PF_ENET;
	}
	/* A queue in the socket absorbs bursts without EAGAIN round trips;
	 * failure to set it only costs speed. */
	(void)nng_socket_set_int(r->sock, NNG_OPT_SENDBUF, PF_REPLY_SENDBUF);
	rv = nng_dial(r->sock, addr, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		reply_free(r);
		return rv == NNG_ENOMEM                           ? PF_ENOMEM
		    : (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) ? PF_EINVAL
		                                                  : PF_ENET;
	}
	*ret = r;
	return PF_OK;
}

pf_err
wrk_outq_open(wrk_replies *rs, wrk_outq *q, const uint8_t *addr, size_t len)
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
			r = rs->socks[i];
			break;
		}
	}
	if (r == NULL) {
		if (rs->n == PF_REPLY_SOCKETS_MAX) {
			size_t i;

			for (i = 0; i < rs->n; i++)
				if (rs->socks[i]->refs == 0)
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
	}
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

pf_err
wrk_outq_send(wrk_outq *q, const pf_msg *m, pf_buf *enc)
{
	nng_msg *msg;
	pf_err err;
	int rv;

	if (q->reply == NULL)
		return PF_ENET;
	enc->len = 0;
	err = pf_msg_encode(m, enc);
	if (err != PF_OK)
		return err;
	rv = nng_msg_alloc(&msg, enc->len);
	if (rv != 0)
		return PF_ENOMEM;
	memcpy(nng_msg_body(msg), enc->data, enc->len);
	if (q->n == 0 && !q->reply->full) {
		rv = nng_sendmsg(q->reply->sock, msg, NNG_FLAG_NONBLOCK);
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
	while (q->_head != NULL) {
		struct wrk_outmsg *o = q->_head;
		int rv;

		if (q->reply->full)
			return PF_EAGAIN;
		rv = nng_sendmsg(q->reply->sock, o->msg, NNG_FLAG_NONBLOCK);
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

		if (r->waiting == 0)
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
