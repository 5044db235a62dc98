/* test_billing_sync.c -- when the usage spool is fdatasync'ed
 * (ingress/billing.c, PF_SPOOL_SYNC_AFTER_MS), against a fake accountant
 * on inproc:// that the test answers by hand.
 *
 * Checked: an event is in the spool file when the accountant receives
 * it (the write before the send that a SIGKILL needs) and before any
 * fdatasync; events the accountant acks within spool_sync_after_ms
 * (60 s here, so the check does not depend on the machine's speed) are
 * never fdatasync'ed; with the default (100 ms), events it leaves
 * unacked are (the wait for that is bounded: a missing sync fails, it
 * does not hang), once: nothing written since, no second sync; with 0,
 * an event is synced whether or not it is acked.
 * Nothing asserts how fast. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/limits.h"
#include "common/msg.h"
#include "common/reclog.h"
#include "ingress/billing.h"
#include "tests/tap.h"

#define E 100        /* every request's estimate */
#define QUIET_MS 400 /* longer than the default sync_after_ms (100) */

static nng_socket rep, pub;
static ing_billing *bill;
static uint64_t next_id = 1;
static pf_config cfg;

static void
resume_cb(void *conn)
{
	__atomic_store_n((int *)conn, 1, __ATOMIC_RELEASE);
}

static void
suspend_cb(void *conn)
{
	(void)conn;
}

static void
reply(const pf_msg *r)
{
	pf_buf b;
	nng_msg *nm = NULL;

	pf_buf_init(&b);
	if (pf_msg_encode(r, &b) == PF_OK && nng_msg_alloc(&nm, 0) == 0) {
		if (nng_msg_append(nm, b.data, b.len) != 0
		    || nng_sendmsg(rep, nm, 0) != 0)
			nng_msg_free(nm);
	}
	pf_buf_fini(&b);
}

/* acct_recv waits (at most ms) for the next request of kind (a usage
 * kind: PF_MSG_USAGE or PF_MSG_USAGE_BATCH) and returns it undecoded
 * replies aside; others are skipped.  NULL when none came. */
static pf_msg *
acct_recv(int usage, int ms)
{
	int64_t until = pf_clock_ms() + ms;

	while (pf_clock_ms() < until) {
		nng_msg *nm = NULL;
		pf_msg *m = NULL;
		if (nng_recvmsg(rep, &nm, 0) != 0)
			continue; /* NNG_ETIMEDOUT: 20 ms */
		if (pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), &m)
		    == PF_OK) {
			int is_usage = m->kind == PF_MSG_USAGE
			    || m->kind == PF_MSG_USAGE_BATCH;
			if (is_usage == usage
			    && (usage || m->kind == PF_MSG_GRANT_REQUEST)) {
				nng_msg_free(nm);
				return m;
			}
		}
		pf_msg_free(m);
		nng_msg_free(nm);
	}
	return NULL;
}

static uint32_t
n_events(const pf_msg *m)
{
	return m->kind == PF_MSG_USAGE ? 1 : m->u.usage_batch.n_usages;
}

static const pf_usage *
event_at(const pf_msg *m, uint32_t i)
{
	return m->kind == PF_MSG_USAGE ? &m->u.usage
	                               : &m->u.usage_batch.usages[i];
}

/* ack acknowledges every event of the usage message m. */
static void
ack(const pf_msg *m)
{
	pf_msg r = { .kind = PF_MSG_ACK };
	pf_bytes ids[PF_USAGE_BATCH_MAX];
	uint32_t n = n_events(m);

	for (uint32_t i = 0; i < n; i++)
		ids[i] = (pf_bytes) { (const uint8_t *)"ok", 2 };
	r.u.ack.n_ids = n;
	r.u.ack.ids = ids;
	reply(&r);
}

/* start_request admits a request of user 1 (asking the fake accountant
 * for credit the first time) and returns 1 when it was admitted. */
