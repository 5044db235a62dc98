/*
 * test_mock_server.c -- the mock model over loopback: endpoints, knobs,
 * faults, GET /mock/stats, keep-alive, and a clean stop while connections
 * are suspended.  Raw sockets, so the test sees exactly what was sent
 * (including a missing end of a chunked stream).  No timing assertions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench/mock.h"
#include "bench/mock_parse.h"
#include "tests/tap.h"

static unsigned port;
static int last_eof; /* the last read_all ended with the peer closing */

static int
dial(void)
{
	struct sockaddr_in sa;
	struct timeval tv = { 20, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
send_req(int fd, const char *method, const char *path, const char *version,
    const char *headers, const char *body)
{
	char head[2048];
	size_t bl = body != NULL ? strlen(body) : 0;
	int n = snprintf(head, sizeof(head),
	    "%s %s %s\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n", method,
	    path, version, headers != NULL ? headers : "", bl);

	if (write(fd, head, (size_t)n) != n)
		return;
	if (bl > 0 && write(fd, body, bl) != (ssize_t)bl)
		return;
}

/* read_all reads until the peer closes (or the timeout); returns bytes. */
static size_t
read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	last_eof = 0;
	while (n + 1 < cap) {
		ssize_t k = read(fd, buf + n, cap - 1 - n);

		if (k <= 0) {
			last_eof = k == 0;
			break;
		}
		n += (size_t)k;
	}
	buf[n] = '\0';
	return n;
}

typedef struct resp {
	int status;
	char raw[1 << 16];
	const char *body;
} resp;

/* http10 does one HTTP/1.0 exchange (the server closes at the end, no
 * chunking). */
static void
http10(resp *r, const char *method, const char *path, const char *headers,
    const char *body)
{
	int fd = dial();
	const char *b;

	r->status = 0;
	r->raw[0] = '\0';
	r->body = r->raw;
	if (fd < 0)
		return;
	send_req(fd, method, path, "HTTP/1.0", headers, body);
	read_all(fd, r->raw, sizeof(r->raw));
	close(fd);
	if (sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1)
		r->status = 0;
	b = strstr(r->raw, "\r\n\r\n");
	r->body = b != NULL ? b + 4 : r->raw + strlen(r->raw);
}

static json_t *
json_of(const resp *r)
{
	return json_loads(r->body, 0, NULL);
}

static const char *
jpath_str(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_is_string(v) ? json_string_value(v) : "";
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(hay, needle); p != NULL;
	     p = strstr(p + 1, needle))
		n++;
	return n;
}

static resp r;

static void
test_basics(void)
{
	json_t *j;

	/* 12 bytes of content -> 3 prompt tokens */
	http10(&r, "POST", "/v1/chat/completions",
	    "Authorization: Bearer sk-up\r\nx-mock-chunks: 3\r\n",
	    "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"hello world!\"}]}");
	j = json_of(&r);
	ok(r.status == 200 && j != NULL, "chat non-stream: 200 JSON");
	ok(strcmp(jpath_str(j, "model", NULL), "gpt-x") == 0,
	    "chat: model echoed");
	ok(json_integer_value(
	       json_object_get(json_object_get(j, "usage"), "prompt_tokens"))
	            == 3
	        && json_integer_value(json_object_get(
	               json_object_get(j, "usage"), "completion_tokens"))
	            == 3,
	    "chat: prompt 3 (ceil(12/4)), completion 3 (x-mock-chunks)");
	json_decref(j);

	http10(&r, "POST", "/v1/chat/completions", NULL,
	    "{\"model\":\"m\",\"stream\":true,"
	    "\"stream_options\":{\"include_usage\":true}}");
	ok(r.status == 200 && strstr(r.raw, "text/event-stream") != NULL,
	    "chat stream: 200 text/event-stream");
	ok(count(r.body, "data: ") == 16 + 4,
	    "chat stream: role + 16 chunks + finish + usage + [DONE]");
	ok(strstr(r.body, "\"choices\":[],\"usage\":{") != NULL
	        && strstr(r.body, "data: [DONE]\n\n") != NULL,
	    "chat stream: usage chunk then [DONE]");

	http10(&r, "POST", "/v1/messages", "x-api-key: sk-ant\r\n",
	    "{\"model\":\"claude\",\"max_tokens\":2,\"stream\":true,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	ok(r.status == 200 && count(r.body, "event: content_block_delta") == 2
	        && strstr(r.body, "\"stop_reason\":\"max_tokens\"") != NULL
	        && strstr(r.body, "event: message_stop") != NULL,
	    "messages stream: 2 deltas (max_tokens), message_stop");

	http10(&r, "GET", "/v1/models", NULL, NULL);
	j = json_of(&r);
	ok(r.status == 200 && strcmp(jpath_str(j, "object", NULL), "list") == 0,
	    "models: list");
	json_decref(j);

	http10(&r, "POST", "/v1/chat/completions", NULL, "{\"model\":");
	j = json_of(&r);
	ok(r.status == 400
	        && strcmp(
	               jpath_str(j, "error", "type"), "invalid_request_error")
	            == 0,
	    "malformed JSON: 400 invalid_request_error");
	json_decref(j);

	http10(&r, "POST", "/v1/nothing", NULL, "{}");
	ok(r.status == 404, "unknown path: 404");
	http10(&r, "GET", "/v1/chat/completions", NULL, NULL);
	ok(r.status == 405, "wrong method: 405");
	http10(&r, "POST", "/v1/chat/completions", "x-mock-chunks: lots\r\n",
	    "{\"model\":\"m\"}");
	ok(r.status == 400, "malformed knob: 400");
}

