/*
 * test_relay.c -- the worker driven end to end without the ingress.
 *
 * The test plays the ingress: it sends relay.request over inproc:// with
 * the codec and reads relay.head/data/end from its reply socket.
 * Upstreams: the mock model (our product, started in-process) for normal
 * answers, and a small scripted HTTP server in this file for the faults
 * (status codes, a hang, a connection dropped mid-stream, an echo of what
 * the worker sent).  A closed port stands for an unreachable channel.
 * No services; no timing assertions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/supplemental/util/platform.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench/mock.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/msg.h"
#include "tests/tap.h"
#include "workers/worker.h"

#define WORKER_URL "inproc://test-relay-worker"
#define REPLY_URL "inproc://test-relay-reply"
#define KEY "sk-test-secret-key-0123456789"

/* ---- scripted upstream ------------------------------------------------ */

typedef struct fake {
	int fd;
	unsigned port;
	pthread_t tid;
} fake;

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void
respond(int fd, int status, const char *ctype, const char *body)
{
	char head[512];
	int n = snprintf(head, sizeof head,
	    "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n",
	    status, ctype, strlen(body));

	write_all(fd, head, (size_t)n);
	write_all(fd, body, strlen(body));
}

/* /barrier/: every request waits until BARRIER_N of them are in at the
 * same time, then all answer a one-event stream; one that waits in vain
 * (BARRIER_WAIT_S) answers 503.  An upstream like this (a long stream
 * answered only once more requests have arrived) needs the worker to run
 * transfers to one host side by side, not one after another. */
#define BARRIER_N 4
#define BARRIER_WAIT_S 5
static pthread_mutex_t barrier_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t barrier_cv = PTHREAD_COND_INITIALIZER;
static int barrier_in, barrier_gen;

/* barrier_wait returns 1 when BARRIER_N requests were in at once. */
static int
barrier_wait(void)
{
	struct timespec until;
	int met = 0, gen;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += BARRIER_WAIT_S;
	pthread_mutex_lock(&barrier_mu);
	gen = barrier_gen;
	if (++barrier_in == BARRIER_N) {
		barrier_in = 0;
		barrier_gen++;
		pthread_cond_broadcast(&barrier_cv);
		met = 1;
	}
	while (!met && gen == barrier_gen) {
		if (pthread_cond_timedwait(&barrier_cv, &barrier_mu, &until)
		    != 0)
			break;
	}
	if (!met) {
		met = gen != barrier_gen;
		if (!met)
			barrier_in--;
	}
	pthread_mutex_unlock(&barrier_mu);
	return met;
}

/* a Content-Type no upstream of ours sends: passed on byte for byte */
#define ODD_TYPE "application/x-ndjson; profile=\"urn:example:odd\""

/* The fake upstream's fixed answers: path prefix, status, type, body. */
static const struct {
	const char *prefix;
	int status;
	const char *ctype, *body;
} fixed_answers[] = {
	{ "POST /s500/", 500, "application/json",
	    "{\"error\":{\"message\":\"boom\"}}" },
	{ "POST /s429/", 429, "application/json",
	    "{\"error\":{\"message\":\"slow down\"}}" },
	{ "POST /s400/", 400, "application/json",
	    "{\"error\":{\"message\":\"bad key " KEY "\"}}" },
	{ "POST /html/", 404, "text/html", "<html>not here</html>" },
	{ "POST /s401/", 401, "application/json",
	    "{\"error\":{\"message\":\"bad key\"}}" },
	{ "POST /nousage/", 200, "application/json",
	    "{\"choices\":[{\"message\":{\"content\":"
	    "\"Hello, world\"}}]}" },
	{ "POST /oddtype/", 200, ODD_TYPE,
	    "{\"choices\":[{\"message\":{\"content\":\"odd\"}}]}" },
};

/* fixed_answer answers from fixed_answers when req's path is there. */
static int
fixed_answer(int fd, const char *req)
{
	for (size_t i = 0; i < sizeof fixed_answers / sizeof fixed_answers[0];
	     i++) {
		const char *pre = fixed_answers[i].prefix;

		if (strncmp(req, pre, strlen(pre)) == 0) {
			respond(fd, fixed_answers[i].status,
			    fixed_answers[i].ctype, fixed_answers[i].body);
			return 1;
		}
	}
	return 0;
}

/* Serve one connection; the path prefix picks the behaviour. */
static void *
conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[65536], out[70000];
	size_t len = 0;
	char *end = NULL, *body;
	long clen = 0;

	while (len < sizeof req - 1) {
		ssize_t r = read(fd, req + len, sizeof req - 1 - len);

		if (r <= 0)
			goto done;
		len += (size_t)r;
		req[len] = 0;
		end = strstr(req, "\r\n\r\n");
		if (end != NULL) {
			char *cl = strcasestr(req, "content-length:");

			if (cl != NULL && cl < end)
				clen = strtol(cl + 15, NULL, 10);
			if ((size_t)(end + 4 - req) + (size_t)clen <= len)
				break;
		}
	}
	if (end == NULL)
		goto done;
	body = end + 4;
	if (strncmp(req, "POST http://", 12) == 0) {
		/* absolute URI: we are being used as an HTTP proxy */
		respond(fd, 200, "application/json", "{\"proxied\":1}");
	} else if (fixed_answer(fd, req)) {
		/* answered */
	} else if (strncmp(req, "POST /s404url/", 14) == 0) {
		/* an error naming the upstream's own (internal) address */
		const char *host = strcasestr(req, "\r\nHost: ");
		int hl = host != NULL ? (int)strcspn(host + 8, "\r\n") : 0;

		snprintf(out, sizeof out,
		    "{\"error\":{\"message\":\"no route to "
		    "http://%.*s/s404url/v1/chat/completions on %.*s\"}}",
		    hl, host != NULL ? host + 8 : "", hl,
		    host != NULL ? host + 8 : "");
		respond(fd, 404, "application/json", out);
	} else if (strncmp(req, "POST /hang/", 11) == 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)poll(&p, 1, 8000);
	} else if (strncmp(req, "POST /drop/", 11) == 0) {
		/* chunked, and the connection closes inside a chunk */
		const char *e1 = "data: {\"choices\":[{\"delta\":{"
		                 "\"content\":\"Hello, \"}}]}\n\n";
		const char *e2 = "data: {\"choices\":[{\"delta\":{"
		                 "\"content\":\"world\"}}]}\n\ndata: {\"cho";

		snprintf(out, sizeof out,
		    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n%zx\r\n%s",
		    strlen(e1), e1, strlen(e2) + 100, e2);
		write_all(fd, out, strlen(out));
	} else if (strncmp(req, "POST /stall/", 12) == 0) {
		/* one event, then silence with the connection open */
		const char *h = "HTTP/1.1 200 OK\r\nContent-Type: "
		                "text/event-stream\r\n\r\n"
		                "data: {\"choices\":[{\"delta\":{\"content\":"
		                "\"abcd\"}}]}\n\n";
		struct pollfd p = { .fd = fd, .events = POLLIN };

		write_all(fd, h, strlen(h));
		(void)poll(&p, 1, 8000);
	} else if (strncmp(req, "POST /echo/", 11) == 0) {
		/* {"auth":0|1,"body":<what we got>} */
		int auth = strstr(req, "\r\nAuthorization: Bearer " KEY "\r\n")
		    != NULL;
		/* 1 = the client headers a test sent arrived as they should */
		int hdr = strstr(req, "\r\nx-mock-test: v1\r\n") != NULL
		    && strstr(req, "\r\nopenai-beta: assistants=v2\r\n") != NULL
		    && strstr(req, "anthropic-beta") == NULL
		    && strstr(req, "evil") == NULL
		    && strstr(req, "x-forwarded-for") == NULL;

		snprintf(out, sizeof out,
		    "{\"auth\":%d,\"hdr\":%d,\"body\":%.*s}", auth, hdr,
		    (int)clen, body);
		respond(fd, 200, "application/json", out);
	} else if (strncmp(req, "POST /barrier/", 14) == 0) {
		const char *h = "HTTP/1.1 200 OK\r\nContent-Type: "
		                "text/event-stream\r\nConnection: close\r\n\r\n"
		                "data: {\"choices\":[{\"delta\":{\"content\":"
		                "\"together\"}}]}\n\ndata: [DONE]\n\n";

		if (barrier_wait())
			write_all(fd, h, strlen(h));
		else
			respond(fd, 503, "application/json",
			    "{\"error\":{\"message\":\"alone\"}}");
	} else {
		respond(fd, 404, "text/plain", "no");
	}
