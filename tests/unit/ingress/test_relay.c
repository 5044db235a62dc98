/* test_relay.c -- the in-flight table and reply dispatch over inproc://
 * with a fake worker: head/data/end land in the right flight, wake the
 * parked connection, order and caps are enforced, late replies are
 * dropped, and a flight past its deadline is ended as worker_lost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/util/platform.h>

#include "common/config.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/msg.h"
#include "ingress/relay.h"
#include "tests/tap.h"

typedef struct fake_conn {
	int resumed;
} fake_conn;

static void
resume_cb(void *conn)
{
	__atomic_add_fetch(&((fake_conn *)conn)->resumed, 1, __ATOMIC_SEQ_CST);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
send_msg(nng_socket s, const pf_msg *m)
{
	pf_buf b;
	nng_msg *nm;
	int rv;

	pf_buf_init(&b);
	if (pf_msg_encode(m, &b) != PF_OK)
		return -1;
	if (nng_msg_alloc(&nm, 0) != 0) {
		pf_buf_fini(&b);
		return -1;
	}
	rv = nng_msg_append(nm, b.data, b.len);
	pf_buf_fini(&b);
	if (rv == 0)
		rv = nng_sendmsg(s, nm, 0);
	if (rv != 0)
		nng_msg_free(nm);
	return rv;
}

static void
send_head_ctl(nng_socket s, const uint8_t *id, int status, const char *ctl)
{
	pf_msg m = { .kind = PF_MSG_RELAY_HEAD };
	memcpy(m.u.relay_head.id, id, PF_ID_LEN);
	m.u.relay_head.status = status;
	m.u.relay_head.content_type
	    = (pf_bytes) { (const uint8_t *)"text/event-stream", 17 };
	if (ctl != NULL)
		m.u.relay_head.ctl_addr
		    = (pf_bytes) { (const uint8_t *)ctl, strlen(ctl) };
	ok(send_msg(s, &m) == 0, "head sent");
}

static void
send_head(nng_socket s, const uint8_t *id, int status)
{
	send_head_ctl(s, id, status, NULL);
}

/* recv_kind receives one message on s: its kind, or 0 (timeout/garbage);
 * *ret_credit gets relay.credit's bytes. */
static int
recv_kind(nng_socket s, const uint8_t *id, uint32_t *ret_credit)
{
	nng_msg *nm = NULL;
	pf_msg *m = NULL;
	int kind = 0;

	if (nng_recvmsg(s, &nm, 0) != 0)
		return 0;
	if (pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), &m) == PF_OK) {
		if (m->kind == PF_MSG_RELAY_CANCEL
		    && memcmp(m->u.relay_cancel.id, id, PF_ID_LEN) == 0)
			kind = m->kind;
		if (m->kind == PF_MSG_RELAY_CREDIT
		    && memcmp(m->u.relay_credit.id, id, PF_ID_LEN) == 0) {
			kind = m->kind;
			*ret_credit = m->u.relay_credit.bytes;
		}
	}
	pf_msg_free(m);
	nng_msg_free(nm);
	return kind;
}

static void
send_data_est(nng_socket s, const uint8_t *id, uint32_t seq, const char *d,
    size_t n, int64_t completion)
{
	pf_msg m = { .kind = PF_MSG_RELAY_DATA };
	memcpy(m.u.relay_data.id, id, PF_ID_LEN);
	m.u.relay_data.seq = seq;
	m.u.relay_data.data = (pf_bytes) { (const uint8_t *)d, n };
	m.u.relay_data.completion = completion;
	ok(send_msg(s, &m) == 0, "data %u sent", seq);
}

static void
send_data(
    nng_socket s, const uint8_t *id, uint32_t seq, const char *d, size_t n)
{
	send_data_est(s, id, seq, d, n, 0);
}

static void
send_end(nng_socket s, const uint8_t *id, uint32_t seq, int reason)
{
	pf_msg m = { .kind = PF_MSG_RELAY_END };
	memcpy(m.u.relay_end.id, id, PF_ID_LEN);
	m.u.relay_end.seq = seq;
	m.u.relay_end.reason = reason;
	/* common/msg.c memcpy()s even an empty field: keep ptr non-NULL */
	m.u.relay_end.error = (pf_bytes) { (const uint8_t *)"", 0 };
	ok(send_msg(s, &m) == 0, "end sent");
}