static void
test_knobs(void)
{
	const char *body = "{\"model\":\"m\",\"stream\":true}";
	char codes[64] = "";
	json_t *j;

	http10(&r, "POST", "/v1/chat/completions", "x-mock-status: 503\r\n",
	    "{\"model\":\"m\"}");
	j = json_of(&r);
	ok(r.status == 503
	        && strcmp(jpath_str(j, "error", "type"), "server_error") == 0,
	    "x-mock-status 503: OpenAI error body");
	json_decref(j);

	for (int i = 0; i < 4; i++) {
		http10(&r, "POST", "/v1/chat/completions",
		    "x-mock-status: 429\r\nx-mock-error-rate: 50\r\n",
		    "{\"model\":\"m\"}");
		snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes),
		    "%d ", r.status);
	}
	ok(strcmp(codes, "200 429 200 429 ") == 0,
	    "x-mock-error-rate 50: every second request fails (%s)", codes);

	http10(&r, "POST", "/v1/chat/completions",
	    "x-mock-ttfb-ms: 20\r\nx-mock-chunk-delay-ms: 5\r\n"
	    "x-mock-chunks: 3\r\n",
	    body);
	ok(r.status == 200 && count(r.body, "data: ") == 3 + 3,
	    "delays: all events still arrive");

	http10(&r, "POST", "/v1/chat/completions", "x-mock-no-usage: 1\r\n",
	    "{\"model\":\"m\",\"stream\":true,"
	    "\"stream_options\":{\"include_usage\":true}}");
	ok(strstr(r.body, "usage") == NULL, "x-mock-no-usage: no usage");

	http10(&r, "POST", "/v1/chat/completions",
	    "x-mock-chunk-bytes: 9\r\nx-mock-chunks: 2\r\n",
	    "{\"model\":\"m\"}");
	ok(strstr(r.body, "\"content\":\"tok0 xxxxtok1 xxxx\"") != NULL,
	    "x-mock-chunk-bytes 9: padded chunks");

	http10(&r, "POST", "/v1/chat/completions",
	    "x-mock-drop-after: 2\r\nx-mock-chunks: 5\r\n", body);
	ok(r.status == 200 && last_eof
	        && count(r.body, "\"content\":\"tok") == 2
	        && strstr(r.body, "[DONE]") == NULL,
	    "x-mock-drop-after 2: two chunks, then closed");

	http10(&r, "POST", "/v1/chat/completions",
	    "x-mock-hang-after: 1\r\nx-mock-hang-ms: 30\r\n", body);
	ok(r.status == 200 && last_eof
	        && count(r.body, "\"content\":\"tok") == 1
	        && strstr(r.body, "[DONE]") == NULL,
	    "x-mock-hang-after 1: one chunk, hang, closed");

	http10(&r, "POST", "/v1/chat/completions", "x-mock-drop-after: 0\r\n",
	    "{\"model\":\"m\"}");
	ok(r.status == 0 && r.raw[0] == '\0',
	    "non-stream drop: closed without a response");
}

