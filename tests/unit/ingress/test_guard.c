/* test_guard.c -- the slow-client guard over real loopback sockets: a
 * connection whose header block is not complete by the deadline is shut
 * down; one inside a request is left alone until the request ends. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingress/guard.h"
#include "tests/tap.h"

/* pair connects a client to a loopback listener; *srv gets the accepted
 * (server side) socket. */
static int
pair(int *srv)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0),
	    c = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0
	    || listen(l, 4) != 0
	    || getsockname(l, (struct sockaddr *)&a, &alen) != 0
	    || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	*srv = accept(l, NULL, NULL);
	close(l);
	return *srv >= 0 ? c : -1;
}

/* cut_within says whether the client side sees EOF within ms. */
static int
cut_within(int c, int ms)
{
	struct pollfd p = { .fd = c, .events = POLLIN };
	char b;

	return poll(&p, 1, ms) == 1 && read(c, &b, 1) == 0;
}

int
main(void)
{
	ing_guard *g = NULL;
	ing_guard_rec *r1, *r2;
	int s1 = -1, s2 = -1, c1, c2;

	ok(ing_guard_start(200, 400, &g) == PF_OK,
	    "guard: 200 ms for headers, 400 ms for a body");
	c1 = pair(&s1);
	c2 = pair(&s2);
	ok(c1 >= 0 && c2 >= 0, "two loopback connections");
	r1 = ing_guard_add(g, s1);
	r2 = ing_guard_add(g, s2);
	ing_guard_busy(g, r2, ING_GUARD_RUNNING); /* request came in time */
	ok(cut_within(c1, 10000), "no complete header block: shut down");
	ok(!cut_within(c2, 1000), "inside a request: left alone");
	ok(ing_guard_cut(g) == 1, "one connection cut");
	ing_guard_busy(g, r2, ING_GUARD_HEADERS); /* request done, keep-alive */
	ok(cut_within(c2, 10000),
	    "keep-alive: the next header block has a deadline too");
	ing_guard_remove(g, r1);
	ing_guard_remove(g, r2);
	close(s1);
	close(s2);
	close(c1);
	close(c2);

	/* a body that does not finish in time */
	c1 = pair(&s1);
	r1 = ing_guard_add(g, s1);
	ing_guard_busy(g, r1, ING_GUARD_BODY);
	ok(cut_within(c1, 10000), "a body still coming past its deadline: cut");
	r2 = NULL;
	s2 = c2 = -1;
	ing_guard_remove(g, r1);
	ing_guard_remove(g, r2);
	ing_guard_remove(g, NULL);
	ing_guard_busy(g, NULL, 1);
	close(s1);
	close(s2);
	close(c1);
	close(c2);
	ing_guard_free(g);
	ing_guard_free(NULL);
	return tap_done();
}