static int
start_request(ing_bill_ticket *t)
{
	ing_bill_wait w;
	int resumed = 0;
	pf_err err;

	memset(t, 0, sizeof(*t));
	memcpy(t->id, &next_id, sizeof(next_id));
	next_id++;
	t->user_id = 1;
	t->token_id = 1;
	t->model = "m";
	t->estimate = E;
	t->started_ms = pf_clock_ms();
	t->deadline_ms = t->started_ms + 60000;
	err = ing_billing_admit(bill, t, NULL);
	if (err != PF_EPENDING)
		return err == PF_OK;
	ing_bill_wait_init(&w, &resumed, resume_cb);
	err = ing_billing_admit(bill, t, &w);
	if (err == PF_EPENDING && ing_bill_wait_park(&w, suspend_cb)) {
		pf_msg *req = acct_recv(0, 5000);
		if (req != NULL) {
			pf_msg r = { .kind = PF_MSG_GRANT_REPLY };
			r.u.grant_reply.corr = req->u.grant_request.corr;
			r.u.grant_reply.user_id = req->u.grant_request.user_id;
			r.u.grant_reply.token_id
			    = req->u.grant_request.token_id;
			r.u.grant_reply.granted = req->u.grant_request.amount;
			r.u.grant_reply.expires_ms = pf_clock_ms() + 60000;
			r.u.grant_reply.status = PF_OK;
			r.u.grant_reply.epoch = 1;
			reply(&r);
			pf_msg_free(req);
		}
		for (int i = 0;
		     i < 5000 && !__atomic_load_n(&resumed, __ATOMIC_ACQUIRE);
		     i++)
			usleep(1000);
		err = ing_billing_admit(bill, t, &w);
	}
	ing_bill_wait_fini(bill, &w);
	return err == PF_OK;
}

static void
end_request(const ing_bill_ticket *t)
{
	pf_relay_end e;

	memset(&e, 0, sizeof(e));
	memcpy(e.id, t->id, PF_ID_LEN);
	e.reason = PF_END_DONE;
	e.channel_id = 1;
	e.usage.prompt = 10;
	e.usage.completion = 20;
	ing_billing_end_cb(bill, &e);
}

static uint64_t
syncs(void)
{
	ing_billing_stats st;

	ing_billing_get_stats(bill, &st);
	return st.syncs;
}

static uint64_t
pending(void)
{
	ing_billing_stats st;

	ing_billing_get_stats(bill, &st);
	return st.pending;
}

typedef struct find_ctx {
	const pf_msg *m;
	uint32_t found;
} find_ctx;

static pf_err
find_cb(void *arg, const pf_reclog_pos *pos, int64_t ts_ms, const uint8_t *rec,
    size_t len)
{
	find_ctx *fc = arg;
	pf_msg *m = NULL;

	(void)pos;
	(void)ts_ms;
	if (pf_msg_decode(rec, len, &m) == PF_OK && m->kind == PF_MSG_USAGE) {
		for (uint32_t i = 0; i < n_events(fc->m); i++)
			if (memcmp(event_at(fc->m, i)->event_id,
			        m->u.usage.event_id, PF_ID_LEN)
			    == 0)
				fc->found++;
	}
	pf_msg_free(m);
	return PF_OK;
}

/* in_spool counts the events of m found in the spool's files. */
static uint32_t
in_spool(const pf_msg *m)
{
	find_ctx fc = { .m = m };
	uint64_t *seqs = NULL;
	size_t n = 0;

	if (pf_reclog_list(cfg.spool_dir, "spool", &seqs, &n) != PF_OK)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char path[PF_CONFIG_STR + 64];
		if (pf_reclog_segment_path(
		        cfg.spool_dir, "spool", seqs[i], path, sizeof(path))
		    == PF_OK)
			if (pf_reclog_read_file(
			        path, seqs[i], 0, find_cb, &fc, NULL)
			    != PF_OK)
				fc.found = 0; /* a damaged spool: fail */
	}
	free(seqs);
	return fc.found;
}

/* send_requests admits n requests (at most 3), ends them and returns
 * the usage message the fake accountant got for them (NULL: none came);
 * *admitted says how many were admitted. */
static pf_msg *
send_requests(int n, int *admitted)
{
	ing_bill_ticket t[3];

	*admitted = 0;
	for (int i = 0; i < n; i++)
		*admitted += start_request(&t[i]);
	for (int i = 0; i < n; i++)
		end_request(&t[i]);
	return acct_recv(1, 5000);
}

/* wait_sync waits (bounded: 5 s) for a sync after s0 was counted. */
static void
wait_sync(uint64_t s0)
{
	for (int i = 0; i < 5000 && syncs() == s0; i++)
		usleep(1000);
}

/* ack_all acks m (when it came), frees it, and waits (bounded) until
 * nothing is pending. */
