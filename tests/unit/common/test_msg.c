/*
 * test_msg.c -- the msgpack codec: round trips of every kind, and
 * rejection of truncated, oversized, mistyped and trailing input.
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/limits.h"
#include "common/msg.h"
#include "msg_samples.h"
#include "tests/tap.h"

static pf_err
decode_buf(const pf_buf *b, pf_msg **ret)
{
	return pf_msg_decode(b->data, b->len, ret);
}

static void
test_round_trips(void)
{
	for (size_t k = 0; k < SAMPLE_NKINDS; k++) {
		for (int v = 0; v < SAMPLE_VARIANTS; v++) {
			const char *name = pf_msg_kind_name(sample_kinds[k]);
			pf_msg m, *d = NULL;
			pf_buf b, b2;
			pf_msg_kind kind = 0;
			char why[256] = "";
			pf_err err;

			sample_msg(sample_kinds[k], v, &m);
			pf_buf_init(&b);
			pf_buf_init(&b2);
			err = pf_msg_encode(&m, &b);
			ok(err == PF_OK, "%s/%d encodes (%s)", name, v,
			    pf_strerror(err));
			err = decode_buf(&b, &d);
			ok(err == PF_OK, "%s/%d decodes (%s)", name, v,
			    pf_strerror(err));
			if (err != PF_OK) {
				pf_buf_fini(&b);
				continue;
			}
			ok(d->version == PF_MSG_VERSION && d->kind == m.kind,
			    "%s/%d version and kind", name, v);
			ok(msg_equal(&m, d, why, sizeof(why)),
			    "%s/%d all fields equal %s", name, v, why);
			err = pf_msg_encode(d, &b2);
			ok(err == PF_OK && b2.len == b.len
			        && memcmp(b.data, b2.data, b.len) == 0,
			    "%s/%d re-encodes byte-identical", name, v);
			err = pf_msg_peek_kind(b.data, b.len, &kind);
			ok(err == PF_OK && kind == m.kind, "%s/%d peek kind",
			    name, v);
			pf_msg_free(d);
			pf_buf_fini(&b);
			pf_buf_fini(&b2);
		}
	}
}

/* An absent field ({NULL, 0}, as msg.h allows) encodes as empty. */
static void
test_absent_fields(void)
{
	pf_msg m, *d = NULL;
	pf_buf b;
	pf_err err;

	memset(&m, 0, sizeof(m));
	m.kind = PF_MSG_RELAY_END;
	m.u.relay_end.reason = PF_END_DONE;
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_OK, "relay.end with NULL error field encodes (%s)",
	    pf_strerror(err));
	err = decode_buf(&b, &d);
	ok(err == PF_OK && d->u.relay_end.error.len == 0,
	    "and decodes with an empty error");
	pf_msg_free(d);
	pf_buf_fini(&b);
}

/* Decoded byte strings carry a NUL after len, and empty ones are "". */
static void
test_nul_terminated(void)
{
	pf_msg m, *d = NULL;
	pf_buf b;
	pf_err err;

	sample_msg(PF_MSG_RELAY_REQUEST, 0, &m);
	m.u.relay_request.method = sample_b("");
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_OK, "encode request");
	err = decode_buf(&b, &d);
	ok(err == PF_OK, "decode request");
	if (err == PF_OK) {
		const pf_relay_request *r = &d->u.relay_request;

		ok(r->path.ptr[r->path.len] == '\0'
		        && r->candidates[1]
		                .proxy.ptr[r->candidates[1].proxy.len]
		            == '\0',
		    "bytes are NUL-terminated");
		ok(r->method.ptr != NULL && r->method.ptr[0] == '\0',
		    "empty bytes point at \"\"");
		ok(strcmp((const char *)r->candidates[0].base_url.ptr,
		       "http://127.0.0.1:9000/v1")
		        == 0,
		    "candidate base_url usable as a C string");
		pf_msg_free(d);
	}
	pf_buf_fini(&b);
}

