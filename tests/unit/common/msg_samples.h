/*
 * msg_samples.h -- sample messages of every kind and a field-by-field
 * comparison, shared by the codec unit test, the corpus generator and the
 * fuzz replay.  Samples point at static data; nothing is allocated.
 */
#ifndef PF_TESTS_MSG_SAMPLES_H
#define PF_TESTS_MSG_SAMPLES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/limits.h"
#include "common/msg.h"

#define SAMPLE_VARIANTS 3

static const pf_msg_kind sample_kinds[] = { PF_MSG_RELAY_REQUEST,
	PF_MSG_RELAY_HEAD, PF_MSG_RELAY_DATA, PF_MSG_RELAY_END,
	PF_MSG_RELAY_CANCEL, PF_MSG_RELAY_CREDIT, PF_MSG_GRANT_REQUEST,
	PF_MSG_GRANT_REPLY, PF_MSG_GRANT_RELEASE, PF_MSG_USAGE, PF_MSG_PAYMENT,
	PF_MSG_ACK, PF_MSG_BALANCE, PF_MSG_USAGE_BATCH };
#define SAMPLE_NKINDS (sizeof(sample_kinds) / sizeof(sample_kinds[0]))

static inline pf_bytes
sample_b(const char *s)
{
	pf_bytes b = { (const uint8_t *)s, strlen(s) };
	return b;
}

static inline pf_bytes
sample_bn(const void *p, size_t n)
{
	pf_bytes b = { p, n };
	return b;
}

static const uint8_t sample_id_a[PF_ID_LEN] = { 0x00, 0x01, 0x02, 0x03, 0x04,
	0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0xff };
static const uint8_t sample_body_nul[] = { 'a', 0, 'b', 0xff, 0x80, '\n' };

static pf_candidate sample_cands[PF_RELAY_MAX_CANDIDATES];
static pf_usage sample_usages[PF_USAGE_BATCH_MAX];
static pf_header sample_headers[PF_RELAY_HEADERS_MAX];
static pf_attempt sample_attempts[PF_RELAY_MAX_CANDIDATES];
static pf_bytes sample_ids[4];

/* sample_usage fills u like the usage sample of the given variant. */
static inline void
sample_usage(pf_usage *u, int variant)
{
	const int64_t big = variant == 1 ? INT64_MAX : 123456789;
	const int64_t neg = variant == 1 ? INT64_MIN : -42;
	const int z = variant == 2;

	memset(u, 0, sizeof(*u));
	memcpy(u->event_id, sample_id_a, PF_ID_LEN);
	u->user_id = z ? 0 : 1;
	u->token_id = z ? 0 : 2;
	u->channel_id = z ? 0 : big;
	u->model = sample_b(z ? "" : "gpt-4o");
	u->tokens.prompt = z ? 0 : 1000;
	u->tokens.completion = z ? 0 : neg;
	u->tokens.cached = z ? 0 : 100;
	u->tokens.estimated = (uint8_t)(variant == 1);
	u->cost = z ? 0 : big;
	u->price_input = z ? 0 : 2500000;
	u->price_output = z ? 0 : 10000000;
	u->price_cached = z ? 0 : 1250000;
	u->price_call = variant == 1 ? INT64_MAX : 0;
	u->group_ratio_ppm = z ? 0 : 1000000;
	u->started_ms = z ? 0 : 1764115200000;
	u->ended_ms = z ? 0 : neg;
	u->reason = variant == 1 ? INT32_MAX : PF_END_DONE;
	u->stream = variant == 1 ? 255 : !z;
}

/*
 * sample_msg fills m with a message of the given kind.  Variant 0 is
 * typical, 1 uses extremes (INT64_MIN/MAX, all-ones, max candidates,
 * binary bytes), 2 uses zeros and empty strings.
 */