static void
test_chunked_and_keepalive(void)
{
	char buf[1 << 16];
	int fd = dial();
	size_t n;

	/* drop mid-stream over HTTP/1.1: no terminating zero chunk */
	send_req(fd, "POST", "/v1/chat/completions", "HTTP/1.1",
	    "x-mock-drop-after: 1\r\n", "{\"model\":\"m\",\"stream\":true}");
	n = read_all(fd, buf, sizeof(buf));
	close(fd);
	ok(n > 0 && last_eof
	        && strstr(buf, "Transfer-Encoding: chunked") != NULL
	        && strstr(buf, "\r\n0\r\n\r\n") == NULL,
	    "HTTP/1.1 drop: chunked stream without its end");

	/* two requests on one connection */
	fd = dial();
	send_req(fd, "POST", "/v1/chat/completions", "HTTP/1.1", NULL,
	    "{\"model\":\"a\"}");
	send_req(fd, "POST", "/v1/chat/completions", "HTTP/1.1",
	    "Connection: close\r\n", "{\"model\":\"b\"}");
	n = read_all(fd, buf, sizeof(buf));
	close(fd);
	ok(n > 0 && count(buf, "HTTP/1.1 200") == 2
	        && strstr(buf, "\"model\":\"a\"") != NULL
	        && strstr(buf, "\"model\":\"b\"") != NULL,
	    "keep-alive: two answers on one connection");
}

/*
 * Several HTTP/1.1 streams drop at once and nothing else reaches the mock
 * afterwards: each must still be closed (EOF) by the server, not left
 * open until some later request.  The wait is bounded (poll), so a
 * connection the server forgot fails the test instead of hanging it.
 */
#define DROP_CONNS 8

