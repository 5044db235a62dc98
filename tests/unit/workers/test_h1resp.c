/* Unit tests of the HTTP/1.x response parser: every framing fed whole,
 * cut at every byte boundary and one byte at a time, with a consumer
 * that pauses; interim heads; keep-alive; malformed answers and caps. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "tests/tap.h"
#include "workers/h1.h"
#include "workers/h1resp.h"

typedef struct sink {
	char body[8192];
	size_t len;
	int calls;
	int pause_every; /* pause every n-th call (0 = never) */
	int abort_at;    /* abort on this call (0 = never) */
} sink;

static int
sink_cb(void *arg, const uint8_t *p, size_t n)
{
	sink *s = arg;

	s->calls++;
	if (s->abort_at != 0 && s->calls == s->abort_at)
		return -1;
	if (s->pause_every != 0 && s->calls % s->pause_every == 0)
		return 0;
	if (s->len + n < sizeof s->body) {
		memcpy(s->body + s->len, p, n);
		s->len += n;
		s->body[s->len] = 0;
	}
	return 1;
}

/* What a run ended with. */
typedef struct outcome {
	pf_err err;  /* first error other than a pause, PF_OK */
	int done;    /* the response completed before the input ran out */
	size_t rest; /* bytes after the response (not consumed) */
	int status, keep_alive;
	char ctype[128];
} outcome;

/*
 * Feed msg the way h1.c does: input arrives in pieces of `piece` bytes
 * (0: all at once); what the parser did not consume is presented again
 * in front of the next piece.  A pause is resumed at once (the same
 * bytes again).  At the end, eof tells the parser the connection ended
 * (for bodies that run until close).
 */
static outcome
run(const char *msg, size_t len, size_t piece, sink *s, int eof)
{
	wrk_h1resp r;
	outcome o;
	uint8_t buf[1 << 17];
	size_t have = 0, at = 0, used;
	int spins = 0;
	pf_err err;

	memset(&o, 0, sizeof o);
	wrk_h1resp_init(&r, 0);
	while (!wrk_h1resp_done(&r)) {
		size_t k = piece == 0 ? len - at : piece;

		if (k > len - at)
			k = len - at;
		memcpy(buf + have, msg + at, k);
		have += k;
		at += k;
		for (;;) {
			int had_head = wrk_h1resp_has_head(&r);

			err = wrk_h1resp_feed(&r, buf, have, &used, sink_cb, s);
			/* the Content-Type lies in these bytes only now */
			if (!had_head && wrk_h1resp_has_head(&r) && r.has_ctype
			    && r.ctype_len < sizeof o.ctype)
				memcpy(o.ctype, buf + r.ctype_at, r.ctype_len);
			memmove(buf, buf + used, have - used);
			have -= used;
			if (err == PF_EAGAIN && ++spins < 100000)
				continue; /* resumed at once */
			if (err != PF_OK) {
				o.err = err;
				return o;
			}
			if (wrk_h1resp_done(&r) || used == 0 || have == 0)
				break;
		}
		if (at == len)
			break;
	}
	o.done = wrk_h1resp_done(&r);
	if (!o.done && eof) {
		o.err = have > 0 ? PF_EPROTO : wrk_h1resp_eof(&r);
		o.done = o.err == PF_OK;
	}
	o.rest = have + (len - at);
	o.status = r.status;
	o.keep_alive = r.keep_alive;
	return o;
}

/* The body and outcome must not depend on how the input was cut or on
 * pauses: whole, every two-piece cut (via piece sizes), one byte at a
 * time, each with and without a pausing consumer. */
