/*
 * acct_client.c -- pf-acct-client: a test tool speaking the accountant's
 * protocol (Python's stdlib cannot speak NNG).
 *
 *   pf-acct-client [--concurrency N] [--spool DIR] URL < requests.jsonl
 *   pf-acct-client --no-send --spool DIR < requests.jsonl
 *   pf-acct-client --sub URL --count N [--timeout-ms MS]
 *
 * Each stdin line is one JSON request:
 *   {"kind":"usage","id":"<32 hex>","user":1,"token":2,"channel":3,
 *    "model":"m","prompt":10,"completion":5,"cached":0,"cost":100,
 *    "reason":0,"stream":1,"started_ms":0,"ended_ms":0,"estimated":0}
 *   {"kind":"payment","event_id":"topup:T1","user":1,"quota":1000,
 *    "money":100,"provider":"epay","trade_no":"T1"}
 *   {"kind":"grant","user":1,"token":2,"amount":500}
 *   {"kind":"release","user":1,"token":2,"amount":500}
 *   {"kind":"batch","usages":[{usage fields}, ...]}
 * and gets one stdout line, in input order:
 *   "ack <id>", "rejected <id> <reason>", "retry", "grant <granted>
 *   <status>", "released", "batch|<entry>|<entry>..." or "error <what>".
 * With --spool DIR the usage/payment messages are also appended to a
 * record log in DIR (prefix "spool"), as an ingress spool would.
 * --sub prints "balance <user> <token> <value>" per published notice.
 * --give-up answers "error skipped" for every request after the first
 * failure (a dead accountant).  --timeout-ms bounds each request (default 30000) or the wait for
 * notices (default 10000).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/ids.h"
#include "common/limits.h"
#include "common/msg.h"
#include "common/reclog.h"

#define LINE_MAX_LEN 65536

struct req {
	pf_buf enc;
	char out[8192];
};

struct shared {
	nng_socket sock;
	long timeout_ms;
	int give_up; /* --give-up: stop after the first failure */
	atomic_int failed;
	struct req *reqs;
	size_t n;
	atomic_size_t next;
};

static int64_t
jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static pf_bytes
jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	pf_bytes b = { (const uint8_t *)"", 0 };

	if (json_is_string(v)) {
		b.ptr = (const uint8_t *)json_string_value(v);
		b.len = json_string_length(v);
	}
	return b;
}

static pf_usage batch_usages[PF_USAGE_BATCH_MAX];

static int
build_usage(json_t *o, pf_usage *u)
{
	pf_bytes id = jstr(o, "id");

	memset(u, 0, sizeof(*u));
	if (pf_hex_decode((const char *)id.ptr, id.len, u->event_id, PF_ID_LEN)
	    != PF_OK)
		return -1;
	u->user_id = jint(o, "user");
	u->token_id = jint(o, "token");
	u->channel_id = jint(o, "channel");
	u->model = jstr(o, "model");
	u->tokens.prompt = jint(o, "prompt");
	u->tokens.completion = jint(o, "completion");
	u->tokens.cached = jint(o, "cached");
	u->tokens.estimated = (uint8_t)jint(o, "estimated");
	u->cost = jint(o, "cost");
	u->price_input = jint(o, "price_input");
	u->price_output = jint(o, "price_output");
	u->group_ratio_ppm = 1000000;
	u->started_ms = jint(o, "started_ms");
	u->ended_ms = jint(o, "ended_ms");
	u->reason = (int32_t)jint(o, "reason");
	u->stream = (uint8_t)jint(o, "stream");
	return 0;
}

static int
build(json_t *o, pf_msg *m)
{
	const char *kind = json_string_value(json_object_get(o, "kind"));

	memset(m, 0, sizeof(*m));
	if (kind == NULL)
		return -1;
	if (strcmp(kind, "usage") == 0) {
		m->kind = PF_MSG_USAGE;
		return build_usage(o, &m->u.usage);
	}
	if (strcmp(kind, "batch") == 0) {
		json_t *arr = json_object_get(o, "usages");
		size_t n = json_array_size(arr);

		if (n > PF_USAGE_BATCH_MAX)
			return -1;
		m->kind = PF_MSG_USAGE_BATCH;
		for (size_t i = 0; i < n; i++) {
			if (build_usage(
			        json_array_get(arr, i), &batch_usages[i])
			    != 0)
				return -1;
		}
		m->u.usage_batch.n_usages = (uint32_t)n;
		m->u.usage_batch.usages = n > 0 ? batch_usages : NULL;
		return 0;
	}
	if (strcmp(kind, "payment") == 0) {
		pf_payment *p = &m->u.payment;

		m->kind = PF_MSG_PAYMENT;
		p->event_id = jstr(o, "event_id");
		p->user_id = jint(o, "user");
		p->quota = jint(o, "quota");
		p->money = jint(o, "money");
		p->provider = jstr(o, "provider");
		p->trade_no = jstr(o, "trade_no");
		return 0;
	}
	if (strcmp(kind, "grant") == 0) {
		m->kind = PF_MSG_GRANT_REQUEST;
		m->u.grant_request.corr = 7;
		m->u.grant_request.user_id = jint(o, "user");
		m->u.grant_request.token_id = jint(o, "token");
		m->u.grant_request.amount = jint(o, "amount");
		return 0;
	}
	if (strcmp(kind, "release") == 0) {
		m->kind = PF_MSG_GRANT_RELEASE;
		m->u.grant_release.user_id = jint(o, "user");
		m->u.grant_release.token_id = jint(o, "token");
		m->u.grant_release.amount = jint(o, "amount");
		return 0;
	}
	return -1;
}

