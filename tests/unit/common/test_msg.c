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

/* One hand-packed field; a list of them ends at the first RAW_END. */
enum raw_type {
	RAW_END,
	RAW_INT,    /* i */
	RAW_UINT,   /* u, as uint64 */
	RAW_STR,    /* s (NUL-terminated) */
	RAW_BIN,    /* s */
	RAW_ID,     /* bin of the first n bytes of sample_id_a */
	RAW_ID_STR, /* str of the 16 bytes of sample_id_a */
	RAW_FILL,   /* str of n bytes of 'c' */
	RAW_ARRAY,  /* array header of n */
	RAW_MAP,    /* map header of n */
	RAW_NIL,
	RAW_DOUBLE, /* f */
};

struct raw_field {
	enum raw_type t;
	int64_t i;
	uint64_t u;
	size_t n;
	const char *s;
	char c;
	double f;
};

#define RI(v)                                                                  \
	{                                                                      \
		.t = RAW_INT, .i = (v)                                         \
	}
#define RU(v)                                                                  \
	{                                                                      \
		.t = RAW_UINT, .u = (v)                                        \
	}
#define RS(v)                                                                  \
	{                                                                      \
		.t = RAW_STR, .s = (v)                                         \
	}
#define RB(v)                                                                  \
	{                                                                      \
		.t = RAW_BIN, .s = (v)                                         \
	}
#define RID                                                                    \
	{                                                                      \
		.t = RAW_ID, .n = PF_ID_LEN                                    \
	}
#define RID_N(len)                                                             \
	{                                                                      \
		.t = RAW_ID, .n = (len)                                        \
	}
#define RID_STR                                                                \
	{                                                                      \
		.t = RAW_ID_STR                                                \
	}
#define RFILL(ch, len)                                                         \
	{                                                                      \
		.t = RAW_FILL, .c = (ch), .n = (len)                           \
	}
#define RA(len)                                                                \
	{                                                                      \
		.t = RAW_ARRAY, .n = (len)                                     \
	}
#define RMAP(len)                                                              \
	{                                                                      \
		.t = RAW_MAP, .n = (len)                                       \
	}
#define RNIL                                                                   \
	{                                                                      \
		.t = RAW_NIL                                                   \
	}
#define RF(v)                                                                  \
	{                                                                      \
		.t = RAW_DOUBLE, .f = (v)                                      \
	}

#define RAW_FIELDS_MAX 20

static void
raw_pack(struct raw *r, const struct raw_field *f)
{
	for (size_t k = 0; k < RAW_FIELDS_MAX && f[k].t != RAW_END; k++) {
		const struct raw_field *x = &f[k];

		switch (x->t) {
		case RAW_INT:
			msgpack_pack_int64(&r->pk, x->i);
			break;
		case RAW_UINT:
			msgpack_pack_uint64(&r->pk, x->u);
			break;
		case RAW_STR:
			msgpack_pack_str(&r->pk, strlen(x->s));
			msgpack_pack_str_body(&r->pk, x->s, strlen(x->s));
			break;
		case RAW_BIN:
			msgpack_pack_bin(&r->pk, strlen(x->s));
			msgpack_pack_bin_body(&r->pk, x->s, strlen(x->s));
			break;
		case RAW_ID:
			msgpack_pack_bin(&r->pk, x->n);
			msgpack_pack_bin_body(&r->pk, sample_id_a, x->n);
			break;
		case RAW_ID_STR:
			msgpack_pack_str(&r->pk, PF_ID_LEN);
			msgpack_pack_str_body(&r->pk, sample_id_a, PF_ID_LEN);
			break;
		case RAW_FILL:
			msgpack_pack_str(&r->pk, x->n);
			for (size_t j = 0; j < x->n; j++)
				msgpack_pack_str_body(&r->pk, &x->c, 1);
			break;
		case RAW_ARRAY:
			msgpack_pack_array(&r->pk, x->n);
			break;
		case RAW_MAP:
			msgpack_pack_map(&r->pk, x->n);
			break;
		case RAW_NIL:
			msgpack_pack_nil(&r->pk);
			break;
		case RAW_DOUBLE:
			msgpack_pack_double(&r->pk, x->f);
			break;
		case RAW_END:
			break;
		}
	}
}

/* The fields of a relay.request up to its candidates, candidates empty. */
#define RAW_REQUEST_HEAD                                                       \
	RID, RS(""), RI(0), RS(""), RS(""), RI(1), RI(0), RI(1), RB(""), RA(0)