static void
check_all_cuts(const char *name, const char *msg, int eof, int status,
    const char *body, int keep_alive, size_t rest)
{
	size_t len = strlen(msg);
	int bad = 0;

	for (size_t piece = 0; piece <= len; piece++) {
		/* no pause, a pause every second or third call */
		for (int pause = 0; pause <= 3; pause += pause == 0 ? 2 : 1) {
			sink s;
			outcome o;

			memset(&s, 0, sizeof s);
			s.pause_every = pause;
			o = run(msg, len, piece, &s, eof);
			if (o.err != PF_OK || !o.done || o.status != status
			    || strcmp(s.body, body) != 0
			    || o.keep_alive != keep_alive || o.rest != rest) {
				if (bad++ == 0)
					printf(
					    "# %s piece=%zu pause=%d: err=%d "
					    "done=%d status=%d ka=%d rest=%zu "
					    "body=[%s]\n",
					    name, piece, pause, o.err, o.done,
					    o.status, o.keep_alive, o.rest,
					    s.body);
			}
		}
	}
	ok(bad == 0, "%s: same answer however it is cut or paused", name);
}

static pf_err
whole_err(const char *msg)
{
	sink s;

	memset(&s, 0, sizeof s);
	return run(msg, strlen(msg), 0, &s, 1).err;
}

/* Which URLs the own client takes, and what it makes of them. */
static void
test_urls(void)
{
	wrk_h1_target t;
	static const char *const refused[] = {
		"https://127.0.0.1/v1",      /* TLS: curl */
		"http://localhost:8000/v1",  /* a name: curl */
		"http://api.example.com/v1", /* a name: curl */
		"http://user:pw@127.0.0.1/", /* user info: curl */
		"http://127.0.0.1:0/",       /* bad ports */
		"http://127.0.0.1:65536/",
		"http://127.0.0.1:80x/",
		"http://[::1/",
		"http:///v1",
		"ftp://127.0.0.1/",
	};

	ok(wrk_h1_parse_url("http://127.0.0.1:8000/v1/chat/completions?x=1", &t)
	            == 0
	        && t.addr.sa.sa_family == AF_INET
	        && ntohs(t.addr.in4.sin_port) == 8000 && t.authority_len == 14
	        && memcmp(t.authority, "127.0.0.1:8000", 14) == 0
	        && t.path_len == 24
	        && memcmp(t.path, "/v1/chat/completions?x=1", 24) == 0,
	    "IPv4 with port, path and query");
	ok(wrk_h1_parse_url("HTTP://10.1.2.3", &t) == 0
	        && ntohs(t.addr.in4.sin_port) == 80 && t.path_len == 1
	        && t.path[0] == '/',
	    "no port, no path: port 80, path /");
	ok(wrk_h1_parse_url("http://[::1]:9/x", &t) == 0
	        && t.addr.sa.sa_family == AF_INET6
	        && ntohs(t.addr.in6.sin6_port) == 9 && t.authority_len == 7
	        && t.path_len == 2,
	    "IPv6 literal with port");
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ok(wrk_h1_parse_url(refused[i], &t) == -1, "left to curl: %s",
		    refused[i]);
}

