/*
 * loadgen_test.c -- unit tests of the load generator's histogram and
 * HTTP/1.1 response parser (meson suite "unit").
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench/loadgen_hist.h"
#include "bench/loadgen_http.h"
#include "tests/tap.h"

static lg_hist h;
static lg_http p;

static void
test_hist(void)
{
	lg_hist_init(&h);
	ok(lg_hist_quantile(&h, 500000u) == 0, "empty histogram: 0");
	for (uint64_t v = 1; v <= 1000; v++)
		lg_hist_record(&h, v * 1000u); /* 1..1000 us */
	uint64_t p50 = lg_hist_quantile(&h, 500000u);
	uint64_t p99 = lg_hist_quantile(&h, 990000u);
	uint64_t p999 = lg_hist_quantile(&h, 999000u);
	ok(p50 >= 496000u && p50 <= 504000u, "p50 within 0.8%% (%llu)",
	    (unsigned long long)p50);
	ok(p99 >= 982000u && p99 <= 998000u, "p99 within 0.8%% (%llu)",
	    (unsigned long long)p99);
	ok(p999 >= 991000u && p999 <= 1000000u, "p99.9 (%llu)",
	    (unsigned long long)p999);
	ok(lg_hist_quantile(&h, 1000000u) == 1000000u, "p100 = max");
	ok(h.min == 1000u && h.max == 1000000u, "min and max exact");
	ok(lg_hist_mean(&h) == 500500u, "mean");
	lg_hist_init(&h);
	for (uint64_t v = 0; v < 128; v++)
		lg_hist_record(&h, v);
	ok(lg_hist_quantile(&h, 500000u) == 63u, "small values exact");
	lg_hist_record(&h, UINT64_MAX);
	ok(h.max == UINT64_MAX, "huge value clamps into the last bucket");
	static lg_hist a, b;
	lg_hist_init(&a);
	lg_hist_init(&b);
	lg_hist_record(&a, 10);
	lg_hist_record(&b, 20000);
	lg_hist_merge(&a, &b);
	ok(a.count == 2 && a.min == 10 && a.max == 20000, "merge");
}

/* Feeds s in pieces of `step` bytes; returns the final rc. */
static lg_http_rc
feed(const char *s, size_t step, uint64_t *events, size_t *left)
{
	size_t len = strlen(s), off = 0;
	lg_http_rc rc = LG_HTTP_MORE;
	lg_http_reset(&p);
	*events = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		size_t used = 0;
		uint32_t nev = 0;
		rc = lg_http_feed(&p, s + off, n, &used, &nev);
		*events += nev;
		if (rc != LG_HTTP_MORE) {
			*left = len - off - used;
			return rc;
		}
		off += n;
	}
	*left = 0;
	return rc;
}

static const char plain[]
    = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
      "Content-Length: 70\r\n\r\n"
      "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":16,\"total_"
      "tokens\":"
      "19}}xxx";

static const char sse[]
    = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
      "Transfer-Encoding: chunked\r\n\r\n"
      "f\r\ndata: {\"a\":1}\n\n\r\n"
      "11\r\ndata: {\"b\":2}\r\n\r\n\r\n"
      "5a\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
      "\"completion_tokens\":7,\"total_tokens\":12}}\n\n\r\n"
      "e\r\ndata: [DONE]\n\n\r\n"
      "0\r\n\r\n";

/* Anthropic's Messages stream: usage in message_start (input, and a first
 * output count) and in message_delta (the final output count); no [DONE],
 * message_stop ends it. */
static const char msgs[]
    = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
      "Content-Length: 330\r\n\r\n"
      "event: message_start\ndata: {\"type\":\"message_start\","
      "\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
      "\"delta\":{\"text\":\"hi\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\","
      "\"usage\":{\"output_tokens\":12}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static void
