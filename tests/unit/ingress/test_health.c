/* test_health.c -- channel failure counting: which outcomes disable a
 * channel and when (the database writes and probes are covered by
 * tests/integration/test_relay_autodisable.py). */
#include <string.h>

#include "common/config.h"
#include "common/msg.h"
#include "ingress/health.h"
#include "tests/tap.h"

static void
note(ing_health *h, int64_t ch, int32_t outcome, int32_t status)
{
	pf_attempt a
	    = { .channel_id = ch, .status = status, .outcome = outcome };

	ing_health_note(h, &a, 1, 1764115200); /* 2025-11-26T00:00:00Z */
}

static int
queued(ing_health *h, int64_t ch)
{
	int64_t ids[64];
	size_t n = ing_health_pending(h, ids, 64, NULL, 0);

	for (size_t i = 0; i < n && i < 64; i++)
		if (ids[i] == ch)
			return 1;
	return 0;
}

int
main(void)
{
	pf_config cfg;
	ing_health *h = NULL;
	char reason[256];
	int64_t ids[8];

	pf_config_defaults(&cfg);
	ok(cfg.channel_fail_max == 3 && cfg.channel_probe_ms == 30000,
	    "defaults: 3 failures, probe every 30 s");
	ok(ing_health_new(&cfg, &h) == PF_OK, "health state");

	note(h, 5, PF_ATTEMPT_TIMEOUT, 0);
	note(h, 5, PF_ATTEMPT_CONNECT, 0);
	ok(!queued(h, 5), "two failures in a row: still enabled");
	note(h, 5, PF_ATTEMPT_STATUS, 502);
	ok(queued(h, 5), "the third in a row queues a disable");
	ok(ing_health_pending(h, ids, 8, reason, sizeof(reason)) == 1
	        && strstr(reason, "3 failures in a row (last: HTTP 502)")
	            != NULL
	        && strstr(reason, "2025-11-26T00:00:00Z") != NULL,
	    "reason says why and when (%s)", reason);
	note(h, 5, PF_ATTEMPT_BROKEN, 200);
	ok(ing_health_pending(h, ids, 8, NULL, 0) == 1,
	    "more failures do not queue it twice");

	note(h, 6, PF_ATTEMPT_TIMEOUT, 0);
	note(h, 6, PF_ATTEMPT_TIMEOUT, 0);
	note(h, 6, PF_ATTEMPT_OK, 200);
	note(h, 6, PF_ATTEMPT_TIMEOUT, 0);
	note(h, 6, PF_ATTEMPT_TIMEOUT, 0);
	ok(!queued(h, 6), "a success resets the count");
	note(h, 6, PF_ATTEMPT_OK, 404);
	note(h, 6, PF_ATTEMPT_TIMEOUT, 0);
	ok(!queued(h, 6), "an answered client error (404) is a success");

	for (int i = 0; i < 5; i++)
		note(h, 8, PF_ATTEMPT_STATUS, 429);
	for (int i = 0; i < 5; i++)
		note(h, 8, PF_ATTEMPT_LOCAL, 0);
	ok(!queued(h, 8), "429 and our own failures do not count");

	note(h, 7, PF_ATTEMPT_STATUS, 401);
	ok(queued(h, 7), "401 queues a disable at once");
	note(h, 9, PF_ATTEMPT_STATUS, 403);
	ok(queued(h, 9), "so does 403");
	ing_health_free(h);

	cfg.channel_fail_max = 0;
	ok(ing_health_new(&cfg, &h) == PF_OK, "health with fail_max 0");
	for (int i = 0; i < 10; i++)
		note(h, 5, PF_ATTEMPT_TIMEOUT, 0);
	ok(!queued(h, 5), "fail_max 0: failures never disable");
	note(h, 7, PF_ATTEMPT_STATUS, 401);
	ok(queued(h, 7), "... but 401 still does");
	ing_health_free(h);
	ing_health_free(NULL);
	return tap_done();
}