int
main(void)
{
	sink s;
	outcome o;

	test_urls();

	check_all_cuts("content-length",
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 11\r\n\r\n{\"a\":\"xyz\"}",
	    0, 200, "{\"a\":\"xyz\"}", 1, 0);
	check_all_cuts("chunked, extensions, trailer",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Type: text/event-stream\r\n\r\n"
	    "5;ext=1\r\ndata:\r\n"
	    "A \r\n: hi\n\ndata\r\n5\r\n: x\r\n\r\n"
	    "0\r\nX-Trailer: 1\r\n\r\n",
	    0, 200, "data:: hi\n\ndata: x\r\n", 1, 0);
	check_all_cuts("chunked with bare LF",
	    "HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n"
	    "3\nabc\n0\n\n",
	    0, 200, "abc", 1, 0);
	check_all_cuts("until close",
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end", 1,
	    200, "to the end", 0, 0);
	check_all_cuts("interim 100 and 103 skipped",
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
	    "Link: </a>\r\n\r\nHTTP/1.1 201 Created\r\n"
	    "Content-Length: 2\r\n\r\nok",
	    0, 201, "ok", 1, 0);
	check_all_cuts("204 has no body",
	    "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, 204, "",
	    1, 0);
	check_all_cuts("HTTP/1.0 closes unless keep-alive",
	    "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, 200, "x", 0, 0);
	check_all_cuts("HTTP/1.0 keep-alive",
	    "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
	    "Content-Length: 1\r\n\r\nx",
	    0, 200, "x", 1, 0);
	check_all_cuts("Connection: close",
	    "HTTP/1.1 500 Oops\r\nConnection: keep-alive, close\r\n"
	    "Content-Length: 2\r\n\r\n{}",
	    0, 500, "{}", 0, 0);
	check_all_cuts("bytes after the answer are left",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 0, 200, "ok",
	    1, 5);

	/* content type kept; a too long one is dropped */
	{
		static const char m[]
		    = "HTTP/1.1 200 OK\r\ncontent-type:  text/event-stream; "
		      "charset=utf-8 \r\nContent-Length: 0\r\n\r\n";

		memset(&s, 0, sizeof s);
		o = run(m, sizeof m - 1, 0, &s, 0);
	}
	ok(o.done && strcmp(o.ctype, "text/event-stream; charset=utf-8") == 0,
	    "content type trimmed: [%s]", o.ctype);

	/* malformed */
	ok(whole_err("HTTP/2 200\r\n\r\n") == PF_EPROTO, "HTTP/2 refused");
	ok(whole_err("ICY 200 OK\r\n\r\n") == PF_EPROTO, "not HTTP refused");
	ok(whole_err("HTTP/1.1 20 OK\r\n\r\n") == PF_EPROTO,
	    "two-digit status refused");
	ok(whole_err("HTTP/1.1 200OK\r\n\r\n") == PF_EPROTO,
	    "status glued to reason refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	             "Content-Length: 2\r\n\r\nxx")
	        == PF_EPROTO,
	    "conflicting Content-Length refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
	        == PF_EPROTO,
	    "negative Content-Length refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n") == PF_EPROTO,
	    "folded header refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nno colon\r\n\r\n") == PF_EPROTO,
	    "header without colon refused");
	ok(whole_err("HTTP/1.1 101 Switching\r\n\r\n") == PF_EPROTO,
	    "unasked upgrade refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "zz\r\n")
	        == PF_EPROTO,
	    "bad chunk size refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "1\r\nab\r\n")
	        == PF_EPROTO,
	    "chunk longer than its size refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "fffffffffffffffffff\r\n")
	        == PF_EPROTO,
	    "huge chunk size refused");
	ok(whole_err("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
	        == PF_EPROTO,
	    "body cut short is an error at end of input");
	ok(whole_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "5\r\nabcde\r\n")
	        == PF_EPROTO,
	    "chunked body without its last chunk is an error at close");

	/* caps */
	{
		size_t n = PF_UPSTREAM_HEADER_MAX + 64;
		char *big = malloc(n + 1);

		memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
		memset(big + 20, 'a', n - 20);
		big[n] = 0;
		ok(whole_err(big) == PF_ETOOBIG, "head over the cap refused");
		{
			static const char h[] = "HTTP/1.1 200 OK\r\n"
			                        "Transfer-Encoding: chunked\r\n"
			                        "\r\n1;";

			memcpy(big, h, sizeof h - 1);
		}
		ok(whole_err(big) == PF_ETOOBIG,
		    "chunk-size line over the cap refused");
		free(big);
	}

	/* the consumer aborts */
	memset(&s, 0, sizeof s);
	s.abort_at = 1;
	{
		static const char m[]
		    = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

		o = run(m, sizeof m - 1, 0, &s, 0);
	}
	ok(o.err == PF_ECANCELED, "consumer abort stops the parse");
	return tap_done();
}