/* Hand-built messages the decoder must refuse. */
static const struct raw_bad {
	uint32_t n; /* array length in the header */
	int kind;
	struct raw_field f[RAW_FIELDS_MAX];
	pf_err want;
	const char *name;
} raw_bad[] = {
	{ 4, PF_MSG_GRANT_RELEASE, { RI(1), RI(2) }, PF_EPROTO,
	    "short array -> EPROTO" },
	{ 5, PF_MSG_GRANT_RELEASE, { RI(1), RS("2"), RI(3) }, PF_EPROTO,
	    "str for an integer -> EPROTO" },
	{ 5, PF_MSG_GRANT_RELEASE, { RI(1), RF(2.0), RI(3) }, PF_EPROTO,
	    "float for an integer -> EPROTO" },
	{ 5, PF_MSG_GRANT_RELEASE,
	    { RI(1), RU((uint64_t)INT64_MAX + 1), RI(3) }, PF_EPROTO,
	    "int64 overflow -> EPROTO" },
	/* corr is uint64 */
	{ 6, PF_MSG_GRANT_REQUEST, { RI(-1), RI(1), RI(2), RI(3) }, PF_EPROTO,
	    "negative uint64 -> EPROTO" },
	{ 5, PF_MSG_RELAY_DATA, { RID_N(15), RI(0), RB("") }, PF_EPROTO,
	    "15-byte id -> EPROTO" },
	{ 5, PF_MSG_RELAY_DATA, { RID_STR, RI(0), RB("") }, PF_EPROTO,
	    "id as str -> EPROTO" },
	{ 5, PF_MSG_RELAY_DATA, { RID, RU((uint64_t)UINT32_MAX + 1), RB("") },
	    PF_EPROTO, "uint32 overflow -> EPROTO" },
	{ 5, PF_MSG_RELAY_DATA, { RID, RI(0), RS("") }, PF_EPROTO,
	    "str for a bin field -> EPROTO" },
	{ 8, PF_MSG_PAYMENT,
	    { RFILL('e', PF_EVENT_ID_MAX + 1), RI(1), RI(1), RI(1), RS(""),
	        RS("") },
	    PF_ETOOBIG, "event id over its cap -> ETOOBIG" },
	/* usage tokens must be a nested array of 4 */
	{ 9, PF_MSG_RELAY_END,
	    { RID, RI(0), RI(0), RI(0), RI(0), RA(3), RI(1), RI(2), RI(3),
	        RS("") },
	    PF_EPROTO, "short usage tokens -> EPROTO" },
	/* a header that is not a [name, value] pair, and one too long */
	{ 15, PF_MSG_RELAY_REQUEST,
	    { RAW_REQUEST_HEAD, RI(0), RI(0), RA(1), RA(1), RS("a") },
	    PF_EPROTO, "header without value -> EPROTO" },
	{ 15, PF_MSG_RELAY_REQUEST,
	    { RAW_REQUEST_HEAD, RI(0), RI(0), RA(1), RA(2),
	        RFILL('x', PF_RELAY_HEADER_NAME_MAX + 1), RS("") },
	    PF_ETOOBIG, "header name too long -> ETOOBIG" },
};

static void
test_fields(void)
{
	static const struct raw_field newer[] = { RI(1), RI(2), RI(3),
		RS("new"), RMAP(1), RNIL, RF(1.5), { .t = RAW_END } };
	struct raw r;
	pf_msg *d = NULL;
	pf_err err;

	/* extra trailing fields from a newer peer are accepted */
	raw_init(&r, 7, PF_MSG_GRANT_RELEASE);
	raw_pack(&r, newer);
	err = pf_msg_decode(r.sb.data, r.sb.size, &d);
	ok(err == PF_OK && d->u.grant_release.user_id == 1
	        && d->u.grant_release.token_id == 2
	        && d->u.grant_release.amount == 3,
	    "extra trailing fields accepted (%s)", pf_strerror(err));
	pf_msg_free(d);
	msgpack_sbuffer_destroy(&r.sb);

	for (size_t i = 0; i < sizeof raw_bad / sizeof raw_bad[0]; i++) {
		raw_init(&r, raw_bad[i].n, raw_bad[i].kind);
		raw_pack(&r, raw_bad[i].f);
		err = raw_decode(&r);
		ok(err == raw_bad[i].want, "%s (%s)", raw_bad[i].name,
		    pf_strerror(err));
	}

	/* PF_RELAY_MAX_CANDIDATES + 1 candidates */
	{
		static const struct raw_field head[] = { RID, RS(""), RI(0),
			RS(""), RS(""), RI(0), RI(0), RI(1), RB(""),
			RA(PF_RELAY_MAX_CANDIDATES + 1), { .t = RAW_END } };
		static const struct raw_field cand[]
		    = { RA(10), RI(1), RI(1), RS(""), RS(""), RS(""), RS(""),
			      RI(0), RI(0), RI(0), RI(0), { .t = RAW_END } };

		raw_init(&r, 12, PF_MSG_RELAY_REQUEST);
		raw_pack(&r, head);
		for (unsigned i = 0; i < PF_RELAY_MAX_CANDIDATES + 1; i++)
			raw_pack(&r, cand);
		ok(raw_decode(&r) == PF_ETOOBIG, "17 candidates -> ETOOBIG");
	}
}