done:
	close(fd);
	return NULL;
}

static void *
fake_main(void *arg)
{
	fake *f = arg;

	for (;;) {
		pthread_t t;
		int c = accept(f->fd, NULL, NULL);

		if (c < 0)
			return NULL;
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c)
		    != 0) {
			close(c);
			continue;
		}
		pthread_detach(t);
	}
}

static int
listen_any(unsigned *port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0
	    || getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* A port with nothing listening: bound, never listened, then closed. */
static unsigned
closed_port(void)
{
	unsigned port = 0;
	int fd = listen_any(&port);

	close(fd);
	return port;
}

/* ---- the ingress side ----------------------------------------------- */

typedef struct result {
	int got_head, got_end;
	int32_t status;
	char ctype[128];
	int64_t head_channel;
	uint32_t attempts;
	int n_data;
	int seq_ok;       /* data seq 0,1,2,... */
	int one_event_ok; /* (streams) each data is exactly one event */
	char data[65536];
	size_t data_len;
	pf_relay_end end;
	char error[256];
	char ctl[128];                           /* relay.head ctl_addr */
	pf_attempt att[PF_RELAY_MAX_CANDIDATES]; /* relay.end attempt list */
	uint32_t n_att;
} result;

typedef struct cand {
	const char *base;
	int64_t channel;
	uint32_t first_byte_ms;
	const char *model;
	const char *proxy;
	int32_t type; /* 0 = openai */
} cand;

static nng_socket to_worker, from_worker;
static const char *reply_url = REPLY_URL;
static uint32_t req_credit; /* relay.request credit window (0 = none) */
static const pf_header *req_headers; /* client headers to carry */
static uint32_t req_n_headers;

/* send_msg encodes m and sends it on s; 0 or -1. */
static int
send_msg(nng_socket s, const pf_msg *m)
{
	pf_buf b;
	nng_msg *nm;
	int rv = -1;

	pf_buf_init(&b);
	if (pf_msg_encode(m, &b) == PF_OK && nng_msg_alloc(&nm, 0) == 0) {
		if (nng_msg_append(nm, b.data, b.len) == 0
		    && nng_sendmsg(s, nm, 0) == 0)
			rv = 0;
		else
			nng_msg_free(nm);
	}
	pf_buf_fini(&b);
	return rv;
}

/* recv_msg receives and decodes one reply into *ret (pf_msg_free it):
 * 0, RECV_NONE when nothing came (the receive timeout) or RECV_BAD when
 * it does not decode. */
enum { RECV_NONE = -1, RECV_BAD = -2 };

static int
recv_msg(pf_msg **ret)
{
	nng_msg *nm;
	pf_err err;

	if (nng_recvmsg(from_worker, &nm, 0) != 0)
		return RECV_NONE;
	err = pf_msg_decode(nng_msg_body(nm), nng_msg_len(nm), ret);
	nng_msg_free(nm);
	return err == PF_OK ? 0 : RECV_BAD;
}

/* Send one relay.request; its id goes to id. */
static int
send_req(const char *path, int32_t api, const char *body, int stream,
    int client_usage, const cand *cs, int n, uint8_t id[PF_ID_LEN])
{
	pf_candidate c[8];
	pf_msg m;

	memset(&m, 0, sizeof m);
	memset(c, 0, sizeof c);
	if (pf_id_new(id) != PF_OK)
		return -1;
	for (int i = 0; i < n; i++) {
		c[i].channel_id = cs[i].channel;
		c[i].type = cs[i].type ? cs[i].type : PF_API_OPENAI;
		c[i].base_url.ptr = (const uint8_t *)cs[i].base;
		c[i].base_url.len = strlen(cs[i].base);
		c[i].key.ptr = (const uint8_t *)KEY;
		c[i].key.len = strlen(KEY);
		c[i].first_byte_timeout_ms = cs[i].first_byte_ms;
		c[i].proxy.ptr
		    = (const uint8_t *)(cs[i].proxy ? cs[i].proxy : "");
		c[i].proxy.len = cs[i].proxy ? strlen(cs[i].proxy) : 0;
		c[i].upstream_model.ptr
		    = (const uint8_t *)(cs[i].model ? cs[i].model : "");
		c[i].upstream_model.len = cs[i].model ? strlen(cs[i].model) : 0;
	}
	m.kind = PF_MSG_RELAY_REQUEST;
	memcpy(m.u.relay_request.id, id, PF_ID_LEN);
	m.u.relay_request.reply_addr.ptr = (const uint8_t *)reply_url;
	m.u.relay_request.reply_addr.len = strlen(reply_url);
	m.u.relay_request.method.ptr = (const uint8_t *)"POST";
	m.u.relay_request.method.len = 4;
	m.u.relay_request.path.ptr = (const uint8_t *)path;
	m.u.relay_request.path.len = strlen(path);
	m.u.relay_request.stream = (uint8_t)stream;
	m.u.relay_request.client_usage = (uint8_t)client_usage;
	m.u.relay_request.client_api = api;
	m.u.relay_request.body.ptr = (const uint8_t *)body;
	m.u.relay_request.body.len = strlen(body);
	m.u.relay_request.n_candidates = (uint32_t)n;
	m.u.relay_request.candidates = c;
	m.u.relay_request.credit = req_credit;
	m.u.relay_request.headers = (pf_header *)req_headers;
	m.u.relay_request.n_headers = req_n_headers;
	return send_msg(to_worker, &m);
}

static int
run_api(const char *path, int32_t api, const char *body, int stream,
    int client_usage, const cand *cs, int n, result *r)
{
	uint8_t id[PF_ID_LEN];

	memset(r, 0, sizeof *r);
	r->seq_ok = 1;
	r->one_event_ok = 1;
	if (send_req(path, api, body, stream, client_usage, cs, n, id) != 0)
		return -1;
	while (!r->got_end) {
		pf_msg *pm;

		/* a receive timeout fails the test */
		if (recv_msg(&pm) != 0)
			return -1;
		switch (pm->kind) {
		case PF_MSG_RELAY_HEAD:
			r->got_head++;
			r->status = pm->u.relay_head.status;
			snprintf(r->ctype, sizeof r->ctype, "%.*s",
			    (int)pm->u.relay_head.content_type.len,
			    (const char *)pm->u.relay_head.content_type.ptr);
			r->head_channel = pm->u.relay_head.channel_id;
			r->attempts = pm->u.relay_head.attempts;
			snprintf(r->ctl, sizeof r->ctl, "%.*s",
			    (int)pm->u.relay_head.ctl_addr.len,
			    (const char *)pm->u.relay_head.ctl_addr.ptr);
			break;
		case PF_MSG_RELAY_DATA: {
			const pf_bytes *d = &pm->u.relay_data.data;

			if (pm->u.relay_data.seq != (uint32_t)r->n_data
			    || !r->got_head)
				r->seq_ok = 0;
			r->n_data++;
			if (stream
			    && (d->len < 2 || d->ptr[d->len - 1] != '\n'
			        || d->ptr[d->len - 2] != '\n'
			        || memmem(d->ptr, d->len - 2, "\n\n", 2)
			            != NULL))
				r->one_event_ok = 0;
			if (r->data_len + d->len < sizeof r->data) {
				memcpy(r->data + r->data_len, d->ptr, d->len);
				r->data_len += d->len;
				r->data[r->data_len] = 0;
			}
			break;
		}
		case PF_MSG_RELAY_END:
			r->got_end = 1;
			r->end = pm->u.relay_end;
			snprintf(r->error, sizeof r->error, "%.*s",
			    (int)pm->u.relay_end.error.len,
			    (const char *)pm->u.relay_end.error.ptr);
			r->end.error.ptr = NULL;
			r->n_att = pm->u.relay_end.n_attempts;
			if (r->n_att > PF_RELAY_MAX_CANDIDATES)
				r->n_att = 0;
			if (r->n_att > 0)
				memcpy(r->att, pm->u.relay_end.attempt_list,
				    r->n_att * sizeof r->att[0]);
			r->end.attempt_list = NULL;
			break;
		default:
			break;
		}
		pf_msg_free(pm);
	}
	return 0;
}

static int
run(const char *body, int stream, int client_usage, const cand *cs, int n,
    result *r)
{
	return run_api("/chat/completions", PF_API_OPENAI, body, stream,
	    client_usage, cs, n, r);
}

static const char *chat_body
    = "{\"model\":\"mock-model\",\"messages\":[{\"role\":\"user\","
      "\"content\":\"hello there\"}]}";
static const char *stream_body
    = "{\"model\":\"mock-model\",\"stream\":true,\"messages\":[{\"role\":"
      "\"user\",\"content\":\"hello there\"}]}";

/*
 * Send n identical stream requests at once, then read every reply:
 * returns how many relays ended DONE with their data in order (seq
 * 0,1,2..., end.seq = count) and *events_each = events of the first.
 * pause_ms: do not read for that long first, so the worker's reply
 * socket fills up and it must hold the upstream back.
 */
static int
run_many(const cand *cs, int n, int pause_ms, uint32_t *events_each)
{
	enum { MAX = 64 };
	uint8_t ids[MAX][PF_ID_LEN];
	uint32_t next[MAX];
	int ended[MAX], good = 0, done = 0;

	if (n > MAX)
		return -1;
	for (int i = 0; i < n; i++) {
		if (send_req("/chat/completions", PF_API_OPENAI, stream_body, 1,
		        0, cs, 1, ids[i])
		    != 0)
			return -1;
		next[i] = 0;
		ended[i] = 0;
	}
	if (pause_ms > 0)
		nng_msleep((nng_duration)pause_ms);
	*events_each = 0;
	while (done < n) {
		pf_msg *pm;
		const uint8_t *id;
		uint32_t seq;
		int k;

		if (recv_msg(&pm) != 0)
			return -1;
		id = pm->kind == PF_MSG_RELAY_DATA ? pm->u.relay_data.id
		    : pm->kind == PF_MSG_RELAY_END ? pm->u.relay_end.id
		                                   : pm->u.relay_head.id;
		for (k = 0; k < n; k++)
			if (memcmp(ids[k], id, PF_ID_LEN) == 0)
				break;
		if (k == n) {
			pf_msg_free(pm);
			return -1;
		}
		if (pm->kind == PF_MSG_RELAY_DATA) {
			seq = pm->u.relay_data.seq;
			if (seq != next[k])
				ended[k] = -1; /* out of order: never good */
			next[k] = seq + 1;
		} else if (pm->kind == PF_MSG_RELAY_END) {
			if (ended[k] == 0 && pm->u.relay_end.seq == next[k]
			    && pm->u.relay_end.reason == PF_END_DONE)
				good++;
			if (k == 0)
				*events_each = next[k];
			ended[k] = 1;
			done++;
		}
		pf_msg_free(pm);
	}
	return good;
}

static int
send_cancel_to(nng_socket s, const uint8_t id[PF_ID_LEN])
{
	pf_msg m;

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_CANCEL;
	memcpy(m.u.relay_cancel.id, id, PF_ID_LEN);
	return send_msg(s, &m);
}

/* Start a stream, read `before` data messages, cancel it, read to the
 * end.  Returns the end reason (-1 on error); *data = data count.
 * targeted: send the cancel to the control address from relay.head (else
 * through the shared intake). */
static int
run_cancel(const cand *cs, int before, int targeted, uint32_t *data)
{
	uint8_t id[PF_ID_LEN];
	int reason = -1;
	char ctl[128] = "";
	nng_socket cs_sock;
	int ctl_open = 0;

	*data = 0;
	if (send_req("/chat/completions", PF_API_OPENAI, stream_body, 1, 0, cs,
	        1, id)
	    != 0)
		return -1;
	for (;;) {
		pf_msg *pm;

		if (recv_msg(&pm) != 0)
			return -1;
		if (pm->kind == PF_MSG_RELAY_HEAD)
			snprintf(ctl, sizeof ctl, "%s",
			    (const char *)pm->u.relay_head.ctl_addr.ptr);
		if (pm->kind == PF_MSG_RELAY_DATA
		    && ++*data == (uint32_t)before) {
			int rv;

			if (targeted) {
				/* only the control socket: the shared intake
				 * never sees this cancel */
				ctl_open = ctl[0] != 0
				    && nng_push0_open(&cs_sock) == 0;
				rv = ctl_open
				        && nng_dial(cs_sock, ctl, NULL, 0) == 0
				    ? send_cancel_to(cs_sock, id)
				    : -1;
			} else {
				rv = send_cancel_to(to_worker, id);
			}
			if (rv != 0) {
				pf_msg_free(pm);
				reason = -1;
				break;
			}
		}
		if (pm->kind == PF_MSG_RELAY_END) {
			reason = pm->u.relay_end.reason;
			pf_msg_free(pm);
			break;
		}
		pf_msg_free(pm);
	}
	if (ctl_open)
		nng_close(cs_sock);
	return reason;
}

/* ---- flow control ----------------------------------------------------- */

static size_t
stats_cb(char *p, size_t size, size_t n, void *arg)
{
	char *buf = arg;
	size_t have = strlen(buf), len = size * n;

	if (have + len < 8192) {
		memcpy(buf + have, p, len);
		buf[have + len] = 0;
	}
	return len;
}

/* The mock's chunks_sent counter (-1 on error). */
static long
mock_chunks_sent(unsigned port)
{
	char url[64], body[8192] = "";
	CURL *c = curl_easy_init();
	const char *at;
	long n = -1;

	if (c == NULL)
		return -1;
	snprintf(url, sizeof url, "http://127.0.0.1:%u/mock/stats", port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stats_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)body);
	if (curl_easy_perform(c) == CURLE_OK) {
		at = strstr(body, "\"chunks_sent\":");
		if (at != NULL)
			n = strtol(at + 14, NULL, 10);
	}
	curl_easy_cleanup(c);
	return n;
}