static void
test_concurrent_drops(void)
{
	int fds[DROP_CONNS];
	size_t got[DROP_CONNS];
	int eof[DROP_CONNS];
	static char bufs[DROP_CONNS][8192];
	int idle[DROP_CONNS];
	int open_n = 0, all_eof = 1, right = 1, idle_n = 0;

	/* idle keep-alive connections, older than the drops (a gateway
	 * keeps its pooled connections to the mock open like this) */
	for (int i = 0; i < DROP_CONNS; i++) {
		char b[8192];

		idle[i] = dial();
		if (idle[i] < 0)
			continue;
		send_req(idle[i], "GET", "/health", "HTTP/1.1", NULL, NULL);
		if (read(idle[i], b, sizeof(b)) > 0)
			idle_n++;
	}
	ok(idle_n == DROP_CONNS,
	    "concurrent drops: %d idle keep-alive "
	    "connections",
	    idle_n);
	for (int i = 0; i < DROP_CONNS; i++) {
		fds[i] = dial();
		got[i] = 0;
		eof[i] = 0;
		if (fds[i] < 0)
			continue;
		open_n++;
		/* stream drops by header and by path knob (after a chunk
		 * delay: a resume from the timer), a non-stream drop and the
		 * end of a short hang */
		switch (i % 4) {
		case 0:
			send_req(fds[i], "POST", "/v1/chat/completions",
			    "HTTP/1.1",
			    "x-mock-drop-after: 2\r\nx-mock-chunks: 5\r\n"
			    "x-mock-chunk-delay-ms: 20\r\n",
			    "{\"model\":\"m\",\"stream\":true}");
			break;
		case 1:
			send_req(fds[i], "POST",
			    "/mock/knobs/"
			    "chunks=5,drop-after=2,chunk-delay-ms=20"
			    "/v1/chat/completions",
			    "HTTP/1.1", NULL,
			    "{\"model\":\"m\",\"stream\":true}");
			break;
		case 2:
			send_req(fds[i], "POST", "/v1/chat/completions",
			    "HTTP/1.1", "x-mock-drop-after: 0\r\n",
			    "{\"model\":\"m\"}");
			break;
		default:
			send_req(fds[i], "POST", "/v1/chat/completions",
			    "HTTP/1.1",
			    "x-mock-hang-after: 2\r\nx-mock-hang-ms: 30\r\n",
			    "{\"model\":\"m\",\"stream\":true}");
			break;
		}
	}
	ok(open_n == DROP_CONNS, "concurrent drops: %d connections", open_n);
	/* up to 200 rounds of 100 ms: EOF on every socket, no other
	 * traffic meanwhile */
	for (int round = 0; round < 200; round++) {
		struct pollfd pf[DROP_CONNS];
		int idx[DROP_CONNS];
		int np = 0;

		for (int i = 0; i < DROP_CONNS; i++) {
			if (fds[i] < 0 || eof[i])
				continue;
			pf[np].fd = fds[i];
			pf[np].events = POLLIN;
			pf[np].revents = 0;
			idx[np++] = i;
		}
		if (np == 0)
			break;
		if (poll(pf, (nfds_t)np, 100) <= 0)
			continue;
		for (int j = 0; j < np; j++) {
			int i = idx[j];
			ssize_t k;

			if (pf[j].revents == 0)
				continue;
			k = read(fds[i], bufs[i] + got[i],
			    sizeof(bufs[i]) - 1 - got[i]);
			if (k > 0)
				got[i] += (size_t)k;
			else
				eof[i] = 1; /* EOF, reset or full */
			if (got[i] + 1 >= sizeof(bufs[i]))
				eof[i] = 1;
		}
	}
	for (int i = 0; i < DROP_CONNS; i++) {
		if (fds[i] < 0)
			continue;
		bufs[i][got[i]] = '\0';
		if (!eof[i])
			all_eof = 0;
		if (i % 4 == 2 ? got[i] != 0
		               : count(bufs[i], "\"content\":\"tok") != 2
		            || strstr(bufs[i], "\r\n0\r\n\r\n") != NULL)
			right = 0;
		close(fds[i]);
	}
	for (int i = 0; i < DROP_CONNS; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	ok(all_eof, "concurrent drops: every connection closed by the server");
	ok(right,
	    "concurrent drops: streams cut after two chunks, no "
	    "end; non-stream drops empty");
}

static void
test_stats(void)
{
	json_t *j, *last;

	http10(&r, "POST", "/mock/reset", NULL, NULL);
	ok(r.status == 200, "POST /mock/reset");
	http10(&r, "POST", "/v1/chat/completions",
	    "Authorization: Bearer sk-mapped\r\n",
	    "{\"model\":\"upstream-m\",\"stream\":true,"
	    "\"stream_options\":{\"include_usage\":true}}");
	http10(&r, "GET", "/mock/stats", NULL, NULL);
	j = json_of(&r);
	last = json_object_get(j, "last");
	ok(r.status == 200
	        && json_integer_value(json_object_get(j, "requests")) == 1,
	    "stats: one request since reset");
	ok(strcmp(jpath_str(last, "authorization", NULL), "Bearer sk-mapped")
	            == 0
	        && strcmp(jpath_str(last, "model", NULL), "upstream-m") == 0
	        && json_is_true(json_object_get(last, "include_usage")),
	    "stats: last authorization, model, include_usage");
	ok(strstr(jpath_str(last, "body", NULL), "upstream-m") != NULL,
	    "stats: last body kept");
	json_decref(j);
}

/* mock_knobs_path on its own: every knob name, separators, limits. */
static void
test_path_parser(void)
{
	mock_options opt;
	mock_knobs k;
	const char *bad = NULL;
	const char *all = "ttfb-ms=1,chunks=2,chunk-delay-ms=3,chunk-bytes=4,"
	                  "hang-ms=5,hang-after=6,drop-after=7,status=429,"
	                  "error-rate=9,fail-first=10,coalesce=1,no-usage=1";
	char big[400];

	mock_options_defaults(&opt);
	mock_knobs_defaults(&opt, &k);
	ok(mock_knobs_path(all, strlen(all), &k, &bad) == PF_OK
	        && k.ttfb_ms == 1 && k.chunks == 2 && k.chunk_delay_ms == 3
	        && k.chunk_bytes == 4 && k.hang_ms == 5 && k.hang_after == 6
	        && k.drop_after == 7 && k.status == 429 && k.error_rate == 9
	        && k.rate_set && k.fail_first == 10 && k.fail_first_set
	        && k.coalesce == 1 && k.no_usage == 1,
	    "path parser: every knob");
	mock_knobs_defaults(&opt, &k);
	ok(mock_knobs_path("", 0, &k, &bad) == PF_OK && k.chunks == 16
	        && !k.rate_set && k.hang_after == MOCK_NO_LIMIT,
	    "path parser: empty spec keeps the defaults");
	ok(!k.coalesce_set && k.coalesce == 0,
	    "path parser: coalescing left to the chunk delay by default");
	ok(mock_knobs_path("coalesce=0", 10, &k, &bad) == PF_OK
	        && k.coalesce_set && k.coalesce == 0,
	    "path parser: coalesce=0 asks for one write per event");
	opt.coalesce = MOCK_COALESCE_OFF;
	mock_knobs_defaults(&opt, &k);
	ok(k.coalesce_set && k.coalesce == 0,
	    "--no-coalesce: one write per event");
	opt.coalesce = MOCK_COALESCE_ON;
	mock_knobs_defaults(&opt, &k);
	ok(k.coalesce_set && k.coalesce == 1, "--coalesce: always packed");
	opt.coalesce = MOCK_COALESCE_AUTO;
	mock_knobs_defaults(&opt, &k);
	ok(mock_knobs_path(",chunks=3,,", 11, &k, &bad) == PF_OK
	        && k.chunks == 3,
	    "path parser: empty items are skipped");
	ok(mock_knobs_path("chunks=3x", 9, &k, &bad) == PF_EINVAL
	        && strcmp(bad, "x-mock-chunks") == 0,
	    "path parser: a bad value names the knob");
	ok(mock_knobs_path("chunks=", 7, &k, &bad) == PF_EINVAL,
	    "path parser: an empty value is refused");
	ok(mock_knobs_path("status=99", 9, &k, &bad) == PF_EINVAL,
	    "path parser: status below 100 is refused");
	ok(mock_knobs_path("coalesce=2", 10, &k, &bad) == PF_EINVAL,
	    "path parser: over the knob's maximum is refused");
	ok(mock_knobs_path("x-mock-chunks=2", 15, &k, &bad) == PF_EINVAL,
	    "path parser: header names are not path names");
	/* not NUL-terminated: only len bytes count */
	ok(mock_knobs_path("chunks=45", 8, &k, &bad) == PF_OK && k.chunks == 4,
	    "path parser: reads exactly len bytes");
	memset(big, 0, sizeof(big));
	for (size_t i = 0; i + 9 < sizeof(big) - 1; i += 9)
		memcpy(big + i, "chunks=1,", 9);
	ok(mock_knobs_path(big, strlen(big), &k, &bad) == PF_EINVAL,
	    "path parser: over PF_MOCK_PATH_KNOBS_MAX is refused");
}

/* Path knobs (/mock/knobs/SPEC/v1/...), fail-first and POST /mock/knobs:
 * the ways to make a channel faulty without request headers. */
static void
test_path_knobs(void)
{
	const char *body = "{\"model\":\"m\",\"stream\":true}";
	const char *plain = "{\"model\":\"m\"}";
	char codes[64] = "";
	char longpath[1024];
	json_t *j;
	int n;

	http10(&r, "POST", "/mock/reset", NULL, NULL);
	http10(&r, "POST", "/mock/knobs/status=503/v1/chat/completions", NULL,
	    plain);
	j = json_of(&r);
	ok(r.status == 503
	        && strcmp(jpath_str(j, "error", "type"), "server_error") == 0,
	    "path knob status=503: OpenAI error body");
	json_decref(j);

	http10(&r, "GET", "/mock/stats", NULL, NULL);
	j = json_of(&r);
	ok(strcmp(jpath_str(json_object_get(j, "last"), "path", NULL),
	       "/v1/chat/completions")
	            == 0
	        && json_integer_value(json_object_get(
	               json_object_get(j, "by_path"), "/v1/chat/completions"))
	            == 1,
	    "path knobs: stats see the path without the prefix");
	json_decref(j);

	http10(&r, "POST",
	    "/mock/knobs/chunks=5,drop-after=2,/v1/chat/completions", NULL,
	    body);
	ok(r.status == 200 && last_eof
	        && count(r.body, "\"content\":\"tok") == 2
	        && strstr(r.body, "[DONE]") == NULL,
	    "path knobs chunks=5,drop-after=2: two chunks, then closed");

	http10(&r, "POST", "/mock/knobs/status=500/v1/chat/completions",
	    "x-mock-status: 200\r\n", plain);
	ok(r.status == 200, "a header overrides a path knob");

	http10(&r, "POST", "/mock/knobs/nosuch=1/v1/chat/completions", NULL,
	    plain);
	ok(r.status == 400 && strstr(r.body, "path knob") != NULL,
	    "unknown path knob: 400");
	http10(&r, "POST", "/mock/knobs/ttfb-ms=x/v1/chat/completions", NULL,
	    plain);
	ok(r.status == 400 && strstr(r.body, "x-mock-ttfb-ms") != NULL,
	    "malformed path knob value: 400 naming it");
	http10(
	    &r, "POST", "/mock/knobs/chunks/v1/chat/completions", NULL, plain);
	ok(r.status == 400, "path knob without =: 400");
	n = snprintf(longpath, sizeof(longpath), "/mock/knobs/");
	while (n < 12 + 300)
		n += snprintf(
		    longpath + n, sizeof(longpath) - (size_t)n, "chunks=1,");
	snprintf(
	    longpath + n, sizeof(longpath) - (size_t)n, "/v1/chat/completions");
	http10(&r, "POST", longpath, NULL, plain);
	ok(r.status == 400, "path knobs over PF_MOCK_PATH_KNOBS_MAX: 400");
	http10(&r, "POST", "/mock/knobs/status=500", NULL, plain);
	ok(r.status == 404, "path knobs with nothing after them: 404");

	for (int i = 0; i < 4; i++) {
		http10(&r, "POST",
		    "/mock/knobs/fail-first=2,status=429/v1/chat/completions",
		    NULL, plain);
		snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes),
		    "%d ", r.status);
	}
	ok(strcmp(codes, "429 429 200 200 ") == 0,
	    "fail-first=2: the first two fail, then all succeed (%s)", codes);

	http10(&r, "POST", "/mock/knobs", NULL, "status=502,ttfb-ms=1\n");
	ok(r.status == 200, "POST /mock/knobs sets server knobs");
	http10(&r, "POST", "/v1/chat/completions", NULL, plain);
	ok(r.status == 502, "server knobs apply to plain requests");
	http10(&r, "GET", "/v1/models", NULL, NULL);
	ok(r.status == 502, "server knobs apply to GET /v1/models");
	http10(&r, "POST", "/mock/knobs/status=200/v1/chat/completions", NULL,
	    plain);
	ok(r.status == 200, "a path knob overrides a server knob");
	http10(&r, "POST", "/mock/knobs", NULL, "status=7");
	ok(r.status == 400, "POST /mock/knobs refuses a bad list");
	http10(&r, "POST", "/v1/chat/completions", NULL, plain);
	ok(r.status == 502, "a refused list leaves the knobs as they were");
	http10(&r, "POST", "/mock/knobs", NULL, "");
	ok(r.status == 200, "POST /mock/knobs with an empty body clears");
	http10(&r, "POST", "/v1/chat/completions", NULL, plain);
	ok(r.status == 200, "cleared: plain requests succeed again");
}