/* wait_for polls (no timing assertion: a generous bound, then fail) */
static int
wait_for(ing_flight *f, int (*pred)(const ing_flight *f))
{
	for (int i = 0; i < 1000; i++) {
		pthread_mutex_lock(&f->mu);
		int done = pred(f);
		pthread_mutex_unlock(&f->mu);
		if (done)
			return 1;
		nng_msleep(10);
	}
	return 0;
}

static int
has_head(const ing_flight *f)
{
	return f->head;
}

static int
has_end(const ing_flight *f)
{
	return f->ended || f->failed;
}

static int
has_n_bytes(const ing_flight *f)
{
	return f->len - f->off >= PF_STREAM_BUFFER_MAX + 3 || f->failed;
}

static int
has_one_byte(const ing_flight *f)
{
	return f->len - f->off >= 1 || f->failed;
}

static int
has_two_bytes(const ing_flight *f)
{
	return f->len - f->off >= 2 || f->failed;
}

/* start a request: send it through the relay, receive it as the worker */
static ing_flight *
start(ing_relay *r, nng_socket worker, fake_conn *fc, int stream,
    int64_t deadline)
{
	uint8_t id[PF_ID_LEN];
	pf_candidate cand = { .channel_id = 1,
		.type = PF_API_OPENAI,
		.base_url = { (const uint8_t *)"http://x/v1", 11 },
		.key = { (const uint8_t *)"k", 1 },
		.proxy = { (const uint8_t *)"", 0 },
		.upstream_model = { (const uint8_t *)"m", 1 } };
	pf_msg m = { .kind = PF_MSG_RELAY_REQUEST };
	ing_flight *f;
	nng_msg *nm;
	pf_msg *got = NULL;

	ok(pf_id_new(id) == PF_OK, "id");
	memcpy(m.u.relay_request.id, id, PF_ID_LEN);
	m.u.relay_request.reply_addr
	    = (pf_bytes) { (const uint8_t *)"inproc://t-reply", 16 };
	m.u.relay_request.deadline_ms = deadline;
	m.u.relay_request.method = (pf_bytes) { (const uint8_t *)"POST", 4 };
	m.u.relay_request.path
	    = (pf_bytes) { (const uint8_t *)"/chat/completions", 17 };
	m.u.relay_request.stream = (uint8_t)stream;
	m.u.relay_request.credit = stream ? PF_STREAM_CREDIT_WINDOW : 0;
	m.u.relay_request.client_api = PF_API_OPENAI;
	m.u.relay_request.body = (pf_bytes) { (const uint8_t *)"{}", 2 };
	m.u.relay_request.n_candidates = 1;
	m.u.relay_request.candidates = &cand;
	f = ing_flight_new(id, stream, deadline, fc, resume_cb);
	ok(ing_relay_send(r, f, &m) == PF_OK, "request sent");
	ok(nng_recvmsg(worker, &nm, 0) == 0, "worker got it");
	ok(pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), &got) == PF_OK
	        && got->kind == PF_MSG_RELAY_REQUEST
	        && memcmp(got->u.relay_request.id, id, PF_ID_LEN) == 0
	        && got->u.relay_request.stream == stream,
	    "worker decoded the same request");
	pf_msg_free(got);
	nng_msg_free(nm);
	return f;
}

/* quiet_logged sends this process's log (stderr) to a file for up to
 * PF_RELAY_QUIET_MS + 5 s and says whether a PF-RELAY-QUIET line holding
 * both a and b was written. */