static int
send_credit(nng_socket s, const uint8_t id[PF_ID_LEN], uint32_t bytes)
{
	pf_msg m;

	memset(&m, 0, sizeof m);
	m.kind = PF_MSG_RELAY_CREDIT;
	memcpy(m.u.relay_credit.id, id, PF_ID_LEN);
	m.u.relay_credit.bytes = bytes;
	return send_msg(s, &m);
}

typedef struct flow_result {
	size_t stalled_bytes; /* received before the reader stopped granting */
	long chunks_at_stall; /* the mock's chunks_sent then */
	size_t total_bytes;
	uint32_t n_data, content_events;
	int seq_ok, end_ok;
} flow_result;

/*
 * A stream whose reader grants no credit: the worker stops after about
 * one window; then the reader grants every byte it takes (as the ingress
 * does) and reads to the end.
 */
static int
run_flow(const cand *cs, unsigned mock_port, flow_result *fr)
{
	uint8_t id[PF_ID_LEN];
	char ctl[128] = "";
	nng_socket cs_sock;
	int ctl_open = 0, stalled = 0, rv = -1;
	uint32_t owed = 0;

	memset(fr, 0, sizeof *fr);
	fr->seq_ok = 1;
	req_credit = PF_STREAM_CREDIT_WINDOW;
	if (send_req("/chat/completions", PF_API_OPENAI, stream_body, 1, 0, cs,
	        1, id)
	    != 0)
		goto out;
	nng_socket_set_ms(from_worker, NNG_OPT_RECVTIMEO, 1500);
	for (;;) {
		pf_msg *pm;
		int got = recv_msg(&pm);

		if (got == RECV_BAD)
			goto out;
		if (got == RECV_NONE) {
			if (stalled || ctl[0] == 0)
				goto out;
			/* nothing more without credit: the worker holds */
			stalled = 1;
			fr->stalled_bytes = fr->total_bytes;
			fr->chunks_at_stall = mock_chunks_sent(mock_port);
			nng_socket_set_ms(
			    from_worker, NNG_OPT_RECVTIMEO, 20000);
			ctl_open = nng_push0_open(&cs_sock) == 0;
			if (!ctl_open || nng_dial(cs_sock, ctl, NULL, 0) != 0
			    || send_credit(cs_sock, id, owed) != 0)
				goto out;
			owed = 0;
			continue;
		}
		if (pm->kind == PF_MSG_RELAY_HEAD)
			snprintf(ctl, sizeof ctl, "%s",
			    (const char *)pm->u.relay_head.ctl_addr.ptr);
		if (pm->kind == PF_MSG_RELAY_DATA) {
			const pf_bytes *d = &pm->u.relay_data.data;

			if (pm->u.relay_data.seq != fr->n_data)
				fr->seq_ok = 0;
			fr->n_data++;
			fr->total_bytes += d->len;
			if (memmem(d->ptr, d->len, "\"content\":\"tok", 14)
			    != NULL)
				fr->content_events++;
			owed += (uint32_t)d->len;
			if (stalled && owed >= PF_STREAM_CREDIT_STEP) {
				if (send_credit(cs_sock, id, owed) != 0) {
					pf_msg_free(pm);
					goto out;
				}
				owed = 0;
			}
		}
		if (pm->kind == PF_MSG_RELAY_END) {
			fr->end_ok = pm->u.relay_end.reason == PF_END_DONE
			    && pm->u.relay_end.seq == fr->n_data;
			pf_msg_free(pm);
			rv = stalled ? 0 : -1;
			break;
		}
		pf_msg_free(pm);
	}
out:
	if (ctl_open)
		nng_close(cs_sock);
	req_credit = 0;
	nng_socket_set_ms(from_worker, NNG_OPT_RECVTIMEO, 20000);
	return rv;
}