static void
ack_all(pf_msg *m)
{
	if (m != NULL) {
		ack(m);
		pf_msg_free(m);
	}
	for (int i = 0; i < 5000 && pending() > 0; i++)
		usleep(1000);
}

/* Acked events: written before they are sent, never synced. */
static void
test_acked(void)
{
	int admitted;
	uint64_t s0 = syncs();
	pf_msg *m = send_requests(3, &admitted);

	ok(admitted == 3, "acked: 3 requests admitted");
	ok(m != NULL && n_events(m) == 3, "acked: one message, 3 events");
	if (m == NULL)
		return;
	ok(in_spool(m) == 3, "acked: all 3 in the spool file when received");
	ok(syncs() == s0, "acked: sent before any fdatasync");
	ack_all(m);
	ok(pending() == 0, "acked: nothing pending");
	usleep(QUIET_MS * 1000);
	ok(syncs() == s0, "acked: no fdatasync for acked events");
}

/* Unacked events: synced once, then left alone. */
static void
test_unacked(void)
{
	int admitted;
	uint64_t s0 = syncs(), s1;
	pf_msg *m = send_requests(2, &admitted);

	ok(admitted == 2, "unacked: 2 requests admitted");
	ok(m != NULL && n_events(m) == 2, "unacked: one message, 2 events");
	wait_sync(s0);
	s1 = syncs();
	ok(s1 == s0 + 1, "unacked: one fdatasync");
	usleep(QUIET_MS * 1000);
	ok(syncs() == s1, "unacked: no second one with nothing new");
	ack_all(m);
	ok(pending() == 0, "unacked: acked at last");
}

/* PF_SPOOL_SYNC_AFTER_MS=0: an event is synced without waiting for its
 * ack (the accountant here holds the ack until the sync was seen). */
static void
test_at_once(void)
{
	int admitted;
	uint64_t s0 = syncs();
	pf_msg *m = send_requests(1, &admitted);

	ok(admitted == 1, "at once: request admitted");
	ok(m != NULL && n_events(m) == 1, "at once: one event sent");
	wait_sync(s0);
	ok(syncs() > s0, "at once: synced while unacked");
	ack_all(m);
	ok(pending() == 0, "at once: acked");
}

/* start_billing starts bill on its own spool directory and fake
 * accountant, with sync_after_ms. */
static int
start_billing(uint32_t sync_after_ms, const char *tag, char *dir)
{
	char errbuf[256];

	pf_config_defaults(&cfg);
	cfg.spool_sync_after_ms = sync_after_ms;
	if (mkdtemp(dir) == NULL)
		return 0;
	snprintf(cfg.spool_dir, sizeof(cfg.spool_dir), "%s", dir);
	snprintf(cfg.accountant_url, sizeof(cfg.accountant_url),
	    "inproc://pf-test-billsync-%s", tag);
	snprintf(cfg.accountant_pub_url, sizeof(cfg.accountant_pub_url),
	    "inproc://pf-test-billsync-pub-%s", tag);
	if (nng_rep0_open(&rep) != 0
	    || nng_listen(rep, cfg.accountant_url, NULL, 0) != 0)
		return 0;
	nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 20);
	if (nng_pub0_open(&pub) != 0
	    || nng_listen(pub, cfg.accountant_pub_url, NULL, 0) != 0)
		return 0;
	return ing_billing_start(&cfg, &bill, errbuf, sizeof(errbuf)) == PF_OK;
}

static void
stop_billing(const char *dir)
{
	char cmd[128];

	ing_billing_stop(bill);
	nng_close(rep);
	nng_close(pub);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		ok(0, "spool directory removed");
}

int
main(void)
{
	char dir_a[] = "/tmp/pf-test-billsync-XXXXXX";
	char dir_b[] = "/tmp/pf-test-billsync-XXXXXX";
	char dir_c[] = "/tmp/pf-test-billsync-XXXXXX";

	ok(start_billing(60000, "a", dir_a),
	    "billing started (sync after 60 s)");
	test_acked();
	stop_billing(dir_a);
	ok(start_billing(100, "b", dir_b),
	    "billing started (sync after 100 ms, the default)");
	test_unacked();
	stop_billing(dir_b);
	ok(start_billing(0, "c", dir_c), "billing started (sync at once)");
	test_at_once();
	stop_billing(dir_c);
	return tap_done();
}