static void
test_truncation(void)
{
	for (size_t k = 0; k < SAMPLE_NKINDS; k++) {
		pf_msg m, *d = NULL;
		pf_buf b;
		size_t bad = 0;
		pf_err err;

		sample_msg(sample_kinds[k], 1, &m);
		pf_buf_init(&b);
		err = pf_msg_encode(&m, &b);
		if (err != PF_OK) {
			ok(0, "encode %s", pf_msg_kind_name(sample_kinds[k]));
			continue;
		}
		/* copy each prefix to its own allocation so ASan sees
		 * any read past the end */
		for (size_t n = 0; n < b.len; n++) {
			uint8_t *p = malloc(n ? n : 1);

			memcpy(p, b.data, n);
			d = NULL;
			err = pf_msg_decode(p, n, &d);
			if (err != PF_EPROTO || d != NULL)
				bad++;
			free(p);
		}
		ok(bad == 0, "%s: all %zu prefixes rejected with EPROTO",
		    pf_msg_kind_name(sample_kinds[k]), b.len);
		pf_buf_fini(&b);
	}
}

static void
test_trailing_and_version(void)
{
	pf_msg m, *d = NULL;
	pf_buf b;
	pf_err err;
	pf_msg_kind kind;

	sample_msg(PF_MSG_GRANT_REQUEST, 0, &m);
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_OK, "encode grant.request");
	/* [1, 10, ...] as fixarray: b.data[1] is the version */
	ok(b.data[0] == 0x96 && b.data[1] == 0x01 && b.data[2] == 10,
	    "wire header is [1, 10, ...] (%02x %02x %02x)", b.data[0],
	    b.data[1], b.data[2]);

	b.data[b.len] = 0xc0; /* cap >= 256 */
	err = pf_msg_decode(b.data, b.len + 1, &d);
	ok(err == PF_EPROTO, "trailing byte rejected (%s)", pf_strerror(err));

	b.data[1] = 0x02;
	err = pf_msg_decode(b.data, b.len, &d);
	ok(err == PF_EVERSION, "version 2 -> EVERSION (%s)", pf_strerror(err));
	err = pf_msg_peek_kind(b.data, b.len, &kind);
	ok(err == PF_EVERSION, "peek: version 2 -> EVERSION");
	b.data[1] = 0x00;
	err = pf_msg_decode(b.data, b.len, &d);
	ok(err == PF_EVERSION, "version 0 -> EVERSION");
	b.data[1] = 0xc0; /* nil */
	err = pf_msg_decode(b.data, b.len, &d);
	ok(err == PF_EPROTO, "nil version -> EPROTO");
	b.data[1] = 0x01;
	b.data[2] = 9; /* no such kind */
	err = pf_msg_decode(b.data, b.len, &d);
	ok(err == PF_EPROTO, "unknown kind -> EPROTO");
	err = pf_msg_peek_kind(b.data, b.len, &kind);
	ok(err == PF_EPROTO, "peek: unknown kind -> EPROTO");
	ok(d == NULL, "ret_msg untouched on errors");
	pf_buf_fini(&b);

	m.kind = (pf_msg_kind)77;
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_EINVAL && b.len == 0, "encode unknown kind -> EINVAL");
	pf_buf_fini(&b);
	sample_msg(PF_MSG_USAGE_BATCH, 1, &m);
	m.u.usage_batch.n_usages = PF_USAGE_BATCH_MAX + 1;
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_ETOOBIG && b.len == 0,
	    "usage.batch over PF_USAGE_BATCH_MAX -> ETOOBIG");
	pf_buf_fini(&b);
	ok(strcmp(pf_msg_kind_name(PF_MSG_ACK), "ack") == 0
	        && strcmp(pf_msg_kind_name(PF_MSG_BALANCE), "balance") == 0
	        && strcmp(
	               pf_msg_kind_name(PF_MSG_RELAY_REQUEST), "relay.request")
	            == 0
	        && strcmp(pf_msg_kind_name((pf_msg_kind)77), "unknown") == 0,
	    "kind names");
}