static inline void
sample_msg(pf_msg_kind kind, int variant, pf_msg *m)
{
	const int64_t big = variant == 1 ? INT64_MAX : 123456789;
	const int64_t neg = variant == 1 ? INT64_MIN : -42;
	const int z = variant == 2;

	memset(m, 0, sizeof(*m));
	m->version = PF_MSG_VERSION;
	m->kind = kind;
	switch (kind) {
	case PF_MSG_RELAY_REQUEST: {
		pf_relay_request *r = &m->u.relay_request;
		uint32_t n = variant == 1 ? PF_RELAY_MAX_CANDIDATES : z ? 0 : 2;

		memcpy(r->id, sample_id_a, PF_ID_LEN);
		r->reply_addr = sample_b(z ? "" : "inproc://pf-reply");
		r->deadline_ms = z ? 0 : big;
		r->method = sample_b(z ? "" : "POST");
		r->path = sample_b(z ? "" : "/chat/completions");
		r->stream = variant == 1 ? 255 : (uint8_t)!z;
		r->client_usage = (uint8_t)(variant == 0);
		r->client_api = variant == 1 ? INT32_MIN : PF_API_OPENAI;
		r->body = variant == 1
		    ? sample_bn(sample_body_nul, sizeof(sample_body_nul))
		    : sample_b(
		        z ? "" : "{\"model\":\"gpt-4o\",\"stream\":true}");
		for (uint32_t i = 0; i < n; i++) {
			pf_candidate *c = &sample_cands[i];

			memset(c, 0, sizeof(*c));
			c->channel_id = variant == 1 ? INT64_MAX - i : 7 + i;
			c->type = i % 2 ? PF_API_ANTHROPIC : PF_API_OPENAI;
			c->base_url = sample_b("http://127.0.0.1:9000/v1");
			c->key = sample_b(i % 2 ? "" : "sk-upstream-secret");
			c->proxy
			    = sample_b(i % 2 ? "socks5://127.0.0.1:1080" : "");
			c->upstream_model = sample_b("gpt-4o-mini");
			c->connect_timeout_ms
			    = variant == 1 ? UINT32_MAX : 5000;
			c->first_byte_timeout_ms = 60000 + i;
			c->idle_timeout_ms = 0;
			c->total_timeout_ms = 600000;
		}
		r->n_candidates = n;
		r->candidates = n > 0 ? sample_cands : NULL;
		r->credit = variant == 1 ? UINT32_MAX : z ? 0 : 65536;
		r->probe = (uint8_t)(variant == 1 ? 255 : 0);
		r->batch = (uint8_t)(variant == 1 ? 1 : 0);
		n = variant == 1 ? PF_RELAY_HEADERS_MAX : z ? 0 : 2;
		for (uint32_t i = 0; i < n; i++) {
			sample_headers[i].name = sample_b(
			    i % 2 ? "x-mock-status" : "anthropic-beta");
			sample_headers[i].value = sample_b(i % 2 ? "503" : "");
		}
		r->n_headers = n;
		r->headers = n > 0 ? sample_headers : NULL;
		break;
	}
	case PF_MSG_RELAY_HEAD: {
		pf_relay_head *h = &m->u.relay_head;

		memcpy(h->id, sample_id_a, PF_ID_LEN);
		h->status = variant == 1 ? INT32_MAX : z ? 0 : 200;
		h->content_type = sample_b(z ? "" : "text/event-stream");
		h->channel_id = z ? 0 : neg;
		h->attempts = variant == 1 ? UINT32_MAX : 2;
		h->ctl_addr = sample_b(z ? "" : "inproc://pf-worker-ctl-0");
		break;
	}
	case PF_MSG_RELAY_DATA: {
		pf_relay_data *d = &m->u.relay_data;

		memcpy(d->id, sample_id_a, PF_ID_LEN);
		d->seq = variant == 1 ? UINT32_MAX : z ? 0 : 3;
		d->data = variant == 1
		    ? sample_bn(sample_body_nul, sizeof(sample_body_nul))
		    : sample_b(z ? "" : "data: {\"id\":\"x\"}\n\n");
		d->completion = variant == 1 ? INT64_MAX : z ? 0 : 12;
		break;
	}
	case PF_MSG_RELAY_END: {
		pf_relay_end *e = &m->u.relay_end;
		uint32_t n;

		memcpy(e->id, sample_id_a, PF_ID_LEN);
		e->seq = variant == 1 ? UINT32_MAX : z ? 0 : 12;
		e->reason = variant == 1 ? INT32_MIN
		    : z                  ? 0
		                         : PF_END_UPSTREAM_ERROR;
		e->upstream_status = z ? 0 : 502;
		e->channel_id = z ? 0 : big;
		e->usage.prompt = z ? 0 : big;
		e->usage.completion = z ? 0 : neg;
		e->usage.cached = z ? 0 : 17;
		e->usage.estimated = variant == 1 ? 255 : !z;
		e->error = sample_b(z ? "" : "all upstreams failed");
		n = variant == 1 ? PF_RELAY_MAX_CANDIDATES : z ? 0 : 2;
		for (uint32_t i = 0; i < n; i++) {
			sample_attempts[i].channel_id
			    = variant == 1 ? INT64_MIN + i : 3 + i;
			sample_attempts[i].status = i % 2 ? 200 : 401;
			sample_attempts[i].outcome = variant == 1
			    ? INT32_MAX
			    : (i % 2 ? PF_ATTEMPT_OK : PF_ATTEMPT_STATUS);
		}
		e->n_attempts = n;
		e->attempt_list = n > 0 ? sample_attempts : NULL;
		break;
	}
	case PF_MSG_RELAY_CANCEL:
		memcpy(m->u.relay_cancel.id, sample_id_a, PF_ID_LEN);
		if (z)
			memset(m->u.relay_cancel.id, 0, PF_ID_LEN);
		break;
	case PF_MSG_RELAY_CREDIT:
		memcpy(m->u.relay_credit.id, sample_id_a, PF_ID_LEN);
		m->u.relay_credit.bytes = variant == 1 ? UINT32_MAX
		    : z                                ? 0
		                                       : 16384;
		break;
	case PF_MSG_GRANT_REQUEST: {
		pf_grant_request *g = &m->u.grant_request;

		g->corr = variant == 1 ? UINT64_MAX : z ? 0 : 99;
		g->user_id = z ? 0 : big;
		g->token_id = z ? 0 : neg;
		g->amount = z ? 0 : 500000;
		break;
	}
	case PF_MSG_GRANT_REPLY: {
		pf_grant_reply *g = &m->u.grant_reply;

		g->corr = variant == 1 ? UINT64_MAX : z ? 0 : 99;
		g->user_id = z ? 0 : big;
		g->token_id = z ? 0 : 4;
		g->granted = z ? 0 : neg;
		g->expires_ms = z ? 0 : 1764115200000;
		g->status = variant == 1 ? INT32_MAX : z ? 0 : PF_EDENIED;
		g->epoch = variant == 1 ? UINT64_MAX
		    : z                 ? 0
		                        : 0x9e3779b97f4a7c15u;
		break;
	}
	case PF_MSG_GRANT_RELEASE: {
		pf_grant_release *g = &m->u.grant_release;

		g->user_id = z ? 0 : big;
		g->token_id = z ? 0 : neg;
		g->amount = z ? 0 : 1;
		break;
	}
	case PF_MSG_USAGE:
		sample_usage(&m->u.usage, variant);
		break;
	case PF_MSG_PAYMENT: {
		pf_payment *p = &m->u.payment;

		p->event_id = sample_b(z ? "" : "topup:USR1NOabc1231764115200");
		p->user_id = z ? 0 : big;
		p->quota = z ? 0 : neg;
		p->money = z ? 0 : 1000;
		p->provider = sample_b(z ? "" : "epay");
		p->trade_no = sample_b(z ? "" : "USR1NOabc1231764115200");
		break;
	}
	case PF_MSG_ACK: {
		pf_ack *a = &m->u.ack;
		uint32_t n = z ? 0 : variant == 1 ? 4 : 2;

		sample_ids[0] = sample_b("topup:USR1NO1");
		sample_ids[1] = sample_bn(sample_id_a, PF_ID_LEN);
		sample_ids[2] = sample_b("");
		sample_ids[3] = sample_b("redeem:CODE");
		a->n_ids = n;
		a->ids = n > 0 ? sample_ids : NULL;
		break;
	}
	case PF_MSG_USAGE_BATCH: {
		pf_usage_batch *ub = &m->u.usage_batch;
		uint32_t n = variant == 1 ? PF_USAGE_BATCH_MAX : z ? 0 : 2;

		for (uint32_t i = 0; i < n; i++) {
			sample_usage(&sample_usages[i], i % 2 ? 2 : variant);
			sample_usages[i].event_id[0] = (uint8_t)i;
		}
		ub->n_usages = n;
		ub->usages = n > 0 ? sample_usages : NULL;
		break;
	}
	case PF_MSG_BALANCE: {
		pf_balance *b = &m->u.balance;

		b->user_id = z ? 0 : 7;
		b->token_id = z ? 0 : big;
		b->quota = z ? 0 : neg;
		b->unlimited = variant == 1 ? 255 : !z;
		b->at_ms = z ? 0 : 1764115200000;
		break;
	}
	}
}

