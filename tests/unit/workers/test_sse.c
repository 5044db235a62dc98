/* Unit tests of the SSE splitter: split at every byte boundary, CRLF, CR,
 * caps, end of stream, data extraction. */
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "tests/tap.h"
#include "workers/sse.h"

typedef struct events {
	char out[4096]; /* events joined with '|' */
	size_t len;
	int n;
	int fail_at; /* return an error on this event (1-based), 0 = never */
} events;

static pf_err
collect_cb(void *arg, const uint8_t *ev, size_t len)
{
	events *e = arg;

	e->n++;
	if (e->fail_at == e->n)
		return PF_ECANCELED;
	if (e->len + len + 1 < sizeof e->out) {
		memcpy(e->out + e->len, ev, len);
		e->len += len;
		e->out[e->len++] = '|';
		e->out[e->len] = 0;
	}
	return PF_OK;
}

/* Feed s in pieces cut at cut1 and cut2; collect events. */
static pf_err
feed3(const char *s, size_t cut1, size_t cut2, events *e, size_t max)
{
	wrk_sse sse;
	size_t len = strlen(s);
	pf_err err;

	memset(e, 0, sizeof *e);
	wrk_sse_init(&sse, max);
	err = wrk_sse_feed(&sse, s, cut1, collect_cb, e);
	if (err == PF_OK)
		err = wrk_sse_feed(&sse, s + cut1, cut2 - cut1, collect_cb, e);
	if (err == PF_OK)
		err = wrk_sse_feed(&sse, s + cut2, len - cut2, collect_cb, e);
	if (err == PF_OK)
		err = wrk_sse_finish(&sse, collect_cb, e);
	wrk_sse_fini(&sse);
	return err;
}

/* Every pair of cut points gives the same events as one whole feed. */
static int
all_splits_equal(const char *s, const char *want, int want_n)
{
	size_t len = strlen(s);
	events e;

	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			if (feed3(s, a, b, &e, 1024) != PF_OK)
				return 0;
			if (e.n != want_n || strcmp(e.out, want) != 0) {
				printf("# cuts %zu,%zu: got %d [%s]\n", a, b,
				    e.n, e.out);
				return 0;
			}
		}
	}
	return 1;
}

/* Events are delivered by the feed that completes them, not later. */
static void
test_no_lag(void)
{
	wrk_sse sse;
	events e;
	const char *a = "data: 1\n\n";

	memset(&e, 0, sizeof e);
	wrk_sse_init(&sse, 1024);
	ok(wrk_sse_feed(&sse, a, strlen(a), collect_cb, &e) == PF_OK
	        && e.n == 1,
	    "a complete event is delivered by the same feed");
	ok(wrk_sse_feed(&sse, "data: 2\n", 8, collect_cb, &e) == PF_OK
	        && e.n == 1 && wrk_sse_buffered(&sse) == 8,
	    "a half event is held");
	ok(wrk_sse_feed(&sse, "\n", 1, collect_cb, &e) == PF_OK && e.n == 2
	        && strcmp(e.out, "data: 1\n\n|data: 2\n\n|") == 0
	        && wrk_sse_buffered(&sse) == 0,
	    "its blank line completes it at once");
	wrk_sse_fini(&sse);
}

static void
test_caps(void)
{
	wrk_sse sse;
	events e;
	char big[64];

	memset(big, 'x', sizeof big);
	memcpy(big, "data: ", 6);
	memset(&e, 0, sizeof e);
	wrk_sse_init(&sse, 32);
	ok(wrk_sse_feed(&sse, big, sizeof big, collect_cb, &e) == PF_ETOOBIG,
	    "an unfinished event over the cap is refused");
	wrk_sse_fini(&sse);

	wrk_sse_init(&sse, 32);
	ok(wrk_sse_feed(&sse, big, 20, collect_cb, &e) == PF_OK
	        && wrk_sse_feed(&sse, big + 20, 20, collect_cb, &e)
	            == PF_ETOOBIG,
	    "the cap counts bytes held across feeds");
	wrk_sse_fini(&sse);

	ok(feed3("data: 0123456789012345678901234567890\n\n", 0, 0, &e, 32)
	        == PF_ETOOBIG,
	    "a complete event over the cap is refused too");
	ok(feed3("data: 0123456789012345678901\n\n", 0, 0, &e, 32) == PF_OK
	        && e.n == 1,
	    "an event of exactly the cap passes");

	memset(&e, 0, sizeof e);
	e.fail_at = 2;
	wrk_sse_init(&sse, 1024);
	ok(wrk_sse_feed(&sse, "data: a\n\ndata: b\n\ndata: c\n\n", 27,
	       collect_cb,
	       &e) == PF_ECANCELED
	        && e.n == 2,
	    "a callback error stops the feed");
	wrk_sse_fini(&sse);
}

