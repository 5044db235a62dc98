/*
 * test_ledger_event.c -- what the accountant refuses before touching the
 * database (acct_event_init): ids, ranges, end reasons, UTF-8, payment id
 * schemes.
 */
#include <string.h>

#include "accountant/ledger.h"
#include "tests/tap.h"

static pf_msg
good_usage(void)
{
	pf_msg m;
	pf_usage *u = &m.u.usage;

	memset(&m, 0, sizeof(m));
	m.kind = PF_MSG_USAGE;
	for (int i = 0; i < PF_ID_LEN; i++)
		u->event_id[i] = (uint8_t)(0xa0 + i);
	u->user_id = 7;
	u->token_id = 9;
	u->channel_id = 3;
	u->model.ptr = (const uint8_t *)"gpt-4o";
	u->model.len = 6;
	u->cost = 120;
	u->tokens.prompt = 10;
	u->tokens.completion = 20;
	u->reason = PF_END_CLIENT_GONE;
	u->ended_ms = 1700000000000;
	return m;
}

static pf_msg
good_payment(const char *id, const char *trade_no)
{
	pf_msg m;
	pf_payment *p = &m.u.payment;

	memset(&m, 0, sizeof(m));
	m.kind = PF_MSG_PAYMENT;
	p->event_id.ptr = (const uint8_t *)id;
	p->event_id.len = strlen(id);
	p->trade_no.ptr = (const uint8_t *)trade_no;
	p->trade_no.len = strlen(trade_no);
	p->provider.ptr = (const uint8_t *)"epay";
	p->provider.len = 4;
	p->user_id = 7;
	p->quota = 5000;
	return m;
}

static int
rejected(const pf_msg *m)
{
	acct_event ev;

	acct_event_init(&ev, m, 1);
	return ev.outcome == ACCT_REJECTED && ev.reason[0] != '\0';
}

int
main(void)
{
	static const uint8_t bad_utf8[] = { 'g', 0xc3, 0x28 };
	static const uint8_t with_nul[] = { 'g', 0, 'x' };
	acct_event ev;
	pf_msg m = good_usage(), p;

	acct_event_init(&ev, &m, 42);
	ok(ev.outcome == ACCT_PENDING, "a good usage event is pending");
	ok(strcmp(ev.id, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf") == 0,
	    "usage ledger id = 32 lowercase hex of the id (%s)", ev.id);
	ok(ev.ts_ms == 42 && ev.msg == &m, "timestamp and message kept");

	m = good_usage();
	m.u.usage.cost = -1;
	ok(rejected(&m), "negative cost rejected");
	m = good_usage();
	m.u.usage.tokens.completion = -5;
	ok(rejected(&m), "negative tokens rejected");
	m = good_usage();
	m.u.usage.user_id = 0;
	ok(rejected(&m), "user 0 rejected");
	m = good_usage();
	m.u.usage.token_id = (int64_t)INT32_MAX + 1;
	ok(rejected(&m), "token id beyond INT rejected");
	m = good_usage();
	m.u.usage.reason = 6;
	ok(rejected(&m), "unknown end reason rejected");
	m = good_usage();
	m.u.usage.model.ptr = bad_utf8;
	m.u.usage.model.len = sizeof(bad_utf8);
	ok(rejected(&m), "model name with invalid UTF-8 rejected");
	m.u.usage.model.ptr = with_nul;
	m.u.usage.model.len = sizeof(with_nul);
	ok(rejected(&m), "model name with a NUL rejected");
	m = good_usage();
	m.u.usage.model.ptr = (const uint8_t *)"\xe6\xa8\xa1\xe5\x9e\x8b";
	m.u.usage.model.len = 6;
	acct_event_init(&ev, &m, 1);
	ok(ev.outcome == ACCT_PENDING, "a UTF-8 model name is fine");
	m.u.usage.reason = PF_END_NO_CHANNEL;
	acct_event_init(&ev, &m, 1);
	ok(ev.outcome == ACCT_PENDING
	        && strcmp(acct_end_reason_name(PF_END_NO_CHANNEL), "no_channel")
	            == 0,
	    "every pf_end_reason has a ledger name");
	ok(strcmp(acct_end_reason_name(PF_END_CLIENT_GONE), "client_gone") == 0
	        && acct_end_reason_name(-1) == NULL,
	    "end reason names");

	p = good_payment("topup:T1", "T1");
	acct_event_init(&ev, &p, 1);
	ok(ev.outcome == ACCT_PENDING && strcmp(ev.id, "topup:T1") == 0,
	    "topup:<trade_no> accepted, id kept");
	p = good_payment("redeem:CODE", "");
	acct_event_init(&ev, &p, 1);
	ok(ev.outcome == ACCT_PENDING, "redeem:<code> accepted");
	p = good_payment("topup:T1", "T2");
	ok(rejected(&p), "trade_no differing from the event id rejected");
	p = good_payment("gift:T1", "T1");
	ok(rejected(&p), "unknown payment id scheme rejected");
	p = good_payment("topup:T1", "T1");
	p.u.payment.quota = 0;
	ok(rejected(&p), "zero credit rejected");
	p = good_payment("", "");
	ok(rejected(&p), "empty payment id rejected");

	m.kind = PF_MSG_GRANT_REQUEST;
	ok(rejected(&m), "a grant request is not an event");
	acct_event_init(&ev, NULL, 1);
	ok(ev.outcome == ACCT_REJECTED, "no message: rejected");
	return tap_done();
}