static void
describe(const pf_msg *sent, const pf_msg *r, char *out, size_t outlen)
{
	if (r->kind == PF_MSG_GRANT_REPLY) {
		snprintf(out, outlen, "grant %lld %d",
		    (long long)r->u.grant_reply.granted,
		    r->u.grant_reply.status);
	} else if (r->kind == PF_MSG_ACK && sent->kind == PF_MSG_USAGE_BATCH) {
		size_t n = (size_t)snprintf(out, outlen, "batch");

		for (uint32_t i = 0; i < r->u.ack.n_ids && n < outlen; i++)
			n += (size_t)snprintf(out + n, outlen - n, "|%s",
			    (const char *)r->u.ack.ids[i].ptr);
	} else if (r->kind == PF_MSG_ACK && r->u.ack.n_ids == 0) {
		snprintf(out, outlen,
		    sent->kind == PF_MSG_GRANT_RELEASE ? "released" : "retry");
	} else if (r->kind == PF_MSG_ACK && r->u.ack.n_ids == 1) {
		snprintf(
		    out, outlen, "ack %s", (const char *)r->u.ack.ids[0].ptr);
	} else if (r->kind == PF_MSG_ACK) {
		snprintf(out, outlen, "rejected %s %s",
		    (const char *)r->u.ack.ids[0].ptr,
		    (const char *)r->u.ack.ids[1].ptr);
	} else {
		snprintf(out, outlen, "error unexpected reply");
	}
}

static void *
sender(void *arg)
{
	struct shared *s = arg;
	nng_ctx ctx;
	nng_aio *aio;

	if (nng_ctx_open(&ctx, s->sock) != 0
	    || nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NULL;
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	for (;;) {
		size_t i = atomic_fetch_add(&s->next, 1);
		struct req *q;
		nng_msg *m;
		pf_msg *r = NULL, *sent = NULL;

		if (i >= s->n)
			break;
		q = &s->reqs[i];
		if (s->give_up && atomic_load(&s->failed)) {
			snprintf(q->out, sizeof(q->out), "error skipped");
			continue;
		}
		if (q->enc.len == 0)
			continue; /* out already says why */
		if (nng_msg_alloc(&m, q->enc.len) != 0) {
			snprintf(q->out, sizeof(q->out), "error alloc");
			continue;
		}
		memcpy(nng_msg_body(m), q->enc.data, q->enc.len);
		nng_aio_set_msg(aio, m);
		nng_aio_set_timeout(aio, s->timeout_ms);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			nng_msg_free(m);
			snprintf(q->out, sizeof(q->out), "error send %s",
			    nng_strerror(nng_aio_result(aio)));
			atomic_store(&s->failed, 1);
			continue;
		}
		nng_aio_set_timeout(aio, s->timeout_ms);
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			snprintf(q->out, sizeof(q->out), "error recv %s",
			    nng_strerror(nng_aio_result(aio)));
			atomic_store(&s->failed, 1);
			continue;
		}
		m = nng_aio_get_msg(aio);
		if (pf_msg_decode(nng_msg_body(m), nng_msg_len(m), &r) != PF_OK
		    || pf_msg_decode(q->enc.data, q->enc.len, &sent) != PF_OK) {
			snprintf(q->out, sizeof(q->out), "error decode");
		} else {
			describe(sent, r, q->out, sizeof(q->out));
		}
		pf_msg_free(r);
		pf_msg_free(sent);
		nng_msg_free(m);
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return NULL;
}