static inline int
sample_bytes_eq(pf_bytes a, pf_bytes b)
{
	return a.len == b.len
	    && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#define SAMPLE_CHECK(cond)                                                     \
	do {                                                                   \
		if (!(cond)) {                                                 \
			snprintf(why, whylen, "%s", #cond);                    \
			return 0;                                              \
		}                                                              \
	} while (0)

static inline int
sample_tokens_eq(const pf_usage_tokens *a, const pf_usage_tokens *b, char *why,
    size_t whylen)
{
	SAMPLE_CHECK(a->prompt == b->prompt);
	SAMPLE_CHECK(a->completion == b->completion);
	SAMPLE_CHECK(a->cached == b->cached);
	SAMPLE_CHECK(a->estimated == b->estimated);
	return 1;
}

static inline int
sample_usage_eq(const pf_usage *x, const pf_usage *y, char *why, size_t whylen)
{

	SAMPLE_CHECK(memcmp(x->event_id, y->event_id, PF_ID_LEN) == 0);
	SAMPLE_CHECK(x->user_id == y->user_id);
	SAMPLE_CHECK(x->token_id == y->token_id);
	SAMPLE_CHECK(x->channel_id == y->channel_id);
	SAMPLE_CHECK(sample_bytes_eq(x->model, y->model));
	if (!sample_tokens_eq(&x->tokens, &y->tokens, why, whylen))
		return 0;
	SAMPLE_CHECK(x->cost == y->cost);
	SAMPLE_CHECK(x->price_input == y->price_input);
	SAMPLE_CHECK(x->price_output == y->price_output);
	SAMPLE_CHECK(x->price_cached == y->price_cached);
	SAMPLE_CHECK(x->price_call == y->price_call);
	SAMPLE_CHECK(x->group_ratio_ppm == y->group_ratio_ppm);
	SAMPLE_CHECK(x->started_ms == y->started_ms);
	SAMPLE_CHECK(x->ended_ms == y->ended_ms);
	SAMPLE_CHECK(x->reason == y->reason);
	SAMPLE_CHECK(x->stream == y->stream);
	return 1;
}

/* msg_equal compares every field of two messages; on a difference it
 * names the field in why and returns 0. */
static inline int
msg_equal(const pf_msg *a, const pf_msg *b, char *why, size_t whylen)
{
	SAMPLE_CHECK(a->kind == b->kind);
	switch (a->kind) {
	case PF_MSG_RELAY_REQUEST: {
		const pf_relay_request *x = &a->u.relay_request,
		                       *y = &b->u.relay_request;

		SAMPLE_CHECK(memcmp(x->id, y->id, PF_ID_LEN) == 0);
		SAMPLE_CHECK(sample_bytes_eq(x->reply_addr, y->reply_addr));
		SAMPLE_CHECK(x->deadline_ms == y->deadline_ms);
		SAMPLE_CHECK(sample_bytes_eq(x->method, y->method));
		SAMPLE_CHECK(sample_bytes_eq(x->path, y->path));
		SAMPLE_CHECK(x->stream == y->stream);
		SAMPLE_CHECK(x->client_usage == y->client_usage);
		SAMPLE_CHECK(x->client_api == y->client_api);
		SAMPLE_CHECK(sample_bytes_eq(x->body, y->body));
		SAMPLE_CHECK(x->n_candidates == y->n_candidates);
		for (uint32_t i = 0; i < x->n_candidates; i++) {
			const pf_candidate *c = &x->candidates[i],
			                   *d = &y->candidates[i];

			SAMPLE_CHECK(c->channel_id == d->channel_id);
			SAMPLE_CHECK(c->type == d->type);
			SAMPLE_CHECK(sample_bytes_eq(c->base_url, d->base_url));
			SAMPLE_CHECK(sample_bytes_eq(c->key, d->key));
			SAMPLE_CHECK(sample_bytes_eq(c->proxy, d->proxy));
			SAMPLE_CHECK(sample_bytes_eq(
			    c->upstream_model, d->upstream_model));
			SAMPLE_CHECK(
			    c->connect_timeout_ms == d->connect_timeout_ms);
			SAMPLE_CHECK(c->first_byte_timeout_ms
			    == d->first_byte_timeout_ms);
			SAMPLE_CHECK(c->idle_timeout_ms == d->idle_timeout_ms);
			SAMPLE_CHECK(
			    c->total_timeout_ms == d->total_timeout_ms);
		}
		SAMPLE_CHECK(x->credit == y->credit);
		SAMPLE_CHECK(x->probe == y->probe);
		SAMPLE_CHECK(x->batch == y->batch);
		SAMPLE_CHECK(x->n_headers == y->n_headers);
		for (uint32_t i = 0; i < x->n_headers; i++) {
			SAMPLE_CHECK(sample_bytes_eq(
			    x->headers[i].name, y->headers[i].name));
			SAMPLE_CHECK(sample_bytes_eq(
			    x->headers[i].value, y->headers[i].value));
		}
		return 1;
	}
	case PF_MSG_RELAY_HEAD: {
		const pf_relay_head *x = &a->u.relay_head,
		                    *y = &b->u.relay_head;

		SAMPLE_CHECK(memcmp(x->id, y->id, PF_ID_LEN) == 0);
		SAMPLE_CHECK(x->status == y->status);
		SAMPLE_CHECK(sample_bytes_eq(x->content_type, y->content_type));
		SAMPLE_CHECK(x->channel_id == y->channel_id);
		SAMPLE_CHECK(x->attempts == y->attempts);
		SAMPLE_CHECK(sample_bytes_eq(x->ctl_addr, y->ctl_addr));
		return 1;
	}
	case PF_MSG_RELAY_DATA: {
		const pf_relay_data *x = &a->u.relay_data,
		                    *y = &b->u.relay_data;

		SAMPLE_CHECK(memcmp(x->id, y->id, PF_ID_LEN) == 0);
		SAMPLE_CHECK(x->seq == y->seq);
		SAMPLE_CHECK(sample_bytes_eq(x->data, y->data));
		SAMPLE_CHECK(x->completion == y->completion);
		return 1;
	}
	case PF_MSG_RELAY_END: {
		const pf_relay_end *x = &a->u.relay_end, *y = &b->u.relay_end;

		SAMPLE_CHECK(memcmp(x->id, y->id, PF_ID_LEN) == 0);
		SAMPLE_CHECK(x->seq == y->seq);
		SAMPLE_CHECK(x->reason == y->reason);
		SAMPLE_CHECK(x->upstream_status == y->upstream_status);
		SAMPLE_CHECK(x->channel_id == y->channel_id);
		if (!sample_tokens_eq(&x->usage, &y->usage, why, whylen))
			return 0;
		SAMPLE_CHECK(sample_bytes_eq(x->error, y->error));
		SAMPLE_CHECK(x->n_attempts == y->n_attempts);
		for (uint32_t i = 0; i < x->n_attempts; i++) {
			const pf_attempt *c = &x->attempt_list[i],
			                 *d = &y->attempt_list[i];

			SAMPLE_CHECK(c->channel_id == d->channel_id);
			SAMPLE_CHECK(c->status == d->status);
			SAMPLE_CHECK(c->outcome == d->outcome);
		}
		return 1;
	}
	case PF_MSG_RELAY_CANCEL:
		SAMPLE_CHECK(memcmp(a->u.relay_cancel.id, b->u.relay_cancel.id,
		                 PF_ID_LEN)
		    == 0);
		return 1;
	case PF_MSG_RELAY_CREDIT:
		SAMPLE_CHECK(memcmp(a->u.relay_credit.id, b->u.relay_credit.id,
		                 PF_ID_LEN)
		    == 0);
		SAMPLE_CHECK(
		    a->u.relay_credit.bytes == b->u.relay_credit.bytes);
		return 1;
	case PF_MSG_GRANT_REQUEST: {
		const pf_grant_request *x = &a->u.grant_request,
		                       *y = &b->u.grant_request;

		SAMPLE_CHECK(x->corr == y->corr);
		SAMPLE_CHECK(x->user_id == y->user_id);
		SAMPLE_CHECK(x->token_id == y->token_id);
		SAMPLE_CHECK(x->amount == y->amount);
		return 1;
	}
	case PF_MSG_GRANT_REPLY: {
		const pf_grant_reply *x = &a->u.grant_reply,
		                     *y = &b->u.grant_reply;

		SAMPLE_CHECK(x->corr == y->corr);
		SAMPLE_CHECK(x->user_id == y->user_id);
		SAMPLE_CHECK(x->token_id == y->token_id);
		SAMPLE_CHECK(x->granted == y->granted);
		SAMPLE_CHECK(x->expires_ms == y->expires_ms);
		SAMPLE_CHECK(x->status == y->status);
		SAMPLE_CHECK(x->epoch == y->epoch);
		return 1;
	}
	case PF_MSG_GRANT_RELEASE: {
		const pf_grant_release *x = &a->u.grant_release,
		                       *y = &b->u.grant_release;

		SAMPLE_CHECK(x->user_id == y->user_id);
		SAMPLE_CHECK(x->token_id == y->token_id);
		SAMPLE_CHECK(x->amount == y->amount);
		return 1;
	}
	case PF_MSG_USAGE:
		return sample_usage_eq(&a->u.usage, &b->u.usage, why, whylen);
	case PF_MSG_PAYMENT: {
		const pf_payment *x = &a->u.payment, *y = &b->u.payment;

		SAMPLE_CHECK(sample_bytes_eq(x->event_id, y->event_id));
		SAMPLE_CHECK(x->user_id == y->user_id);
		SAMPLE_CHECK(x->quota == y->quota);
		SAMPLE_CHECK(x->money == y->money);
		SAMPLE_CHECK(sample_bytes_eq(x->provider, y->provider));
		SAMPLE_CHECK(sample_bytes_eq(x->trade_no, y->trade_no));
		return 1;
	}
	case PF_MSG_ACK: {
		const pf_ack *x = &a->u.ack, *y = &b->u.ack;

		SAMPLE_CHECK(x->n_ids == y->n_ids);
		for (uint32_t i = 0; i < x->n_ids; i++)
			SAMPLE_CHECK(sample_bytes_eq(x->ids[i], y->ids[i]));
		return 1;
	}
	case PF_MSG_USAGE_BATCH: {
		const pf_usage_batch *x = &a->u.usage_batch,
		                     *y = &b->u.usage_batch;

		SAMPLE_CHECK(x->n_usages == y->n_usages);
		for (uint32_t i = 0; i < x->n_usages; i++) {
			if (!sample_usage_eq(
			        &x->usages[i], &y->usages[i], why, whylen))
				return 0;
		}
		return 1;
	}
	case PF_MSG_BALANCE: {
		const pf_balance *x = &a->u.balance, *y = &b->u.balance;

		SAMPLE_CHECK(x->user_id == y->user_id);
		SAMPLE_CHECK(x->token_id == y->token_id);
		SAMPLE_CHECK(x->quota == y->quota);
		SAMPLE_CHECK(x->unlimited == y->unlimited);
		SAMPLE_CHECK(x->at_ms == y->at_ms);
		return 1;
	}
	}
	SAMPLE_CHECK(!"unknown kind");
	return 0;
}

#endif /* PF_TESTS_MSG_SAMPLES_H */