/* Builds messages by hand with msgpack-c's packer. */
struct raw {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void
raw_init(struct raw *r, uint32_t n, int kind)
{
	msgpack_sbuffer_init(&r->sb);
	msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
	msgpack_pack_array(&r->pk, n);
	msgpack_pack_int(&r->pk, PF_MSG_VERSION);
	msgpack_pack_int(&r->pk, kind);
}

static pf_err
raw_decode(struct raw *r)
{
	pf_msg *d = NULL;
	pf_err err = pf_msg_decode(r->sb.data, r->sb.size, &d);

	pf_msg_free(d);
	msgpack_sbuffer_destroy(&r->sb);
	return err;
}

static void
test_fields(void)
{
	struct raw r;
	pf_msg *d = NULL;
	pf_err err;

	/* extra trailing fields from a newer peer are accepted */
	raw_init(&r, 7, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_int(&r.pk, 2);
	msgpack_pack_int(&r.pk, 3);
	msgpack_pack_str(&r.pk, 3);
	msgpack_pack_str_body(&r.pk, "new", 3);
	msgpack_pack_map(&r.pk, 1);
	msgpack_pack_nil(&r.pk);
	msgpack_pack_double(&r.pk, 1.5);
	err = pf_msg_decode(r.sb.data, r.sb.size, &d);
	ok(err == PF_OK && d->u.grant_release.user_id == 1
	        && d->u.grant_release.token_id == 2
	        && d->u.grant_release.amount == 3,
	    "extra trailing fields accepted (%s)", pf_strerror(err));
	pf_msg_free(d);
	msgpack_sbuffer_destroy(&r.sb);

	raw_init(&r, 4, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_int(&r.pk, 2);
	ok(raw_decode(&r) == PF_EPROTO, "short array -> EPROTO");

	raw_init(&r, 5, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_str(&r.pk, 1);
	msgpack_pack_str_body(&r.pk, "2", 1);
	msgpack_pack_int(&r.pk, 3);
	ok(raw_decode(&r) == PF_EPROTO, "str for an integer -> EPROTO");

	raw_init(&r, 5, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_double(&r.pk, 2.0);
	msgpack_pack_int(&r.pk, 3);
	ok(raw_decode(&r) == PF_EPROTO, "float for an integer -> EPROTO");

	raw_init(&r, 5, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_uint64(&r.pk, (uint64_t)INT64_MAX + 1);
	msgpack_pack_int(&r.pk, 3);
	ok(raw_decode(&r) == PF_EPROTO, "int64 overflow -> EPROTO");

	raw_init(&r, 6, PF_MSG_GRANT_REQUEST);
	msgpack_pack_int(&r.pk, -1); /* corr is uint64 */
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_int(&r.pk, 2);
	msgpack_pack_int(&r.pk, 3);
	ok(raw_decode(&r) == PF_EPROTO, "negative uint64 -> EPROTO");

	raw_init(&r, 5, PF_MSG_RELAY_DATA);
	msgpack_pack_bin(&r.pk, 15);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 15);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_bin(&r.pk, 0);
	ok(raw_decode(&r) == PF_EPROTO, "15-byte id -> EPROTO");

	raw_init(&r, 5, PF_MSG_RELAY_DATA);
	msgpack_pack_str(&r.pk, 16);
	msgpack_pack_str_body(&r.pk, sample_id_a, 16);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_bin(&r.pk, 0);
	ok(raw_decode(&r) == PF_EPROTO, "id as str -> EPROTO");

	raw_init(&r, 5, PF_MSG_RELAY_DATA);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	msgpack_pack_uint64(&r.pk, (uint64_t)UINT32_MAX + 1);
	msgpack_pack_bin(&r.pk, 0);
	ok(raw_decode(&r) == PF_EPROTO, "uint32 overflow -> EPROTO");

	raw_init(&r, 5, PF_MSG_RELAY_DATA);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_str(&r.pk, 0);
	ok(raw_decode(&r) == PF_EPROTO, "str for a bin field -> EPROTO");

	raw_init(&r, 8, PF_MSG_PAYMENT);
	{
		char ev[PF_EVENT_ID_MAX + 1];
		memset(ev, 'e', sizeof(ev));
		msgpack_pack_str(&r.pk, sizeof(ev));
		msgpack_pack_str_body(&r.pk, ev, sizeof(ev));
	}
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_str(&r.pk, 0);
	msgpack_pack_str(&r.pk, 0);
	ok(raw_decode(&r) == PF_ETOOBIG, "event id over its cap -> ETOOBIG");

	/* usage tokens must be a nested array of 4 */
	raw_init(&r, 9, PF_MSG_RELAY_END);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_array(&r.pk, 3);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_int(&r.pk, 2);
	msgpack_pack_int(&r.pk, 3);
	msgpack_pack_str(&r.pk, 0);
	ok(raw_decode(&r) == PF_EPROTO, "short usage tokens -> EPROTO");

	/* PF_RELAY_MAX_CANDIDATES + 1 candidates */
	raw_init(&r, 12, PF_MSG_RELAY_REQUEST);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	msgpack_pack_str(&r.pk, 0);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_str(&r.pk, 0);
	msgpack_pack_str(&r.pk, 0);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_int(&r.pk, 0);
	msgpack_pack_int(&r.pk, 1);
	msgpack_pack_bin(&r.pk, 0);
	msgpack_pack_array(&r.pk, PF_RELAY_MAX_CANDIDATES + 1);
	for (unsigned i = 0; i < PF_RELAY_MAX_CANDIDATES + 1; i++) {
		msgpack_pack_array(&r.pk, 10);
		msgpack_pack_int(&r.pk, 1);
		msgpack_pack_int(&r.pk, 1);
		for (int j = 0; j < 4; j++)
			msgpack_pack_str(&r.pk, 0);
		for (int j = 0; j < 4; j++)
			msgpack_pack_int(&r.pk, 0);
	}
	ok(raw_decode(&r) == PF_ETOOBIG, "17 candidates -> ETOOBIG");
}

/* Optional fields (added later) may be missing: an older peer's relay
 * messages still decode, with zero / "" / empty lists. */
static void
test_optional_fields(void)
{
	struct raw r;
	pf_msg *d = NULL;
	pf_err err;

	raw_init(&r, 7, PF_MSG_RELAY_HEAD);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	msgpack_pack_int(&r.pk, 200);
	msgpack_pack_str(&r.pk, 0);
	msgpack_pack_int(&r.pk, 7);
	msgpack_pack_int(&r.pk, 1);
	err = pf_msg_decode(r.sb.data, r.sb.size, &d);
	ok(err == PF_OK && d->u.relay_head.channel_id == 7
	        && d->u.relay_head.ctl_addr.len == 0
	        && d->u.relay_head.ctl_addr.ptr != NULL
	        && d->u.relay_head.ctl_addr.ptr[0] == '\0',
	    "old relay.head: ctl_addr is \"\" (%s)", pf_strerror(err));
	pf_msg_free(d);
	d = NULL;
	msgpack_sbuffer_destroy(&r.sb);

	raw_init(&r, 9, PF_MSG_RELAY_END);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	for (int i = 0; i < 4; i++)
		msgpack_pack_int(&r.pk, i);
	msgpack_pack_array(&r.pk, 4);
	for (int i = 0; i < 4; i++)
		msgpack_pack_int(&r.pk, 0);
	msgpack_pack_str(&r.pk, 0);
	err = pf_msg_decode(r.sb.data, r.sb.size, &d);
	ok(err == PF_OK && d->u.relay_end.n_attempts == 0
	        && d->u.relay_end.channel_id == 3,
	    "old relay.end: no attempts (%s)", pf_strerror(err));
	pf_msg_free(d);
	d = NULL;
	msgpack_sbuffer_destroy(&r.sb);

	raw_init(&r, 5, PF_MSG_RELAY_DATA);
	msgpack_pack_bin(&r.pk, 16);
	msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
	msgpack_pack_int(&r.pk, 4);
	msgpack_pack_bin(&r.pk, 1);
	msgpack_pack_bin_body(&r.pk, "x", 1);
	err = pf_msg_decode(r.sb.data, r.sb.size, &d);
	ok(err == PF_OK && d->u.relay_data.seq == 4
	        && d->u.relay_data.completion == 0,
	    "old relay.data: completion 0 (%s)", pf_strerror(err));
	pf_msg_free(d);
	d = NULL;
	msgpack_sbuffer_destroy(&r.sb);
	/* grant.reply without the epoch (an older accountant), and with */
	for (int extra = 0; extra < 2; extra++) {
		pf_msg m, *d2 = NULL;
		pf_buf b;

		raw_init(&r, (uint32_t)(8 + extra), PF_MSG_GRANT_REPLY);
		msgpack_pack_uint64(&r.pk, 7);
		msgpack_pack_int(&r.pk, 1);
		msgpack_pack_int(&r.pk, 2);
		msgpack_pack_int(&r.pk, 300);
		msgpack_pack_int64(&r.pk, 1764115200000);
		msgpack_pack_int(&r.pk, 0);
		if (extra)
			msgpack_pack_uint64(&r.pk, UINT64_MAX - 1);
		err = pf_msg_decode(r.sb.data, r.sb.size, &d);
		ok(err == PF_OK && d->u.grant_reply.granted == 300
		        && d->u.grant_reply.expires_ms == 1764115200000
		        && d->u.grant_reply.epoch
		            == (extra ? UINT64_MAX - 1 : 0),
		    "grant.reply %s epoch (%s)", extra ? "with" : "without",
		    pf_strerror(err));
		/* round trip: the epoch (0 when absent) survives */
		memset(&m, 0, sizeof(m));
		if (err == PF_OK)
			m = *d;
		pf_buf_init(&b);
		err = err == PF_OK ? pf_msg_encode(&m, &b) : err;
		if (err == PF_OK)
			err = pf_msg_decode(b.data, b.len, &d2);
		ok(err == PF_OK && d2->kind == PF_MSG_GRANT_REPLY
		        && d2->u.grant_reply.epoch == m.u.grant_reply.epoch
		        && d2->u.grant_reply.granted == 300,
		    "grant.reply %s epoch round-trips (%s)",
		    extra ? "with" : "without", pf_strerror(err));
		pf_msg_free(d2);
		pf_buf_fini(&b);
		pf_msg_free(d);
		d = NULL;
		msgpack_sbuffer_destroy(&r.sb);
	}

	/* relay.request without credit/probe/headers, and with only credit */
	for (int extra = 0; extra < 2; extra++) {
		raw_init(&r, (uint32_t)(12 + extra), PF_MSG_RELAY_REQUEST);
		msgpack_pack_bin(&r.pk, 16);
		msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
		msgpack_pack_str(&r.pk, 0);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_str(&r.pk, 0);
		msgpack_pack_str(&r.pk, 0);
		msgpack_pack_int(&r.pk, 1);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_int(&r.pk, 1);
		msgpack_pack_bin(&r.pk, 0);
		msgpack_pack_array(&r.pk, 0);
		if (extra)
			msgpack_pack_int(&r.pk, 4096);
		err = pf_msg_decode(r.sb.data, r.sb.size, &d);
		ok(err == PF_OK && d->u.relay_request.stream == 1
		        && d->u.relay_request.credit == (extra ? 4096u : 0u)
		        && d->u.relay_request.probe == 0
		        && d->u.relay_request.n_headers == 0,
		    "relay.request with %d of 3 optional fields (%s)", extra,
		    pf_strerror(err));
		pf_msg_free(d);
		d = NULL;
		msgpack_sbuffer_destroy(&r.sb);
	}

	/* a header that is not a [name, value] pair, and one too long */
	for (int bad = 0; bad < 2; bad++) {
		char name[PF_RELAY_HEADER_NAME_MAX + 1];

		memset(name, 'x', sizeof(name));
		raw_init(&r, 15, PF_MSG_RELAY_REQUEST);
		msgpack_pack_bin(&r.pk, 16);
		msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
		msgpack_pack_str(&r.pk, 0);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_str(&r.pk, 0);
		msgpack_pack_str(&r.pk, 0);
		msgpack_pack_int(&r.pk, 1);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_int(&r.pk, 1);
		msgpack_pack_bin(&r.pk, 0);
		msgpack_pack_array(&r.pk, 0);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_array(&r.pk, 1);
		if (bad == 0) {
			msgpack_pack_array(&r.pk, 1);
			msgpack_pack_str(&r.pk, 1);
			msgpack_pack_str_body(&r.pk, "a", 1);
		} else {
			msgpack_pack_array(&r.pk, 2);
			msgpack_pack_str(&r.pk, sizeof(name));
			msgpack_pack_str_body(&r.pk, name, sizeof(name));
			msgpack_pack_str(&r.pk, 0);
		}
		err = raw_decode(&r);
		ok(err == (bad == 0 ? PF_EPROTO : PF_ETOOBIG),
		    "header %s -> %s",
		    bad == 0 ? "without value" : "name too long",
		    pf_strerror(err));
	}
}

static void
test_oversized(void)
{
	static const uint8_t huge_array[]
	    = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t huge_inner[]
	    = { 0x93, 0x01, 0x16, 0xdd, 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t huge_bin[]
	    = { 0x93, 0x01, 0x03, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00 };
	static const uint8_t huge_str[]
	    = { 0x93, 0x01, 0x03, 0xdb, 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t huge_map[]
	    = { 0x93, 0x01, 0x03, 0xdf, 0x10, 0x00, 0x00, 0x00, 0x01 };
	static const uint8_t huge_ext[]
	    = { 0x93, 0x01, 0x03, 0xc9, 0xff, 0xff, 0xff, 0xf0, 0x01 };
	static const uint8_t unused_c1[] = { 0x93, 0x01, 0x03, 0xc1 };
	static const uint8_t not_array[] = { 0x81, 0x01, 0x03 };
	pf_msg *d = NULL;
	uint8_t *p;
	pf_msg_kind kind;
	size_t n;
	pf_err err;

	ok(pf_msg_decode(huge_array, sizeof(huge_array), &d) == PF_EPROTO,
	    "array32 of 4G entries in 6 bytes -> EPROTO, no allocation");
	ok(pf_msg_decode(huge_inner, sizeof(huge_inner), &d) == PF_EPROTO,
	    "inner array32 huge -> EPROTO");
	ok(pf_msg_decode(huge_bin, sizeof(huge_bin), &d) == PF_EPROTO,
	    "bin32 of 4 GB -> EPROTO");
	ok(pf_msg_decode(huge_str, sizeof(huge_str), &d) == PF_EPROTO,
	    "str32 of 2 GB -> EPROTO");
	ok(pf_msg_decode(huge_map, sizeof(huge_map), &d) == PF_EPROTO,
	    "map32 huge -> EPROTO");
	ok(pf_msg_decode(huge_ext, sizeof(huge_ext), &d) == PF_EPROTO,
	    "ext32 huge -> EPROTO");
	ok(pf_msg_decode(unused_c1, sizeof(unused_c1), &d) == PF_EPROTO,
	    "0xc1 -> EPROTO");
	ok(pf_msg_decode(not_array, sizeof(not_array), &d) == PF_EPROTO,
	    "map at the top -> EPROTO");
	ok(pf_msg_decode("", 0, &d) == PF_EPROTO, "empty -> EPROTO");
	ok(pf_msg_peek_kind(huge_array, sizeof(huge_array), &kind) == PF_EPROTO,
	    "peek of a one-element header -> EPROTO");
	ok(pf_msg_decode(huge_array, (size_t)PF_MSG_MAX + 1, &d) == PF_ETOOBIG,
	    "length over PF_MSG_MAX -> ETOOBIG before reading");

	/* an array with more than PF_MSG_ARRAY_MAX real entries */
	n = 3 + 5 + PF_MSG_ARRAY_MAX + 1;
	p = calloc(1, n); /* zeros are fixint 0 */
	p[0] = 0x93;
	p[1] = 0x01;
	p[2] = 0x03;
	p[3] = 0xdd;
	p[4] = 0;
	p[5] = 0;
	p[6] = (PF_MSG_ARRAY_MAX + 1) >> 8;
	p[7] = (PF_MSG_ARRAY_MAX + 1) & 0xff;
	err = pf_msg_decode(p, n, &d);
	ok(err == PF_ETOOBIG, "array over PF_MSG_ARRAY_MAX -> ETOOBIG (%s)",
	    pf_strerror(err));
	free(p);

	/* nesting one deeper than PF_MSG_MAX_DEPTH */
	n = 3 + PF_MSG_MAX_DEPTH;
	p = calloc(1, n + 1);
	p[0] = 0x94;
	p[1] = 0x01;
	p[2] = 0x03;
	for (size_t i = 3; i < n; i++)
		p[i] = 0x91;
	p[n] = 0xc0;
	err = pf_msg_decode(p, n + 1, &d);
	ok(err == PF_ETOOBIG, "depth %u -> ETOOBIG (%s)", PF_MSG_MAX_DEPTH + 1,
	    pf_strerror(err));
	free(p);

	/* too many objects overall, each array within its cap */
	{
		struct raw r;
		raw_init(&r, 2 + 4, PF_MSG_RELAY_CANCEL);
		msgpack_pack_bin(&r.pk, 16);
		msgpack_pack_bin_body(&r.pk, sample_id_a, 16);
		for (int i = 0; i < 3; i++) {
			msgpack_pack_array(&r.pk, PF_MSG_ARRAY_MAX);
			for (unsigned j = 0; j < PF_MSG_ARRAY_MAX; j++)
				msgpack_pack_nil(&r.pk);
		}
		ok(raw_decode(&r) == PF_ETOOBIG,
		    "more than PF_MSG_OBJECTS_MAX objects -> ETOOBIG");
	}
	ok(d == NULL, "ret_msg untouched");
}

static void
test_encode_limits(void)
{
	pf_msg m, *d = NULL;
	pf_buf b;
	pf_bytes *ids;
	char *id;
	pf_err err;

	/* the largest ack allowed round-trips */
	memset(&m, 0, sizeof(m));
	m.kind = PF_MSG_ACK;
	ids = calloc(PF_MSG_ARRAY_MAX + 1, sizeof(*ids));
	id = malloc(PF_EVENT_ID_MAX + 1);
	memset(id, 'e', PF_EVENT_ID_MAX + 1);
	for (unsigned i = 0; i <= PF_MSG_ARRAY_MAX; i++)
		ids[i] = sample_bn(id, PF_EVENT_ID_MAX);
	m.u.ack.ids = ids;
	m.u.ack.n_ids = PF_MSG_ARRAY_MAX;
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_OK, "ack with PF_MSG_ARRAY_MAX ids encodes");
	err = decode_buf(&b, &d);
	ok(err == PF_OK && d->u.ack.n_ids == PF_MSG_ARRAY_MAX
	        && d->u.ack.ids[PF_MSG_ARRAY_MAX - 1].len == PF_EVENT_ID_MAX,
	    "and decodes (%s)", pf_strerror(err));
	pf_msg_free(d);

	/* a failing encode leaves earlier content alone */
	{
		size_t before = b.len;
		m.u.ack.n_ids = PF_MSG_ARRAY_MAX + 1;
		err = pf_msg_encode(&m, &b);
		ok(err == PF_ETOOBIG && b.len == before,
		    "too many ids -> ETOOBIG, out->len unchanged");
		m.u.ack.n_ids = 2;
		ids[1] = sample_bn(id, PF_EVENT_ID_MAX + 1);
		err = pf_msg_encode(&m, &b);
		ok(err == PF_ETOOBIG && b.len == before,
		    "id over PF_EVENT_ID_MAX -> ETOOBIG, out->len unchanged");
		ids[1] = sample_bn(NULL, 3);
		err = pf_msg_encode(&m, &b);
		ok(err == PF_EINVAL && b.len == before,
		    "NULL bytes with len -> EINVAL");
	}
	pf_buf_fini(&b);
	free(ids);
	free(id);

	/* a body at the cap round-trips; one byte more does not encode */
	{
		uint8_t *body = malloc(PF_MSG_STR_MAX + 1);

		memset(body, 'x', PF_MSG_STR_MAX + 1);
		sample_msg(PF_MSG_RELAY_DATA, 0, &m);
		m.u.relay_data.data = sample_bn(body, PF_MSG_STR_MAX);
		pf_buf_init(&b);
		err = pf_msg_encode(&m, &b);
		ok(err == PF_OK, "data of PF_MSG_STR_MAX bytes encodes");
		err = decode_buf(&b, &d);
		ok(err == PF_OK && d->u.relay_data.data.len == PF_MSG_STR_MAX
		        && d->u.relay_data.data.ptr[PF_MSG_STR_MAX - 1] == 'x',
		    "and decodes");
		pf_msg_free(d);
		pf_buf_fini(&b);
		m.u.relay_data.data = sample_bn(body, PF_MSG_STR_MAX + 1);
		err = pf_msg_encode(&m, &b);
		ok(err == PF_ETOOBIG && b.len == 0, "one more byte -> ETOOBIG");
		pf_buf_fini(&b);
		free(body);
	}

	sample_msg(PF_MSG_RELAY_REQUEST, 0, &m);
	m.u.relay_request.n_candidates = PF_RELAY_MAX_CANDIDATES + 1;
	pf_buf_init(&b);
	err = pf_msg_encode(&m, &b);
	ok(err == PF_ETOOBIG && b.len == 0, "17 candidates -> ETOOBIG");
	pf_buf_fini(&b);
	pf_msg_free(NULL);
	pf_buf_fini(NULL);
	ok(1, "pf_msg_free(NULL), pf_buf_fini(NULL) are no-ops");
}

/* Deterministic garbage must never crash or leak (ASan checks). */
static void
test_garbage(void)
{
	uint64_t s = 0x9e3779b97f4a7c15u;
	unsigned accepted = 0;

	for (int i = 0; i < 20000; i++) {
		uint8_t buf[64];
		size_t n;
		pf_msg *d = NULL;

		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		n = s % sizeof(buf);
		for (size_t j = 0; j < n; j++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			buf[j] = (uint8_t)s;
		}
		if (n > 0 && i % 2)
			buf[0] = (uint8_t)(0x90 | (s & 0x0f)); /* an array */
		if (n > 1 && i % 4 == 1)
			buf[1] = 0x01;
		if (pf_msg_decode(buf, n, &d) == PF_OK) {
			accepted++;
			pf_msg_free(d);
		}
	}
	ok(1, "20000 garbage inputs survived (%u accepted)", accepted);
}

/* Several messages back to back (a packed reply): pf_msg_split measures
 * each, and refuses a cut or non-message prefix. */
static void
test_split(void)
{
	pf_buf b;
	size_t lens[3], off = 0, n = 0;
	pf_msg m;
	pf_err err;
	int all = 1;

	pf_buf_init(&b);
	for (int i = 0; i < 3; i++) {
		size_t before = b.len;

		sample_msg(
		    i == 1 ? PF_MSG_RELAY_DATA : PF_MSG_RELAY_HEAD, i % 2, &m);
		err = pf_msg_encode(&m, &b);
		all = all && err == PF_OK;
		lens[i] = b.len - before;
	}
	ok(all, "split: three messages encoded back to back");
	for (int i = 0; i < 3; i++) {
		pf_msg *d = NULL;

		err = pf_msg_split(b.data + off, b.len - off, &n);
		ok(err == PF_OK && n == lens[i],
		    "split: message %d measured "
		    "(%zu of %zu bytes)",
		    i, n, lens[i]);
		if (err != PF_OK)
			break;
		err = pf_msg_decode(b.data + off, n, &d);
		ok(err == PF_OK, "split: message %d decodes alone", i);
		pf_msg_free(d);
		off += n;
	}
	n = 12345;
	err = pf_msg_split(b.data, lens[0] - 1, &n);
	ok(err == PF_EPROTO && n == 12345,
	    "split: a cut message is refused, *ret_len untouched");
	err = pf_msg_split("\x01\x02", 2, &n);
	ok(err == PF_EPROTO, "split: a non-array is refused");
	err = pf_msg_split(b.data, 0, &n);
	ok(err == PF_EPROTO, "split: nothing is refused");
	pf_buf_fini(&b);
}

int
main(void)
{
	test_round_trips();
	test_split();
	test_absent_fields();
	test_nul_terminated();
	test_truncation();
	test_trailing_and_version();
	test_fields();
	test_optional_fields();
	test_oversized();
	test_encode_limits();
	test_garbage();
	return tap_done();
}