test_http(void)
{
	uint64_t ev;
	size_t left;
	int all = 1;
	for (size_t step = 1; step <= sizeof(plain); step++) {
		lg_http_rc rc = feed(plain, step, &ev, &left);
		all &= rc == LG_HTTP_DONE && p.status == 200 && p.keep_alive
		    && p.prompt_tokens == 3 && p.completion_tokens == 16
		    && left == 3
		    && strcmp(p.request_id, "0123456789abcdef0123456789abcdef")
		        == 0;
	}
	ok(all,
	    "Content-Length body at every split; usage; x-request-id; "
	    "trailing bytes left over");
	ok(feed("HTTP/1.1 200 OK\r\nx-request-id: a b\r\n"
	        "Content-Length: 0\r\n\r\n",
	       64, &ev, &left)
	            == LG_HTTP_DONE
	        && strcmp(p.request_id, "a") == 0,
	    "x-request-id: the first word");
	ok(feed("HTTP/1.1 200 OK\r\nx-request-id: a\"b\r\n"
	        "Content-Length: 0\r\n\r\n",
	       64, &ev, &left)
	            == LG_HTTP_DONE
	        && p.request_id[0] == '\0',
	    "x-request-id with a character outside [0-9A-Za-z_-]: not kept");
	char longid[PF_LOADGEN_REQUEST_ID_MAX + 128];
	int n = snprintf(
	    longid, sizeof(longid), "HTTP/1.1 200 OK\r\nx-request-id: ");
	memset(longid + n, 'a', PF_LOADGEN_REQUEST_ID_MAX + 1);
	snprintf(longid + n + PF_LOADGEN_REQUEST_ID_MAX + 1,
	    sizeof(longid) - (size_t)n - PF_LOADGEN_REQUEST_ID_MAX - 1,
	    "\r\nContent-Length: 0\r\n\r\n");
	ok(feed(longid, 64, &ev, &left) == LG_HTTP_DONE
	        && p.request_id[0] == '\0',
	    "x-request-id over PF_LOADGEN_REQUEST_ID_MAX: not kept");
	all = 1;
	for (size_t step = 1; step <= sizeof(sse); step++) {
		lg_http_rc rc = feed(sse, step, &ev, &left);
		all &= rc == LG_HTTP_DONE && p.sse && ev == 4 && p.events == 4
		    && p.done_marker && p.prompt_tokens == 5
		    && p.completion_tokens == 7 && left == 0;
	}
	ok(all, "chunked SSE at every split: 4 events, [DONE], usage");
	all = 1;
	for (size_t step = 1; step <= sizeof(msgs); step++) {
		lg_http_rc rc = feed(msgs, step, &ev, &left);
		all &= rc == LG_HTTP_DONE && p.sse && ev == 4 && p.done_marker
		    && p.prompt_tokens == 9 && p.completion_tokens == 12
		    && left == 0;
	}
	ok(all,
	    "Anthropic stream at every split: message_stop ends it, input "
	    "from message_start, output from message_delta");

	ok(feed("HTTP/1.1 abc\r\n\r\n", 64, &ev, &left) == LG_HTTP_MALFORMED,
	    "bad status line");
	ok(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	       64, &ev, &left)
	        == LG_HTTP_MALFORMED,
	    "bad chunk size");
	ok(feed("HTTP/1.1 204 No Content\r\n\r\n", 64, &ev, &left)
	        == LG_HTTP_DONE,
	    "204 has no body");
	ok(feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
	        "Content-Length: 2\r\n\r\nok",
	       7, &ev, &left)
	            == LG_HTTP_DONE
	        && p.status == 200,
	    "interim 100 skipped");
	ok(feed("HTTP/1.0 200 OK\r\n\r\nbody", 64, &ev, &left) == LG_HTTP_MORE
	        && lg_http_eof(&p) == LG_HTTP_DONE && !p.keep_alive,
	    "body until close");
	ok(feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 64, &ev,
	       &left)
	            == LG_HTTP_MORE
	        && lg_http_eof(&p) == LG_HTTP_MALFORMED,
	    "truncated body is an error at EOF");
	ok(feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0"
	        "\r\n\r\n",
	       64, &ev, &left)
	            == LG_HTTP_DONE
	        && !p.keep_alive,
	    "Connection: close");
	char big[PF_LOADGEN_LINE_MAX + 64];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	ok(feed(big, 4096, &ev, &left) == LG_HTTP_MALFORMED,
	    "header line over the cap");
}

int
main(void)
{
	test_hist();
	test_http();
	return tap_done();
}