static void
test_data(void)
{
	wrk_buf out;
	const char *ev1 = "event: x\r\ndata: {\"a\":1}\r\n\r\n";
	const char *ev2 = "data:one\ndata: two\ndata\n\n";
	const char *ev3 = ": comment\nid: 7\n\n";
	const char *ev4 = "database: no\n\n";

	wrk_buf_init(&out);
	ok(wrk_sse_data((const uint8_t *)ev1, strlen(ev1), &out) == 1
	        && strcmp(wrk_buf_cstr(&out), "{\"a\":1}") == 0,
	    "data with CRLF and an event field");
	ok(wrk_sse_data((const uint8_t *)ev2, strlen(ev2), &out) == 1
	        && strcmp(wrk_buf_cstr(&out), "one\ntwo\n") == 0,
	    "data lines joined with LF, one space stripped, bare data");
	ok(wrk_sse_data((const uint8_t *)ev3, strlen(ev3), &out) == 0,
	    "comment-only event has no data");
	ok(wrk_sse_data((const uint8_t *)ev4, strlen(ev4), &out) == 0,
	    "a field named database is not data");
	wrk_buf_fini(&out);
}

/* Feed s in random pieces; collect events (max cap 64). */
static pf_err
feed_random(const char *s, size_t len, unsigned *seed, events *e)
{
	wrk_sse sse;
	size_t at = 0;
	pf_err err = PF_OK;

	memset(e, 0, sizeof *e);
	wrk_sse_init(&sse, 64);
	while (at < len && err == PF_OK) {
		size_t n = (size_t)(rand_r(seed) % 7);

		if (n > len - at)
			n = len - at;
		err = wrk_sse_feed(&sse, s + at, n, collect_cb, e);
		at += n;
	}
	if (err == PF_OK)
		err = wrk_sse_finish(&sse, collect_cb, e);
	wrk_sse_fini(&sse);
	return err;
}

/* Random streams over a small alphabet: any split gives the same events
 * (or the same error) as one whole feed, and every event ends with a
 * blank line. */
static void
test_random(void)
{
	static const char alpha[] = "da: x\r\n\n\n";
	unsigned seed = 12345;
	int same = 1, framed = 1;

	for (int round = 0; round < 3000 && same; round++) {
		char s[200];
		size_t len = (size_t)(rand_r(&seed) % sizeof s);
		events whole, parts;
		pf_err e1, e2;

		for (size_t i = 0; i < len; i++)
			s[i] = alpha[rand_r(&seed) % (sizeof alpha - 1)];
		memset(&whole, 0, sizeof whole);
		{
			wrk_sse sse;

			wrk_sse_init(&sse, 64);
			e1 = wrk_sse_feed(&sse, s, len, collect_cb, &whole);
			if (e1 == PF_OK)
				e1 = wrk_sse_finish(&sse, collect_cb, &whole);
			wrk_sse_fini(&sse);
		}
		e2 = feed_random(s, len, &seed, &parts);
		if (e1 != e2
		    || (e1 == PF_OK
		        && (whole.n != parts.n
		            || strcmp(whole.out, parts.out) != 0))) {
			printf("# round %d differs\n", round);
			same = 0;
		}
		for (size_t i = 0; e1 == PF_OK && i < whole.len; i++) {
			/* each event ends in a line end, then '|' */
			if (whole.out[i] == '|' && i > 0
			    && whole.out[i - 1] != '\n'
			    && whole.out[i - 1] != '\r')
				framed = 0;
		}
	}
	ok(same, "3000 random streams: random splits = one feed");
	ok(framed, "every event ends with its blank line");
}

int
main(void)
{
	events e;

	ok(all_splits_equal("data: {\"a\":1}\n\ndata: [DONE]\n\n",
	       "data: {\"a\":1}\n\n|data: [DONE]\n\n|", 2),
	    "LF events, every split");
	ok(all_splits_equal("data: a\r\n\r\ndata: b\r\n\r\n",
	       "data: a\r\n\r\n|data: b\r\n\r\n|", 2),
	    "CRLF events, every split");
	ok(all_splits_equal("event: m\ndata: a\ndata: b\n\n: ping\n\n",
	       "event: m\ndata: a\ndata: b\n\n|: ping\n\n|", 2),
	    "multi-line events and comments, every split");
	ok(all_splits_equal("\n\r\n\ndata: a\n\n\n\ndata: b\n\n",
	       "data: a\n\n|data: b\n\n|", 2),
	    "blank lines between events are dropped, every split");
	ok(all_splits_equal(
	       "data: a\r\rdata: b\r\r", "data: a\r\r|data: b\r\r|", 2),
	    "bare CR line ends, every split");
	ok(all_splits_equal("data: a\n\ndata: {\"tr", "data: a\n\n|", 1),
	    "an event the stream ended inside is discarded");
	ok(all_splits_equal("data: a\n\ndata: tail\r\n", "data: a\n\n|", 1),
	    "also when cut after its line end");
	ok(all_splits_equal(
	       "data: a\n\ndata: b\n\r", "data: a\n\n|data: b\n\r|", 2),
	    "a final CR completes the last event");
	ok(feed3("", 0, 0, &e, 16) == PF_OK && e.n == 0, "empty stream");
	test_no_lag();
	test_caps();
	test_data();
	test_random();
	return tap_done();
}