static int
run_sub(const char *url, long count, long timeout_ms)
{
	nng_socket s;
	long got = 0;

	if (nng_sub0_open(&s) != 0
	    || nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0) != 0
	    || nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms) != 0
	    || nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		fprintf(stderr, "pf-acct-client: cannot subscribe\n");
		return 1;
	}
	printf("subscribed\n");
	fflush(stdout);
	while (got < count) {
		char *buf = NULL;
		size_t len = 0;
		pf_msg *m = NULL;

		if (nng_recv(s, &buf, &len, NNG_FLAG_ALLOC) != 0)
			break;
		if (pf_msg_decode(buf, len, &m) == PF_OK
		    && m->kind == PF_MSG_BALANCE) {
			printf("balance %lld %lld %lld\n",
			    (long long)m->u.balance.user_id,
			    (long long)m->u.balance.token_id,
			    (long long)m->u.balance.quota);
			fflush(stdout);
			got++;
		}
		pf_msg_free(m);
		nng_free(buf, len);
	}
	nng_close(s);
	return got == count ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *spool = NULL, *sub = NULL;
	int no_send = 0, give_up = 0;
	long conc = 1, count = 1, timeout_ms = -1;
	struct shared s;
	pf_reclog *log = NULL;
	pthread_t th[256];
	char *line;
	size_t cap = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
			conc = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--spool") == 0 && i + 1 < argc)
			spool = argv[++i];
		else if (strcmp(argv[i], "--give-up") == 0)
			give_up = 1;
		else if (strcmp(argv[i], "--no-send") == 0)
			no_send = 1;
		else if (strcmp(argv[i], "--sub") == 0 && i + 1 < argc)
			sub = argv[++i];
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
			timeout_ms = strtol(argv[++i], NULL, 10);
		else
			url = argv[i];
	}
	if (sub != NULL)
		return run_sub(sub, count, timeout_ms < 0 ? 10000 : timeout_ms);
	if ((url == NULL && !no_send) || conc < 1 || conc > 256) {
		fprintf(stderr,
		    "usage: pf-acct-client [--concurrency N] [--spool DIR] "
		    "URL < requests.jsonl\n");
		return 2;
	}
	if (spool != NULL && pf_reclog_open(spool, "spool", 0, &log) != PF_OK) {
		fprintf(
		    stderr, "pf-acct-client: cannot open spool %s\n", spool);
		return 1;
	}
	memset(&s, 0, sizeof(s));
	s.timeout_ms = timeout_ms < 0 ? 30000 : timeout_ms;
	s.give_up = give_up;
	atomic_init(&s.failed, 0);
	line = malloc(LINE_MAX_LEN);
	while (line != NULL && fgets(line, LINE_MAX_LEN, stdin) != NULL) {
		json_error_t jerr;
		json_t *o;
		struct req *q;
		pf_msg m;

		if (line[0] == '\n')
			continue;
		if (s.n == cap) {
			cap = cap ? cap * 2 : 64;
			s.reqs = realloc(s.reqs, cap * sizeof(*s.reqs));
			if (s.reqs == NULL)
				return 1;
		}
		q = &s.reqs[s.n++];
		memset(q, 0, sizeof(*q));
		pf_buf_init(&q->enc);
		o = json_loads(line, 0, &jerr);
		if (o == NULL || build(o, &m) != 0
		    || pf_msg_encode(&m, &q->enc) != PF_OK) {
			snprintf(q->out, sizeof(q->out), "error bad request");
			q->enc.len = 0;
		} else if (log != NULL
		    && (m.kind == PF_MSG_USAGE || m.kind == PF_MSG_PAYMENT)) {
			if (pf_reclog_append(log, q->enc.data, q->enc.len,
			        (int64_t)time(NULL) * 1000, NULL)
			    != PF_OK)
				snprintf(q->out, sizeof(q->out), "error spool");
		}
		json_decref(o);
	}
	free(line);
	if (log != NULL) {
		if (pf_reclog_sync(log) != PF_OK)
			fprintf(stderr, "pf-acct-client: spool sync failed\n");
		pf_reclog_close(log);
	}
	if (no_send) {
		for (size_t i = 0; i < s.n; i++)
			pf_buf_fini(&s.reqs[i].enc);
		free(s.reqs);
		return 0;
	}
	if (nng_req0_open(&s.sock) != 0
	    || nng_socket_set_ms(
	           s.sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)
	        != 0
	    || nng_dial(s.sock, url, NULL, 0) != 0) {
		fprintf(stderr, "pf-acct-client: cannot dial %s\n", url);
		nng_close(s.sock); /* also after a failed open: harmless */
		for (size_t i = 0; i < s.n; i++)
			pf_buf_fini(&s.reqs[i].enc);
		free(s.reqs);
		return 1;
	}
	atomic_init(&s.next, 0);
	for (long t = 0; t < conc; t++)
		pthread_create(&th[t], NULL, sender, &s);
	for (long t = 0; t < conc; t++)
		pthread_join(th[t], NULL);
	for (size_t i = 0; i < s.n; i++) {
		printf("%s\n", s.reqs[i].out);
		pf_buf_fini(&s.reqs[i].enc);
	}
	free(s.reqs);
	nng_close(s.sock);
	return 0;
}