static int
quiet_logged(const char *a, const char *b)
{
	char path[] = "/tmp/pf-test-relay-XXXXXX";
	char line[1024];
	int fd = mkstemp(path), saved = dup(2), found = 0;
	int64_t until = now_ms() + PF_RELAY_QUIET_MS + 5000;

	if (fd < 0 || saved < 0)
		return 0;
	fflush(stderr);
	dup2(fd, 2);
	while (!found && now_ms() < until) {
		FILE *fp;

		nng_msleep(200);
		fp = fopen(path, "r"); /* an offset of its own */
		if (fp == NULL)
			break;
		while (!found && fgets(line, sizeof(line), fp) != NULL)
			found = strstr(line, "PF-RELAY-QUIET") != NULL
			    && strstr(line, a) != NULL
			    && strstr(line, b) != NULL;
		fclose(fp);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	unlink(path);
	return found;
}

int
main(void)
{
	pf_config cfg;
	nng_socket worker, reply;
	ing_relay *r = NULL;
	fake_conn fc = { 0 };
	ing_flight *f;

	pf_config_defaults(&cfg);
	snprintf(cfg.worker_url, sizeof(cfg.worker_url), "inproc://t-work");
	snprintf(cfg.reply_url, sizeof(cfg.reply_url), "inproc://t-reply");
	ok(nng_pull0_open(&worker) == 0
	        && nng_listen(worker, cfg.worker_url, NULL, 0) == 0,
	    "fake worker listens");
	nng_socket_set_ms(worker, NNG_OPT_RECVTIMEO, 5000);
	ok(ing_relay_start(&cfg, &r) == PF_OK, "relay started");
	ok(nng_push0_open(&reply) == 0
	        && nng_dial(reply, cfg.reply_url, NULL, 0) == 0,
	    "fake worker dials the reply url");

	/* a stream: head wakes the parked connection, data queues */
	f = start(r, worker, &fc, 1, now_ms() + 60000);
	pthread_mutex_lock(&f->mu);
	ok(!ing_flight_ready_locked(f), "nothing to do before the head");
	f->suspended = 1; /* as the HTTP side would park it */
	pthread_mutex_unlock(&f->mu);
	send_head(reply, f->id, 200);
	ok(wait_for(f, has_head), "head filed");
	pthread_mutex_lock(&f->mu);
	ok(fc.resumed == 1 && !f->suspended, "head resumed the connection");
	ok(f->status == 200
	        && strcmp(pf_ctype_str(&f->content_type), "text/event-stream")
	            == 0,
	    "status and content type kept");
	f->responded = 1; /* response queued: reader phase */
	ok(!ing_flight_ready_locked(f), "reader has nothing yet");
	f->suspended = 1;
	pthread_mutex_unlock(&f->mu);
	send_data_est(reply, f->id, 0, "a", 1, 5);
	send_data_est(reply, f->id, 1, "b", 1, 9);
	ok(wait_for(f, has_two_bytes), "data queued");
	pthread_mutex_lock(&f->mu);
	ok(f->completion == 9,
	    "the stream keeps the worker's delivered completion estimate");
	pthread_mutex_unlock(&f->mu);
	pthread_mutex_lock(&f->mu);
	ok(f->len - f->off == 2 && memcmp(f->buf + f->off, "ab", 2) == 0,
	    "bytes in order");
	ok(fc.resumed == 2, "data resumed the reader once");
	f->off = f->len; /* the reader took both bytes */
	ing_flight_took_locked(f, 2);
	ok(f->buf == NULL && f->cap == 0 && f->len == 0 && f->off == 0,
	    "a drained stream queue is freed (an idle stream holds none)");
	f->suspended = 1;
	pthread_mutex_unlock(&f->mu);
	send_data(reply, f->id, 2, "c", 1);
	ok(wait_for(f, has_one_byte), "data after a drain queued");
	pthread_mutex_lock(&f->mu);
	ok(f->len - f->off == 1 && f->buf[f->off] == 'c' && f->cap < 4096,
	    "the next event gets a small queue again (%zu bytes)", f->cap);
	f->off = f->len;
	ing_flight_took_locked(f, 1);
	pthread_mutex_unlock(&f->mu);
	send_end(reply, f->id, 3, PF_END_DONE);
	ok(wait_for(f, has_end), "end filed");
	pthread_mutex_lock(&f->mu);
	ok(f->ended && f->reason == PF_END_DONE && !f->failed, "clean end");
	pthread_mutex_unlock(&f->mu);
	ing_relay_forget(r, f);
	ing_flight_unref(f);

	/* out-of-order data fails the flight */
	f = start(r, worker, &fc, 0, now_ms() + 60000);
	send_head(reply, f->id, 200);
	send_data(reply, f->id, 1, "x", 1);
	ok(wait_for(f, has_end), "gap detected");
	pthread_mutex_lock(&f->mu);
	ok(f->failed, "out-of-order data fails the request");
	pthread_mutex_unlock(&f->mu);
	ing_relay_forget(r, f);
	ing_flight_unref(f);

	/* stream buffer cap */
	static char big[PF_STREAM_BUFFER_MAX / 2 + 1];
	memset(big, 'e', sizeof(big));
	f = start(r, worker, &fc, 1, now_ms() + 60000);
	send_head(reply, f->id, 200);
	send_data(reply, f->id, 0, big, sizeof(big));
	send_data(reply, f->id, 1, big, sizeof(big));
	ok(wait_for(f, has_end), "overflow detected");
	pthread_mutex_lock(&f->mu);
	ok(f->failed && strstr(f->error, "buffer") != NULL,
	    "a stream over PF_STREAM_BUFFER_MAX is cut");
	pthread_mutex_unlock(&f->mu);
	ing_relay_forget(r, f);
	ing_flight_unref(f);

	/* end without head: an error end */
	f = start(r, worker, &fc, 0, now_ms() + 60000);
	send_end(reply, f->id, 0, PF_END_UPSTREAM_ERROR);
	ok(wait_for(f, has_end), "end without head filed");
	pthread_mutex_lock(&f->mu);
	ok(!f->head && f->reason == PF_END_UPSTREAM_ERROR,
	    "upstream error recorded");
	pthread_mutex_unlock(&f->mu);
	ing_relay_forget(r, f);
	ing_flight_unref(f);

	/* a deadline long gone: the sweeper ends it as worker_lost */
	f = start(r, worker, &fc, 0, now_ms() - PF_RELAY_GRACE_MS - 1000);
	ok(wait_for(f, has_end), "swept");
	pthread_mutex_lock(&f->mu);
	ok(f->ended && f->reason == PF_END_WORKER_LOST, "worker_lost");
	pthread_mutex_unlock(&f->mu);
	/* a late reply for a finished flight is dropped quietly */
	send_data(reply, f->id, 0, "late", 4);
	ing_flight_unref(f);

	/* before the head, a cancel goes round-robin to the workers; it is
	 * best effort (a push pipe not ready again yet drops it), so ask
	 * again until one arrives */
	uint32_t credit = 0;
	int kind = 0;
	f = start(r, worker, &fc, 1, now_ms() + 60000);
	nng_socket_set_ms(worker, NNG_OPT_RECVTIMEO, 1000);
	for (int i = 0; i < 10 && kind != PF_MSG_RELAY_CANCEL; i++) {
		ing_relay_cancel(r, f);
		kind = recv_kind(worker, f->id, &credit);
	}
	nng_socket_set_ms(worker, NNG_OPT_RECVTIMEO, 5000);
	ok(kind == PF_MSG_RELAY_CANCEL,
	    "relay.cancel before the head: through the push socket");

	/* after a head naming a control address: cancel and credit go there */
	nng_socket ctl;
	ok(nng_pull0_open(&ctl) == 0
	        && nng_listen(ctl, "inproc://t-ctl-0", NULL, 0) == 0,
	    "fake worker control socket");
	nng_socket_set_ms(ctl, NNG_OPT_RECVTIMEO, 5000);
	send_head_ctl(reply, f->id, 200, "inproc://t-ctl-0");
	ok(wait_for(f, has_head), "head with ctl_addr filed");
	pthread_mutex_lock(&f->mu);
	ok(f->flow, "a stream with a control address is flow-controlled");
	f->responded = 1;
	ing_flight_took_locked(f, PF_STREAM_CREDIT_STEP - 1);
	pthread_mutex_unlock(&f->mu);
	nng_socket_set_ms(ctl, NNG_OPT_RECVTIMEO, 100);
	ok(recv_kind(ctl, f->id, &credit) == 0,
	    "no grant below PF_STREAM_CREDIT_STEP");
	nng_socket_set_ms(ctl, NNG_OPT_RECVTIMEO, 5000);
	pthread_mutex_lock(&f->mu);
	ing_flight_took_locked(f, 2);
	pthread_mutex_unlock(&f->mu);
	ok(recv_kind(ctl, f->id, &credit) == PF_MSG_RELAY_CREDIT
	        && credit == PF_STREAM_CREDIT_STEP + 1,
	    "relay.credit with every byte taken (%u)", credit);
	/* flow-controlled: the queue may pass PF_STREAM_BUFFER_MAX */
	static char big2[PF_STREAM_BUFFER_MAX / 2 + 1];
	memset(big2, 'f', sizeof(big2));
	send_data(reply, f->id, 0, big2, sizeof(big2));
	send_data(reply, f->id, 1, big2, sizeof(big2));
	send_data(reply, f->id, 2, "z", 1);
	ok(wait_for(f, has_n_bytes), "data queued");
	pthread_mutex_lock(&f->mu);
	ok(!f->failed && f->len - f->off == 2 * sizeof(big2) + 1,
	    "a flow-controlled stream queues up to PF_STREAM_BUFFER_FLOW_MAX");
	pthread_mutex_unlock(&f->mu);
	ing_relay_cancel(r, f);
	ok(recv_kind(ctl, f->id, &credit) == PF_MSG_RELAY_CANCEL,
	    "relay.cancel after the head: to the worker's control address");
	nng_socket_set_ms(worker, NNG_OPT_RECVTIMEO, 100);
	ok(recv_kind(worker, f->id, &credit) == 0,
	    "... and not to the shared push socket");
	nng_socket_set_ms(worker, NNG_OPT_RECVTIMEO, 5000);
	ing_relay_forget(r, f);
	ing_flight_unref(f);

	/* a head for a flight no longer filed (its client left before the
	 * head; that cancel went round-robin): cancel at its control address */
	uint8_t orphan[PF_ID_LEN];
	ok(pf_id_new(orphan) == PF_OK, "orphan id");
	send_head_ctl(reply, orphan, 200, "inproc://t-ctl-0");
	ok(recv_kind(ctl, orphan, &credit) == PF_MSG_RELAY_CANCEL,
	    "a head nobody waits for: relay.cancel to its control address");

	/* a request nothing answers: after PF_RELAY_QUIET_MS the sweeper
	 * says so, with the live pipes (one each way here) */
	f = start(r, worker, &fc, 0, now_ms() + 60000);
	ok(quiet_logged("requests=1 ", "push_pipes=1 reply_pipes=1 "),
	    "a request with no answer for PF_RELAY_QUIET_MS: PF-RELAY-QUIET "
	    "with the pipe counts");
	ing_relay_forget(r, f);
	ing_flight_unref(f);

	/* close_all ends what is left and refuses new flights */
	f = start(r, worker, &fc, 0, now_ms() + 60000);
	ing_relay_close_all(r);
	pthread_mutex_lock(&f->mu);
	ok(f->ended && f->reason == PF_END_WORKER_LOST, "closed on shutdown");
	pthread_mutex_unlock(&f->mu);
	ing_flight_unref(f);
	uint8_t id[PF_ID_LEN] = { 1 };
	ing_flight *g = ing_flight_new(id, 0, now_ms() + 1000, &fc, resume_cb);
	pf_msg m = { .kind = PF_MSG_RELAY_REQUEST };
	memcpy(m.u.relay_request.id, id, PF_ID_LEN);
	m.u.relay_request.reply_addr
	    = (pf_bytes) { (const uint8_t *)"inproc://t-reply", 16 };
	m.u.relay_request.method = (pf_bytes) { (const uint8_t *)"POST", 4 };
	m.u.relay_request.path = (pf_bytes) { (const uint8_t *)"/x", 2 };
	m.u.relay_request.body = (pf_bytes) { (const uint8_t *)"{}", 2 };
	ok(ing_relay_send(r, g, &m) == PF_ECLOSED, "no sends after close_all");
	ing_flight_unref(g);

	ing_relay_free(r);
	nng_close(ctl);
	nng_close(reply);
	nng_close(worker);
	return tap_done();
}