/* raw_old decodes a hand-built message into *d (pf_msg_free it). */
static pf_err
raw_old(uint32_t n, int kind, const struct raw_field *f, pf_msg **d)
{
	struct raw r;
	pf_err err;

	*d = NULL;
	raw_init(&r, n, kind);
	raw_pack(&r, f);
	err = pf_msg_decode(r.sb.data, r.sb.size, d);
	msgpack_sbuffer_destroy(&r.sb);
	return err;
}

/* Optional fields (added later) may be missing: an older peer's relay
 * messages still decode, with zero / "" / empty lists. */
static void
test_optional_fields(void)
{
	static const struct raw_field head[]
	    = { RID, RI(200), RS(""), RI(7), RI(1), { .t = RAW_END } };
	static const struct raw_field end[] = { RID, RI(0), RI(1), RI(2), RI(3),
		RA(4), RI(0), RI(0), RI(0), RI(0), RS(""), { .t = RAW_END } };
	static const struct raw_field data[]
	    = { RID, RI(4), RB("x"), { .t = RAW_END } };
	pf_msg *d = NULL;
	pf_err err;

	err = raw_old(7, PF_MSG_RELAY_HEAD, head, &d);
	ok(err == PF_OK && d->u.relay_head.channel_id == 7
	        && d->u.relay_head.ctl_addr.len == 0
	        && d->u.relay_head.ctl_addr.ptr != NULL
	        && d->u.relay_head.ctl_addr.ptr[0] == '\0',
	    "old relay.head: ctl_addr is \"\" (%s)", pf_strerror(err));
	pf_msg_free(d);

	err = raw_old(9, PF_MSG_RELAY_END, end, &d);
	ok(err == PF_OK && d->u.relay_end.n_attempts == 0
	        && d->u.relay_end.channel_id == 3,
	    "old relay.end: no attempts (%s)", pf_strerror(err));
	pf_msg_free(d);

	err = raw_old(5, PF_MSG_RELAY_DATA, data, &d);
	ok(err == PF_OK && d->u.relay_data.seq == 4
	        && d->u.relay_data.completion == 0,
	    "old relay.data: completion 0 (%s)", pf_strerror(err));
	pf_msg_free(d);

	/* grant.reply without the epoch (an older accountant), and with */
	for (int extra = 0; extra < 2; extra++) {
		const struct raw_field reply[]
		    = { RU(7), RI(1), RI(2), RI(300), RI(1764115200000), RI(0),
			      extra ? (struct raw_field)RU(UINT64_MAX - 1)
			            : (struct raw_field) { .t = RAW_END },
			      { .t = RAW_END } };
		pf_msg m, *d2 = NULL;
		pf_buf b;

		err = raw_old(
		    (uint32_t)(8 + extra), PF_MSG_GRANT_REPLY, reply, &d);
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
	}

	/* relay.request without credit/probe/headers, and with only credit */
	for (int extra = 0; extra < 2; extra++) {
		const struct raw_field req[] = { RAW_REQUEST_HEAD,
			extra ? (struct raw_field)RI(4096)
			      : (struct raw_field) { .t = RAW_END },
			{ .t = RAW_END } };

		err = raw_old(
		    (uint32_t)(12 + extra), PF_MSG_RELAY_REQUEST, req, &d);
		ok(err == PF_OK && d->u.relay_request.stream == 1
		        && d->u.relay_request.credit == (extra ? 4096u : 0u)
		        && d->u.relay_request.probe == 0
		        && d->u.relay_request.n_headers == 0,
		    "relay.request with %d of 3 optional fields (%s)", extra,
		    pf_strerror(err));
		pf_msg_free(d);
	}
}

/* Inputs that announce more than they hold, or are no message at all. */
#define RAW_BYTES(...)                                                         \
	(const uint8_t[]) { __VA_ARGS__ },                                     \
	    sizeof((const uint8_t[]) { __VA_ARGS__ })

static const struct {
	const uint8_t *p;
	size_t len;
	const char *name;
} oversized[] = {
	{ RAW_BYTES(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01),
	    "array32 of 4G entries in 6 bytes -> EPROTO, no allocation" },
	{ RAW_BYTES(0x93, 0x01, 0x16, 0xdd, 0x7f, 0xff, 0xff, 0xff),
	    "inner array32 huge -> EPROTO" },
	{ RAW_BYTES(0x93, 0x01, 0x03, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00),
	    "bin32 of 4 GB -> EPROTO" },
	{ RAW_BYTES(0x93, 0x01, 0x03, 0xdb, 0x7f, 0xff, 0xff, 0xff),
	    "str32 of 2 GB -> EPROTO" },
	{ RAW_BYTES(0x93, 0x01, 0x03, 0xdf, 0x10, 0x00, 0x00, 0x00, 0x01),
	    "map32 huge -> EPROTO" },
	{ RAW_BYTES(0x93, 0x01, 0x03, 0xc9, 0xff, 0xff, 0xff, 0xf0, 0x01),
	    "ext32 huge -> EPROTO" },
	{ RAW_BYTES(0x93, 0x01, 0x03, 0xc1), "0xc1 -> EPROTO" },
	{ RAW_BYTES(0x81, 0x01, 0x03), "map at the top -> EPROTO" },
};