/* Stop while a stream hangs and a response waits for its ttfb: the stop
 * must resume them and return. */
static void
test_stop_with_suspended(mock_server *m)
{
	int a = dial(), b = dial();
	char buf[4096];
	ssize_t n;

	send_req(a, "POST", "/v1/chat/completions", "HTTP/1.1",
	    "x-mock-hang-after: 0\r\n", "{\"model\":\"m\",\"stream\":true}");
	send_req(b, "POST", "/v1/chat/completions", "HTTP/1.1",
	    "x-mock-ttfb-ms: 3600000\r\n", "{\"model\":\"m\"}");
	/* the hanging stream has sent its headers and role chunk */
	n = read(a, buf, sizeof(buf));
	ok(n > 0, "hanging stream started");
	/* wait (bounded) until the server has seen the second request */
	for (int i = 0; i < 500; i++) {
		http10(&r, "GET", "/mock/stats", NULL, NULL);
		if (strstr(r.body, "\"suspended\":2") != NULL)
			break;
		usleep(10000);
	}
	ok(strstr(r.body, "\"suspended\":2") != NULL,
	    "stats: two suspended connections");
	mock_server_free(m);
	ok(1, "mock_server_free returned with suspended connections");
	close(a);
	close(b);
}

int
main(void)
{
	mock_options opt;
	mock_server *m = NULL;

	mock_options_defaults(&opt);
	opt.listen = "127.0.0.1:0";
	opt.threads = 2;
	if (mock_server_start(&opt, &m) != PF_OK) {
		printf("Bail out! mock did not start\n");
		return 1;
	}
	port = mock_server_port(m);
	ok(port != 0, "bound port %u", port);
	test_basics();
	test_knobs();
	test_chunked_and_keepalive();
	test_concurrent_drops();
	test_stats();
	test_path_parser();
	test_path_knobs();
	test_stop_with_suspended(m);
	return tap_done();
}