static const char *msgs_plain
    = "{\"model\":\"claude-x\",\"max_tokens\":50,\"system\":\"be brief\","
      "\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}";
static const char *msgs_body
    = "{\"model\":\"claude-x\",\"max_tokens\":50,\"stream\":true,"
      "\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}";

int
main(void)
{
	pf_config cfg;
	wrk_worker *w = NULL;
	mock_options mo;
	mock_server *mock = NULL, *big = NULL, *slow = NULL, *huge = NULL;
	flow_result fr;
	uint32_t each = 0;
	fake f;
	char mock_base[64], closed_base[64], s500[64], s429[64], s400[64];
	char hang[64], drop[64], echo[64], nousage[64], proxy_env[64];
	char stall[64], html[64], s401[64], s404url[64], oddtype[64];
	char via_fake[64], big_base[64], slow_base[64], barrier[64];
	char ipc_worker[80], ipc_reply[80];
	result r;
	/* the mock models: normal answers, slow ones, many events and (32 MB:
	 * more than the socket buffers between the mock and the worker can
	 * hold) big ones */
	const struct {
		mock_server **ret;
		uint32_t chunks, chunk_delay_ms, chunk_bytes;
	} mocks[] = {
		{ &mock, 5, 0, 0 },
		{ &slow, 20, 50, 0 },
		{ &big, 3000, 0, 0 },
		{ &huge, 4000, 0, 8192 },
	};

	pf_log_set_level(PF_LOG_ERROR);
	mock_options_defaults(&mo);
	mo.listen = "127.0.0.1:0";
	mo.threads = 1;
	for (size_t i = 0; i < sizeof mocks / sizeof mocks[0]; i++) {
		mo.chunks = mocks[i].chunks;
		mo.chunk_delay_ms = mocks[i].chunk_delay_ms;
		mo.chunk_bytes = mocks[i].chunk_bytes;
		if (mock_server_start(&mo, mocks[i].ret) != PF_OK) {
			printf("Bail out! mock model did not start\n");
			return 1;
		}
	}
	f.fd = listen_any(&f.port);
	if (f.fd < 0 || listen(f.fd, 64) != 0
	    || pthread_create(&f.tid, NULL, fake_main, &f) != 0) {
		printf("Bail out! scripted upstream did not start\n");
		return 1;
	}
	snprintf(mock_base, sizeof mock_base, "http://127.0.0.1:%u/v1/",
	    mock_server_port(mock));
	snprintf(big_base, sizeof big_base, "http://127.0.0.1:%u/v1",
	    mock_server_port(big));
	snprintf(slow_base, sizeof slow_base, "http://127.0.0.1:%u/v1",
	    mock_server_port(slow));
	snprintf(closed_base, sizeof closed_base, "http://127.0.0.1:%u/v1",
	    closed_port());
#define FAKE(buf, what)                                                        \
	snprintf(buf, sizeof buf, "http://127.0.0.1:%u/" what "/v1", f.port)
	FAKE(s500, "s500");
	FAKE(s429, "s429");
	FAKE(s400, "s400");
	FAKE(hang, "hang");
	FAKE(drop, "drop");
	FAKE(echo, "echo");
	FAKE(nousage, "nousage");
	FAKE(stall, "stall");
	FAKE(html, "html");
	FAKE(oddtype, "oddtype");
	FAKE(s401, "s401");
	FAKE(s404url, "s404url");
	FAKE(barrier, "barrier");

	/* Environment proxies must be ignored: point them at nothing. */
	snprintf(
	    proxy_env, sizeof proxy_env, "http://127.0.0.1:%u", closed_port());
	setenv("http_proxy", proxy_env, 1);
	setenv("HTTP_PROXY", proxy_env, 1);
	setenv("all_proxy", proxy_env, 1);
	snprintf(via_fake, sizeof via_fake, "http://127.0.0.1:%u", f.port);

	pf_config_defaults(&cfg);
	snprintf(ipc_worker, sizeof ipc_worker, "ipc:///tmp/pf-test-wrk-%d.ipc",
	    (int)getpid());
	snprintf(ipc_reply, sizeof ipc_reply, "ipc:///tmp/pf-test-rep-%d.ipc",
	    (int)getpid());
	/* two listen URLs: inproc and ipc */
	snprintf(cfg.worker_url, sizeof cfg.worker_url, "%s, %s", WORKER_URL,
	    ipc_worker);
	cfg.worker_threads = 2;
	cfg.idle_timeout_ms = 3000; /* for the stall case */
	if (nng_pull0_open(&from_worker) != 0
	    || nng_listen(from_worker, REPLY_URL, NULL, 0) != 0
	    || nng_socket_set_ms(from_worker, NNG_OPT_RECVTIMEO, 20000) != 0
	    || wrk_worker_start(&cfg, &w) != PF_OK
	    || nng_push0_open(&to_worker) != 0
	    || nng_dial(to_worker, WORKER_URL, NULL, 0) != 0) {
		printf("Bail out! worker or sockets did not start\n");
		return 1;
	}

	{
		cand cs[] = { { mock_base, 7, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.got_head == 1
		        && r.status == 200
		        && strstr(r.ctype, "application/json") != NULL,
		    "non-stream: head 200 json");
		ok(r.n_data == 1 && r.seq_ok
		        && strstr(r.data, "\"chat.completion\"") != NULL,
		    "non-stream: the whole body in one relay.data");
		ok(strncmp(r.ctl, WORKER_URL "-ctl-", strlen(WORKER_URL) + 5)
		        == 0,
		    "head names the thread's control address (%s)", r.ctl);
		ok(r.end.reason == PF_END_DONE && r.end.seq == 1
		        && r.end.channel_id == 7 && r.end.usage.estimated == 0
		        && r.end.usage.completion == 5
		        && r.end.usage.prompt > 0,
		    "non-stream: end DONE with the upstream usage");
	}
	{
		cand cs[] = { { mock_base, 7, 0, NULL, NULL, 0 } };

		ok(run(stream_body, 1, 0, cs, 1, &r) == 0 && r.got_head == 1
		        && r.status == 200
		        && strstr(r.ctype, "text/event-stream") != NULL,
		    "stream: head 200 event-stream");
		ok(r.n_data >= 7 && r.seq_ok && r.one_event_ok,
		    "stream: one SSE event per relay.data, seq in order (%d)",
		    r.n_data);
		ok(strstr(r.data, "\"choices\":[]") == NULL
		        && strstr(r.data, "data: [DONE]\n\n") != NULL,
		    "stream: usage chunk removed (client did not ask), "
		    "[DONE] kept");
		ok(r.end.reason == PF_END_DONE
		        && r.end.seq == (uint32_t)r.n_data
		        && r.end.usage.estimated == 0
		        && r.end.usage.completion == 5,
		    "stream: end seq = data count, usage from the usage chunk");
		ok(run(stream_body, 1, 1, cs, 1, &r) == 0
		        && strstr(r.data, "\"choices\":[]") != NULL
		        && r.end.usage.completion == 5,
		    "stream: usage chunk forwarded when the client asked");
	}
	{
		cand cs[] = { { closed_base, 1, 0, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(stream_body, 1, 0, cs, 2, &r) == 0 && r.status == 200
		        && r.head_channel == 2 && r.attempts == 2
		        && r.end.reason == PF_END_DONE,
		    "failover: connect refused -> next candidate");
	}
	{
		cand cs[] = { { s500, 1, 0, NULL, NULL, 0 },
			{ s429, 3, 0, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 3, &r) == 0 && r.status == 200
		        && r.head_channel == 2 && r.attempts == 3
		        && r.end.reason == PF_END_DONE,
		    "failover: 500 and 429 -> next candidates");
	}
	{
		cand cs[] = { { s401, 1, 0, NULL, NULL, 0 },
			{ closed_base, 3, 0, NULL, NULL, 0 },
			{ s500, 4, 0, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 4, &r) == 0 && r.status == 200
		        && r.head_channel == 2 && r.end.reason == PF_END_DONE,
		    "401 (the channel's key) -> next candidate");
		ok(r.n_att == 4 && r.att[0].channel_id == 1
		        && r.att[0].status == 401
		        && r.att[0].outcome == PF_ATTEMPT_STATUS
		        && r.att[1].channel_id == 3 && r.att[1].status == 0
		        && r.att[1].outcome == PF_ATTEMPT_CONNECT
		        && r.att[2].channel_id == 4 && r.att[2].status == 500
		        && r.att[2].outcome == PF_ATTEMPT_STATUS
		        && r.att[3].channel_id == 2 && r.att[3].status == 200
		        && r.att[3].outcome == PF_ATTEMPT_OK,
		    "relay.end lists every attempt: channel, status, outcome "
		    "(%u)",
		    r.n_att);
	}
	{
		cand cs[] = { { hang, 5, 300, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0
		        && r.end.reason == PF_END_TIMEOUT && r.n_att == 1
		        && r.att[0].channel_id == 5
		        && r.att[0].outcome == PF_ATTEMPT_TIMEOUT,
		    "a timed-out attempt is listed as TIMEOUT");
	}
	{
		cand cs[] = { { closed_base, 1, 0, NULL, NULL, 0 },
			{ s500, 3, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 2, &r) == 0 && r.got_head == 0
		        && r.n_data == 0
		        && r.end.reason == PF_END_UPSTREAM_ERROR
		        && r.end.upstream_status == 500 && r.error[0] != 0
		        && strstr(r.error, "sk-") == NULL
		        && strstr(r.error, "127.0.0.1") == NULL,
		    "all failed: only relay.end, last status, no key or URL "
		    "(%s)",
		    r.error);
	}
	{
		cand cs[] = { { s400, 1, 0, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 2, &r) == 0 && r.status == 400
		        && r.head_channel == 1 && r.n_data == 1
		        && strstr(r.data, "bad key") != NULL
		        && strstr(r.data, KEY) == NULL
		        && r.end.reason == PF_END_UPSTREAM_ERROR
		        && r.end.upstream_status == 400,
		    "400: passed through without failover, key scrubbed");
	}
	{
		cand cs[] = { { s404url, 1, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.status == 404
		        && strstr(r.data, "no route to") != NULL
		        && strstr(r.data, "127.0.0.1") == NULL
		        && strstr(r.data, "s404url") == NULL,
		    "upstream error body: its URL and host are scrubbed (%s)",
		    r.data);
	}
	{
		cand cs[] = { { oddtype, 1, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.status == 200
		        && strcmp(r.ctype, ODD_TYPE) == 0,
		    "an uncommon Content-Type reaches relay.head as sent: [%s]",
		    r.ctype);
	}
	{
		cand cs[] = { { html, 1, 0, NULL, NULL, 0 } };
		cand ca[] = { { html, 1, 0, NULL, NULL, PF_API_ANTHROPIC } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.status == 404
		        && strstr(r.ctype, "application/json") != NULL
		        && strstr(r.data, "\"upstream_error\"") != NULL
		        && strstr(r.data, "<html>") == NULL,
		    "an error page that is not JSON becomes OpenAI error JSON");
		ok(run_api("/messages", PF_API_ANTHROPIC, msgs_plain, 0, 0, ca,
		       1,
		       &r) == 0
		        && r.status == 404
		        && strstr(r.data, "\"not_found_error\"") != NULL,
		    "... and Anthropic error JSON for Anthropic clients");
	}
	{
		cand cs[] = { { hang, 1, 300, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(stream_body, 1, 0, cs, 2, &r) == 0 && r.status == 200
		        && r.head_channel == 2 && r.attempts == 2
		        && r.end.reason == PF_END_DONE,
		    "first-byte timeout -> next candidate");
	}
	{
		cand cs[] = { { hang, 1, 300, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.got_head == 0
		        && r.end.reason == PF_END_TIMEOUT,
		    "all timed out: relay.end TIMEOUT");
	}
	{
		cand cs[] = { { drop, 1, 0, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(stream_body, 1, 0, cs, 2, &r) == 0 && r.status == 200
		        && r.head_channel == 1 && r.n_data == 2
		        && r.one_event_ok,
		    "dropped mid-stream: events before the cut delivered, no "
		    "failover after the first byte");
		ok(r.end.reason == PF_END_UPSTREAM_ERROR && r.end.seq == 2
		        && r.end.usage.estimated == 1
		        && r.end.usage.completion == 3
		        && r.end.usage.prompt > 0,
		    "dropped mid-stream: end UPSTREAM_ERROR, usage estimated "
		    "from delivered text (%lld)",
		    (long long)r.end.usage.completion);
	}
	{
		cand cs[] = { { stall, 1, 0, NULL, NULL, 0 },
			{ mock_base, 2, 0, NULL, NULL, 0 } };

		ok(run(stream_body, 1, 0, cs, 2, &r) == 0 && r.status == 200
		        && r.head_channel == 1 && r.n_data == 1
		        && r.end.reason == PF_END_TIMEOUT && r.end.seq == 1
		        && r.end.usage.estimated == 1
		        && r.end.usage.completion == 1,
		    "idle gap mid-stream: end TIMEOUT with usage so far, no "
		    "failover after the first byte");
	}
	{
		cand cs[] = { { echo, 1, 0, "up-model", NULL, 0 } };

		ok(run(stream_body, 1, 0, cs, 1, &r) == 0 && r.status == 200
		        && strstr(r.data, "\"auth\":1") != NULL,
		    "upstream got Authorization: Bearer <key>");
		ok(strstr(r.data, "\"model\":\"up-model\"") != NULL
		        && strstr(r.data, "\"include_usage\":true") != NULL,
		    "upstream body: model mapped, include_usage forced");
		ok(strstr(r.data, "\"hdr\":0") != NULL,
		    "no client headers carried: none sent");
	}
	{
		cand cs[] = { { echo, 1, 0, NULL, NULL, 0 } };
#define HDR(n, v)                                                              \
	{                                                                      \
		{ (const uint8_t *)n, sizeof n - 1 },                          \
		{                                                              \
			(const uint8_t *)v, sizeof v - 1                       \
		}                                                              \
	}
		static const pf_header hs[] = {
			HDR("x-mock-test", "v1"),
			HDR("openai-beta", "assistants=v2"),
			HDR("anthropic-beta",
			    "tools-2024"), /* OpenAI channel */
			HDR("x-mock-evil", "a\r\nx-evil: 1"), /* injection */
			HDR("x-forwarded-for", "1.2.3.4"),    /* not allowed */
		};
#undef HDR
		req_headers = hs;
		req_n_headers = sizeof hs / sizeof hs[0];
		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.status == 200
		        && strstr(r.data, "\"hdr\":1") != NULL
		        && strstr(r.data, "\"auth\":1") != NULL,
		    "client headers: allowed ones for the channel type passed "
		    "upstream, others and unsafe values dropped");
		req_headers = NULL;
		req_n_headers = 0;
	}
	{
		cand cs[] = { { nousage, 1, 0, NULL, NULL, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0
		        && r.end.reason == PF_END_DONE
		        && r.end.usage.estimated == 1
		        && r.end.usage.completion == 3
		        && r.end.usage.prompt > 0,
		    "no usage upstream: estimated and flagged");
	}
	{
		cand cs[] = { { "http://upstream.invalid:1/v1", 1, 0, NULL,
		    via_fake, 0 } };

		ok(run(chat_body, 0, 0, cs, 1, &r) == 0 && r.status == 200
		        && strstr(r.data, "\"proxied\":1") != NULL,
		    "channel proxy used (env proxies ignored elsewhere)");
	}
	{
		cand cs[]
		    = { { mock_base, 2, 0, NULL, NULL, PF_API_ANTHROPIC } };

		ok(run_api("/messages", PF_API_ANTHROPIC, msgs_body, 1, 0, cs,
		       1,
		       &r) == 0
		        && r.status == 200 && r.one_event_ok && r.seq_ok
		        && strstr(r.data, "\"id\":\"msg_mock") != NULL
		        && strstr(r.data, "event: message_stop") != NULL,
		    "anthropic channel: events passed through");
		ok(r.end.reason == PF_END_DONE && r.end.usage.estimated == 0
		        && r.end.usage.completion == 5
		        && r.end.usage.prompt > 0,
		    "anthropic channel: usage from message_start + "
		    "message_delta");
	}
	{
		cand cs[] = { { mock_base, 1, 0, "mock-gpt", NULL, 0 } };
		static const char *const order[]
		    = { "event: message_start", "event: content_block_start",
			      "event: content_block_delta",
			      "event: content_block_stop",
			      "event: message_delta", "event: message_stop" };
		const char *at;
		int in_order = 1;

		ok(run_api("/messages", PF_API_ANTHROPIC, msgs_body, 1, 0, cs,
		       1,
		       &r) == 0
		        && r.status == 200
		        && strstr(r.ctype, "text/event-stream") != NULL
		        && r.one_event_ok && r.seq_ok
		        && strstr(r.data, "chat.completion") == NULL,
		    "anthropic client, OpenAI channel: converted stream, one "
		    "event per message");
		at = r.data;
		for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
			at = strstr(at, order[k]);
			if (at == NULL) {
				in_order = 0;
				break;
			}
		}
		ok(in_order && strstr(r.data, "\"text_delta\"") != NULL
		        && strstr(r.data, "\"stop_reason\":\"end_turn\"")
		            != NULL
		        && strstr(r.data, "\"output_tokens\":5") != NULL,
		    "converted stream: event order, text deltas, stop reason, "
		    "usage");
		ok(r.end.reason == PF_END_DONE && r.end.usage.estimated == 0
		        && r.end.usage.completion == 5,
		    "converted stream: relay.end usage from the usage chunk");
		ok(run_api("/messages", PF_API_ANTHROPIC, msgs_plain, 0, 0, cs,
		       1,
		       &r) == 0
		        && r.status == 200 && r.n_data == 1
		        && strstr(r.data, "\"type\":\"message\"") != NULL
		        && strstr(r.data, "\"type\":\"text\"") != NULL
		        && strstr(r.data, "\"input_tokens\":") != NULL
		        && r.end.usage.completion == 5,
		    "anthropic client, OpenAI channel: converted message");
	}
	{
		cand cs[] = { { s400, 1, 0, NULL, NULL, 0 } };

		ok(run_api("/messages", PF_API_ANTHROPIC, msgs_plain, 0, 0, cs,
		       1,
		       &r) == 0
		        && r.status == 400
		        && strstr(r.data, "\"type\":\"error\"") != NULL
		        && strstr(r.data, "invalid_request_error") != NULL
		        && strstr(r.data, KEY) == NULL,
		    "anthropic client, OpenAI channel: error in Anthropic's "
		    "shape");
	}
	{
		cand cs[] = { { mock_base, 1, 0, NULL, NULL, 0 } };

		ok(run_many(cs, 48, 0, &each) == 48 && each == 8,
		    "48 concurrent streams: all complete, each in order");
	}
	{
		/* a host no connection went to yet: curl does not know
		 * whether it multiplexes; the requests must not wait for
		 * one another (CURLOPT_PIPEWAIT made them) */
		cand cs[] = { { barrier, 1, 0, NULL, NULL, 0 } };

		ok(run_many(cs, BARRIER_N, 0, &each) == BARRIER_N,
		    "%d streams to a new HTTP/1.1 host at once reach it at "
		    "the same time",
		    BARRIER_N);
	}
	{
		cand cs[] = { { big_base, 1, 0, NULL, NULL, 0 } };

		ok(run_many(cs, 4, 1500, &each) == 4 && each > 3000,
		    "4 x 3000 events while the reader stalls: the worker holds "
		    "upstream back, nothing lost or reordered (%u)",
		    each);
	}
	{
		cand cs[] = { { slow_base, 1, 0, NULL, NULL, 0 } };
		uint32_t got = 0;

		ok(run_cancel(cs, 3, 0, &got) == PF_END_CLIENT_GONE && got >= 3
		        && got < 20,
		    "relay.cancel stops the transfer: end CLIENT_GONE after "
		    "%u events",
		    got);
		/* twice, so both threads' control sockets are likely used */
		for (int k = 0; k < 2; k++)
			ok(run_cancel(cs, 3, 1, &got) == PF_END_CLIENT_GONE
			        && got >= 3 && got < 20,
			    "relay.cancel to the head's control address stops "
			    "the transfer (%u events)",
			    got);
	}
	{
		char huge_base[64];

		snprintf(huge_base, sizeof huge_base, "http://127.0.0.1:%u/v1",
		    mock_server_port(huge));
		cand cs[] = { { huge_base, 1, 0, NULL, NULL, 0 } };

		ok(run_flow(cs, mock_server_port(huge), &fr) == 0,
		    "flow control: a stream that gets no credit stalls");
		ok(fr.stalled_bytes > 0
		        && fr.stalled_bytes <= PF_STREAM_BUFFER_FLOW_MAX,
		    "... after about one window of data (%zu bytes)",
		    fr.stalled_bytes);
		ok(fr.chunks_at_stall >= 0 && fr.chunks_at_stall < 4000,
		    "... and the upstream transfer is paused: the mock sent "
		    "%ld of 4000 chunks",
		    fr.chunks_at_stall);
		ok(fr.end_ok && fr.seq_ok && fr.content_events == 4000
		        && fr.total_bytes > 4000u * 8192u,
		    "credit resumes it: all 4000 events in order, end DONE "
		    "(%u events, %zu bytes)",
		    fr.content_events, fr.total_bytes);
	}
	ok(run(chat_body, 0, 0, NULL, 0, &r) == 0 && r.got_head == 0
	        && r.end.reason == PF_END_NO_CHANNEL,
	    "no candidates: relay.end NO_CHANNEL");
	{
		/* a worker whose control address is configured on tcp:// (as
		 * for ingresses on other hosts): named in the head, and a
		 * cancel sent there stops the relay */
		pf_config cfg2;
		wrk_worker *w2 = NULL;
		nng_socket in = to_worker;
		unsigned ctl_port = closed_port();
		char want[64];
		cand cs[] = { { slow_base, 1, 0, NULL, NULL, 0 } };
		uint32_t got = 0;
		int up;

		pf_config_defaults(&cfg2);
		snprintf(cfg2.worker_url, sizeof cfg2.worker_url,
		    "inproc://test-relay-worker-tcpctl");
		snprintf(cfg2.worker_ctl_url, sizeof cfg2.worker_ctl_url,
		    "tcp://127.0.0.1:%u", ctl_port);
		snprintf(want, sizeof want, "tcp://127.0.0.1:%u", ctl_port);
		cfg2.worker_threads = 1;
		up = wrk_worker_start(&cfg2, &w2) == PF_OK
		    && nng_push0_open(&to_worker) == 0
		    && nng_dial(to_worker, cfg2.worker_url, NULL, 0) == 0;
		ok(up, "a worker with PF_WORKER_CTL_URL on tcp:// starts");
		ok(up && run(chat_body, 0, 0, cs, 1, &r) == 0
		        && strcmp(r.ctl, want) == 0,
		    "its head names tcp://127.0.0.1:<port> (%s)", r.ctl);
		ok(up && run_cancel(cs, 3, 1, &got) == PF_END_CLIENT_GONE
		        && got < 20,
		    "relay.cancel over tcp:// stops the transfer (%u events)",
		    got);
		if (up)
			nng_close(to_worker);
		to_worker = in;
		wrk_worker_free(w2);
	}

	{
		/* the same over ipc://, as separate processes would talk */
		cand cs[] = { { mock_base, 1, 0, NULL, NULL, 0 } };
		nng_socket in = to_worker, out = from_worker;
		int up = nng_push0_open(&to_worker) == 0
		    && nng_dial(to_worker, ipc_worker, NULL, 0) == 0
		    && nng_pull0_open(&from_worker) == 0
		    && nng_listen(from_worker, ipc_reply, NULL, 0) == 0
		    && nng_socket_set_ms(from_worker, NNG_OPT_RECVTIMEO, 20000)
		        == 0;

		reply_url = ipc_reply;
		ok(up && run(stream_body, 1, 0, cs, 1, &r) == 0
		        && r.status == 200 && r.one_event_ok && r.seq_ok
		        && r.end.reason == PF_END_DONE
		        && r.end.seq == (uint32_t)r.n_data,
		    "ipc:// request and replies (second listen URL)");
		nng_close(to_worker);
		nng_close(from_worker);
		to_worker = in;
		from_worker = out;
		reply_url = REPLY_URL;
	}
	{
		/* drain waits for the relay in flight, then stops */
		cand cs[] = { { slow_base, 1, 0, NULL, NULL, 0 } };
		uint8_t id[PF_ID_LEN];

		ok(send_req("/chat/completions", PF_API_OPENAI, stream_body, 1,
		       0, cs, 1, id)
		        == 0,
		    "a stream is in flight");
		nng_msleep(100); /* let a thread take it */
		wrk_worker_drain(w, 20000);
		ok(wrk_worker_live(w) == 0, "drain: nothing left in flight");
		r.got_end = 0;
		r.n_data = 0;
		while (!r.got_end) {
			pf_msg *pm;
			int got = recv_msg(&pm);

			if (got == RECV_NONE)
				break;
			if (got != 0)
				continue;
			if (pm->kind == PF_MSG_RELAY_DATA)
				r.n_data++;
			if (pm->kind == PF_MSG_RELAY_END) {
				r.got_end = 1;
				r.end.reason = pm->u.relay_end.reason;
			}
			pf_msg_free(pm);
		}
		ok(r.got_end && r.end.reason == PF_END_DONE && r.n_data >= 20,
		    "drain: the stream in flight finished (%d events)",
		    r.n_data);
	}
	wrk_worker_free(w);
	nng_close(to_worker);
	nng_close(from_worker);
	shutdown(f.fd, SHUT_RDWR);
	close(f.fd);
	pthread_join(f.tid, NULL);
	mock_server_free(mock);
	mock_server_free(big);
	mock_server_free(slow);
	mock_server_free(huge);
	return tap_done();
}