static void
test_oversized(void)
{
	const uint8_t *huge_array = oversized[0].p;
	pf_msg *d = NULL;
	uint8_t *p;
	pf_msg_kind kind;
	size_t n;
	pf_err err;

	for (size_t i = 0; i < sizeof oversized / sizeof oversized[0]; i++)
		ok(pf_msg_decode(oversized[i].p, oversized[i].len, &d)
		        == PF_EPROTO,
		    "%s", oversized[i].name);
	ok(pf_msg_decode("", 0, &d) == PF_EPROTO, "empty -> EPROTO");
	ok(pf_msg_peek_kind(huge_array, oversized[0].len, &kind) == PF_EPROTO,
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

/* pf_msg_clone: every sample kind and variant; the clone equals the
 * original field by field, encodes byte-identical, owns its bytes (the
 * original's buffers are overwritten after cloning) and is NUL ended like
 * a decoded message; caps as the encoder's. */
static void
test_clone(void)
{
	for (size_t k = 0; k < SAMPLE_NKINDS; k++) {
		for (int v = 0; v < SAMPLE_VARIANTS; v++) {
			const char *name = pf_msg_kind_name(sample_kinds[k]);
			pf_msg m, *c = NULL, *d = NULL;
			pf_buf b, b2;
			char why[256] = "";
			pf_err err;

			sample_msg(sample_kinds[k], v, &m);
			pf_buf_init(&b);
			pf_buf_init(&b2);
			err = pf_msg_clone(&m, &c);
			ok(err == PF_OK, "clone %s/%d (%s)", name, v,
			    pf_strerror(err));
			if (err != PF_OK)
				continue;
			ok(msg_equal(&m, c, why, sizeof(why)),
			    "clone %s/%d all fields equal %s", name, v, why);
			err = pf_msg_encode(&m, &b);
			if (err == PF_OK)
				err = pf_msg_encode(c, &b2);
			ok(err == PF_OK && b.len == b2.len
			        && memcmp(b.data, b2.data, b.len) == 0,
			    "clone %s/%d encodes byte-identical", name, v);
			/* what a decode gives, the clone gives: same fields
			 * and a NUL after every string */
			err = decode_buf(&b, &d);
			ok(err == PF_OK && msg_equal(d, c, why, sizeof(why)),
			    "clone %s/%d equals the decoded message %s", name,
			    v, why);
			pf_msg_free(d);
			pf_msg_free(c);
			pf_buf_fini(&b);
			pf_buf_fini(&b2);
		}
	}
	{
		pf_msg m, *c = NULL;
		char body[64] = "the original body";
		int owns;

		sample_msg(PF_MSG_RELAY_REQUEST, 1, &m);
		m.u.relay_request.body.ptr = (const uint8_t *)body;
		m.u.relay_request.body.len = strlen(body);
		ok(pf_msg_clone(&m, &c) == PF_OK, "clone: request cloned");
		if (c != NULL) {
			memset(body, 'x', sizeof(body) - 1);
			owns = c->u.relay_request.body.len == 17
			    && memcmp(c->u.relay_request.body.ptr,
			           "the original body", 17)
			        == 0
			    && c->u.relay_request.body.ptr[17] == '\0'
			    && c->u.relay_request.candidates
			        != m.u.relay_request.candidates;
			ok(owns, "clone: owns its bytes, NUL ended");
			pf_msg_free(c);
		}
		c = NULL;
		m.u.relay_request.path.len = PF_URL_MAX + 1;
		ok(pf_msg_clone(&m, &c) == PF_ETOOBIG && c == NULL,
		    "clone: a field over the encoder's cap is refused");
		sample_msg(PF_MSG_RELAY_REQUEST, 1, &m);
		m.u.relay_request.n_candidates = PF_RELAY_MAX_CANDIDATES + 1;
		ok(pf_msg_clone(&m, &c) == PF_ETOOBIG,
		    "clone: too many candidates are refused");
		m.kind = (pf_msg_kind)999;
		ok(pf_msg_clone(&m, &c) == PF_EINVAL,
		    "clone: an unknown kind is refused");
	}
}

int
main(void)
{
	test_round_trips();
	test_clone();
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
