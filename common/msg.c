/*
 * msg.c -- the msgpack codec for every message in msg.h.
 *
 * Each kind is described once by a field table (type, offset, cap) that
 * drives both the encoder and the decoder, so the two cannot drift apart.
 *
 * Decoding runs in three steps:
 *  1. scan(): a validating walk over the raw bytes.  Every declared count
 *     and length is checked against the bytes left (each element needs at
 *     least one byte), nesting against PF_MSG_MAX_DEPTH, counts against
 *     PF_MSG_ARRAY_MAX, objects against PF_MSG_OBJECTS_MAX.  Only then is
 *     msgpack-c allowed near the input: msgpack-c 4.0 allocates an array's
 *     slots from its declared count before looking at the data.
 *  2. msgpack_unpack() builds the object tree in a zone sized from the
 *     scan's object count; strings point into the input.
 *  3. The kind's table is walked twice: once to measure, once to copy into
 *     a single allocation holding the pf_msg, its arrays and every byte
 *     string (each followed by a NUL not counted in len).
 */
#include "common/msg.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/limits.h"

/* bytes a decode's msgpack zone holds beyond its objects (alignment) */
#define ZONE_SLACK 64u

enum ftype {
	F_ID,     /* uint8_t[PF_ID_LEN] as bin 16 */
	F_STR,    /* pf_bytes as str */
	F_BIN,    /* pf_bytes as bin */
	F_I64,    /* int64_t */
	F_U64,    /* uint64_t */
	F_I32,    /* int32_t */
	F_U32,    /* uint32_t */
	F_U8,     /* uint8_t */
	F_CANDS,  /* uint32_t count at off, pf_candidate * at off2 */
	F_TOKENS, /* pf_usage_tokens as a nested array */
	F_IDS,    /* uint32_t count at off, pf_bytes * at off2: array of str */
	F_LIST,   /* uint32_t count at off, array at off2 of structs (esize
	           * bytes each) described by sub/nsub, as nested arrays */
};

struct field {
	enum ftype type;
	size_t off;
	size_t off2;
	size_t cap; /* bytes for F_STR/F_BIN/F_IDS items; entries for F_CANDS
	             * and F_LIST */
	int opt;    /* may be absent (added later; trailing fields only) */
	const struct field *sub; /* F_LIST entries */
	size_t nsub;
	size_t esize;
	size_t ealign;
};

#define FLD(t, s, m, c)                                                        \
	{                                                                      \
		.type = t, .off = offsetof(s, m), .cap = c                     \
	}
#define ID(s, m) FLD(F_ID, s, m, 0)
#define STR(s, m, cap) FLD(F_STR, s, m, cap)
#define BIN(s, m, cap) FLD(F_BIN, s, m, cap)
#define I64(s, m) FLD(F_I64, s, m, 0)
#define U64(s, m) FLD(F_U64, s, m, 0)
#define I32(s, m) FLD(F_I32, s, m, 0)
#define U32(s, m) FLD(F_U32, s, m, 0)
#define U8(s, m) FLD(F_U8, s, m, 0)
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))
#define OPT(t, s, m, c)                                                        \
	{                                                                      \
		.type = t, .off = offsetof(s, m), .cap = c, .opt = 1           \
	}
#define LIST(s, n, arr, c, et, subf)                                           \
	{                                                                      \
		.type = F_LIST, .off = offsetof(s, n),                         \
		.off2 = offsetof(s, arr), .cap = c, .sub = subf,               \
		.nsub = NFIELDS(subf), .esize = sizeof(et),                    \
		.ealign = alignof(et)                                          \
	}
#define OPT_LIST(s, n, arr, c, et, subf)                                       \
	{                                                                      \
		.type = F_LIST, .off = offsetof(s, n),                         \
		.off2 = offsetof(s, arr), .cap = c, .opt = 1, .sub = subf,     \
		.nsub = NFIELDS(subf), .esize = sizeof(et),                    \
		.ealign = alignof(et)                                          \
	}

static const struct field candidate_fields[] = {
	I64(pf_candidate, channel_id),
	I32(pf_candidate, type),
	STR(pf_candidate, base_url, PF_URL_MAX),
	STR(pf_candidate, key, PF_SECRET_MAX),
	STR(pf_candidate, proxy, PF_URL_MAX),
	STR(pf_candidate, upstream_model, PF_MODEL_NAME_MAX),
	U32(pf_candidate, connect_timeout_ms),
	U32(pf_candidate, first_byte_timeout_ms),
	U32(pf_candidate, idle_timeout_ms),
	U32(pf_candidate, total_timeout_ms),
};

static const struct field token_fields[] = {
	I64(pf_usage_tokens, prompt),
	I64(pf_usage_tokens, completion),
	I64(pf_usage_tokens, cached),
	U8(pf_usage_tokens, estimated),
};

static const struct field header_fields[] = {
	STR(pf_header, name, PF_RELAY_HEADER_NAME_MAX),
	STR(pf_header, value, PF_RELAY_HEADER_VALUE_MAX),
};

static const struct field attempt_fields[] = {
	I64(pf_attempt, channel_id),
	I32(pf_attempt, status),
	I32(pf_attempt, outcome),
};

static const struct field relay_request_fields[] = {
	ID(pf_relay_request, id),
	STR(pf_relay_request, reply_addr, PF_URL_MAX),
	I64(pf_relay_request, deadline_ms),
	STR(pf_relay_request, method, PF_MSG_SHORT_MAX),
	STR(pf_relay_request, path, PF_URL_MAX),
	U8(pf_relay_request, stream),
	U8(pf_relay_request, client_usage),
	I32(pf_relay_request, client_api),
	BIN(pf_relay_request, body, PF_MSG_STR_MAX),
	{ .type = F_CANDS,
	    .off = offsetof(pf_relay_request, n_candidates),
	    .off2 = offsetof(pf_relay_request, candidates),
	    .cap = PF_RELAY_MAX_CANDIDATES },
	OPT(F_U32, pf_relay_request, credit, 0),
	OPT(F_U8, pf_relay_request, probe, 0),
	OPT_LIST(pf_relay_request, n_headers, headers, PF_RELAY_HEADERS_MAX,
	    pf_header, header_fields),
	OPT(F_U8, pf_relay_request, batch, 0),
};

static const struct field relay_head_fields[] = {
	ID(pf_relay_head, id),
	I32(pf_relay_head, status),
	STR(pf_relay_head, content_type, PF_MSG_SHORT_MAX),
	I64(pf_relay_head, channel_id),
	U32(pf_relay_head, attempts),
	OPT(F_STR, pf_relay_head, ctl_addr, PF_URL_MAX),
};

static const struct field relay_data_fields[] = {
	ID(pf_relay_data, id),
	U32(pf_relay_data, seq),
	BIN(pf_relay_data, data, PF_MSG_STR_MAX),
	OPT(F_I64, pf_relay_data, completion, 0),
};

static const struct field relay_end_fields[] = {
	ID(pf_relay_end, id),
	U32(pf_relay_end, seq),
	I32(pf_relay_end, reason),
	I32(pf_relay_end, upstream_status),
	I64(pf_relay_end, channel_id),
	FLD(F_TOKENS, pf_relay_end, usage, 0),
	STR(pf_relay_end, error, PF_ERROR_BODY_MAX),
	OPT_LIST(pf_relay_end, n_attempts, attempt_list,
	    PF_RELAY_MAX_CANDIDATES, pf_attempt, attempt_fields),
};

static const struct field relay_cancel_fields[] = {
	ID(pf_relay_cancel, id),
};

static const struct field relay_credit_fields[] = {
	ID(pf_relay_credit, id),
	U32(pf_relay_credit, bytes),
};

static const struct field grant_request_fields[] = {
	U64(pf_grant_request, corr),
	I64(pf_grant_request, user_id),
	I64(pf_grant_request, token_id),
	I64(pf_grant_request, amount),
};

static const struct field grant_reply_fields[] = {
	U64(pf_grant_reply, corr),
	I64(pf_grant_reply, user_id),
	I64(pf_grant_reply, token_id),
	I64(pf_grant_reply, granted),
	I64(pf_grant_reply, expires_ms),
	I32(pf_grant_reply, status),
	OPT(F_U64, pf_grant_reply, epoch, 0),
};

static const struct field grant_release_fields[] = {
	I64(pf_grant_release, user_id),
	I64(pf_grant_release, token_id),
	I64(pf_grant_release, amount),
};

static const struct field usage_fields[] = {
	ID(pf_usage, event_id),
	I64(pf_usage, user_id),
	I64(pf_usage, token_id),
	I64(pf_usage, channel_id),
	STR(pf_usage, model, PF_MODEL_NAME_MAX),
	FLD(F_TOKENS, pf_usage, tokens, 0),
	I64(pf_usage, cost),
	I64(pf_usage, price_input),
	I64(pf_usage, price_output),
	I64(pf_usage, price_cached),
	I64(pf_usage, price_call),
	I64(pf_usage, group_ratio_ppm),
	I64(pf_usage, started_ms),
	I64(pf_usage, ended_ms),
	I32(pf_usage, reason),
	U8(pf_usage, stream),
};

static const struct field payment_fields[] = {
	STR(pf_payment, event_id, PF_EVENT_ID_MAX),
	I64(pf_payment, user_id),
	I64(pf_payment, quota),
	I64(pf_payment, money),
	STR(pf_payment, provider, PF_MSG_SHORT_MAX),
	STR(pf_payment, trade_no, PF_EVENT_ID_MAX),
};

static const struct field ack_fields[] = {
	{ .type = F_IDS,
	    .off = offsetof(pf_ack, n_ids),
	    .off2 = offsetof(pf_ack, ids),
	    .cap = PF_EVENT_ID_MAX },
};

static const struct field balance_fields[] = {
	I64(pf_balance, user_id),
	I64(pf_balance, token_id),
	I64(pf_balance, quota),
	U8(pf_balance, unlimited),
	I64(pf_balance, at_ms),
};

static const struct field usage_batch_fields[] = {
	LIST(pf_usage_batch, n_usages, usages, PF_USAGE_BATCH_MAX, pf_usage,
	    usage_fields),
};

struct kind_desc {
	pf_msg_kind kind;
	const char *name;
	const struct field *fields;
	size_t n;
};

#define KIND(k, name, f)                                                       \
	{                                                                      \
		k, name, f, NFIELDS(f)                                         \
	}

static const struct kind_desc kinds[] = {
	KIND(PF_MSG_RELAY_REQUEST, "relay.request", relay_request_fields),
	KIND(PF_MSG_RELAY_HEAD, "relay.head", relay_head_fields),
	KIND(PF_MSG_RELAY_DATA, "relay.data", relay_data_fields),
	KIND(PF_MSG_RELAY_END, "relay.end", relay_end_fields),
	KIND(PF_MSG_RELAY_CANCEL, "relay.cancel", relay_cancel_fields),
	KIND(PF_MSG_RELAY_CREDIT, "relay.credit", relay_credit_fields),
	KIND(PF_MSG_GRANT_REQUEST, "grant.request", grant_request_fields),
	KIND(PF_MSG_GRANT_REPLY, "grant.reply", grant_reply_fields),
	KIND(PF_MSG_GRANT_RELEASE, "grant.release", grant_release_fields),
	KIND(PF_MSG_USAGE, "usage", usage_fields),
	KIND(PF_MSG_PAYMENT, "payment", payment_fields),
	KIND(PF_MSG_ACK, "ack", ack_fields),
	KIND(PF_MSG_BALANCE, "balance", balance_fields),
	KIND(PF_MSG_USAGE_BATCH, "usage.batch", usage_batch_fields),
};

static const struct kind_desc *
find_kind(int64_t kind)
{
	for (size_t i = 0; i < NFIELDS(kinds); i++) {
		if ((int64_t)kinds[i].kind == kind)
			return &kinds[i];
	}
	return NULL;
}

const char *
pf_msg_kind_name(pf_msg_kind kind)
{
	const struct kind_desc *d = find_kind((int64_t)kind);

	return d != NULL ? d->name : "unknown";
}

/* ---- buffer ---- */

void
pf_buf_init(pf_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
pf_buf_fini(pf_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	pf_buf_init(b);
}

/* ---- encoder ---- */

struct enc {
	pf_buf *b;
	size_t start; /* b->len before this message */
	pf_err err;
};

static int
enc_write_cb(void *data, const char *buf, size_t len)
{
	struct enc *e = data;
	pf_buf *b = e->b;

	if (e->err != PF_OK)
		return -1;
	if (len == 0)
		return 0; /* empty field: buf may be NULL */
	if (len > PF_MSG_MAX || b->len - e->start > PF_MSG_MAX - len) {
		e->err = PF_ETOOBIG;
		return -1;
	}
	if (b->cap - b->len < len) {
		size_t want = b->len + len;
		size_t cap = b->cap < 256 ? 256 : b->cap;
		uint8_t *p;

		while (cap < want)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL) {
			e->err = PF_ENOMEM;
			return -1;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, buf, len);
	b->len += len;
	return 0;
}

static pf_err
pack_bytes(
    msgpack_packer *pk, struct enc *e, const pf_bytes *v, size_t cap, int bin)
{
	if (v->len > cap)
		return PF_ETOOBIG;
	if (v->ptr == NULL && v->len > 0)
		return PF_EINVAL;
	if (bin) {
		msgpack_pack_bin(pk, v->len);
		msgpack_pack_bin_body(pk, v->ptr, v->len);
	} else {
		msgpack_pack_str(pk, v->len);
		msgpack_pack_str_body(pk, v->ptr, v->len);
	}
	return e->err;
}

static pf_err encode_fields(msgpack_packer *pk, struct enc *e,
    const struct field *f, size_t n, const uint8_t *base);

static pf_err
encode_field(msgpack_packer *pk, struct enc *e, const struct field *f,
    const uint8_t *base)
{
	const void *p = base + f->off;
	int64_t i64;
	uint64_t u64;
	int32_t i32;
	uint32_t u32, count;
	pf_err err;

	switch (f->type) {
	case F_ID:
		msgpack_pack_bin(pk, PF_ID_LEN);
		msgpack_pack_bin_body(pk, p, PF_ID_LEN);
		return e->err;
	case F_STR:
	case F_BIN:
		return pack_bytes(pk, e, p, f->cap, f->type == F_BIN);
	case F_I64:
		memcpy(&i64, p, sizeof(i64));
		msgpack_pack_int64(pk, i64);
		return e->err;
	case F_U64:
		memcpy(&u64, p, sizeof(u64));
		msgpack_pack_uint64(pk, u64);
		return e->err;
	case F_I32:
		memcpy(&i32, p, sizeof(i32));
		msgpack_pack_int64(pk, i32);
		return e->err;
	case F_U32:
		memcpy(&u32, p, sizeof(u32));
		msgpack_pack_uint64(pk, u32);
		return e->err;
	case F_U8:
		msgpack_pack_uint64(pk, *(const uint8_t *)p);
		return e->err;
	case F_TOKENS:
		msgpack_pack_array(pk, NFIELDS(token_fields));
		return encode_fields(
		    pk, e, token_fields, NFIELDS(token_fields), p);
	case F_CANDS: {
		const pf_candidate *c;

		memcpy(&count, p, sizeof(count));
		memcpy(&c, base + f->off2, sizeof(c));
		if (count > f->cap)
			return PF_ETOOBIG;
		if (c == NULL && count > 0)
			return PF_EINVAL;
		msgpack_pack_array(pk, count);
		for (uint32_t i = 0; i < count; i++) {
			msgpack_pack_array(pk, NFIELDS(candidate_fields));
			err = encode_fields(pk, e, candidate_fields,
			    NFIELDS(candidate_fields), (const uint8_t *)&c[i]);
			if (err != PF_OK)
				return err;
		}
		return e->err;
	}
	case F_LIST: {
		const uint8_t *arr;

		memcpy(&count, p, sizeof(count));
		memcpy(&arr, base + f->off2, sizeof(arr));
		if (count > f->cap)
			return PF_ETOOBIG;
		if (arr == NULL && count > 0)
			return PF_EINVAL;
		msgpack_pack_array(pk, count);
		for (uint32_t i = 0; i < count; i++) {
			msgpack_pack_array(pk, (uint32_t)f->nsub);
			err = encode_fields(
			    pk, e, f->sub, f->nsub, arr + i * f->esize);
			if (err != PF_OK)
				return err;
		}
		return e->err;
	}
	case F_IDS: {
		const pf_bytes *ids;

		memcpy(&count, p, sizeof(count));
		memcpy(&ids, base + f->off2, sizeof(ids));
		if (count > PF_MSG_ARRAY_MAX)
			return PF_ETOOBIG;
		if (ids == NULL && count > 0)
			return PF_EINVAL;
		msgpack_pack_array(pk, count);
		for (uint32_t i = 0; i < count; i++) {
			err = pack_bytes(pk, e, &ids[i], f->cap, 0);
			if (err != PF_OK)
				return err;
		}
		return e->err;
	}
	}
	return PF_EINVAL;
}

static pf_err
encode_fields(msgpack_packer *pk, struct enc *e, const struct field *f,
    size_t n, const uint8_t *base)
{
	for (size_t i = 0; i < n; i++) {
		pf_err err = encode_field(pk, e, &f[i], base);
		if (err != PF_OK)
			return err;
	}
	return e->err;
}

pf_err
pf_msg_encode(const pf_msg *msg, pf_buf *out)
{
	const struct kind_desc *d;
	struct enc e;
	msgpack_packer pk;
	pf_err err;

	if (msg == NULL || out == NULL)
		return PF_EINVAL;
	d = find_kind((int64_t)msg->kind);
	if (d == NULL)
		return PF_EINVAL;
	e.b = out;
	e.start = out->len;
	e.err = PF_OK;
	msgpack_packer_init(&pk, &e, enc_write_cb);
	msgpack_pack_array(&pk, (uint32_t)(2 + d->n));
	msgpack_pack_uint64(&pk, PF_MSG_VERSION);
	msgpack_pack_uint64(&pk, (uint64_t)d->kind);
	err = encode_fields(&pk, &e, d->fields, d->n, (const uint8_t *)&msg->u);
	if (err == PF_OK)
		err = e.err;
	if (err != PF_OK)
		out->len = e.start;
	return err;
}

/* ---- pre-scan of raw bytes ---- */

struct scan {
	const uint8_t *p;
	const uint8_t *end;
	uint32_t objects;
};

static size_t
left(const struct scan *s)
{
	return (size_t)(s->end - s->p);
}

/* Reads an n-byte big-endian unsigned integer. */
static pf_err
scan_uint(struct scan *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;

	if (left(s) < n)
		return PF_EPROTO;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | s->p[i];
	s->p += n;
	*ret = v;
	return PF_OK;
}

static pf_err
scan_skip(struct scan *s, uint64_t n)
{
	if (left(s) < n)
		return PF_EPROTO;
	s->p += n;
	return PF_OK;
}

static pf_err scan_obj(struct scan *s, unsigned depth);

static pf_err
scan_children(struct scan *s, uint64_t count, unsigned per, unsigned depth)
{
	pf_err err;

	if (left(s) / per < count)
		return PF_EPROTO; /* each element needs at least one byte */
	if (count > PF_MSG_ARRAY_MAX)
		return PF_ETOOBIG;
	if (depth > PF_MSG_MAX_DEPTH)
		return PF_ETOOBIG;
	for (uint64_t i = 0; i < count * per; i++) {
		err = scan_obj(s, depth + 1);
		if (err != PF_OK)
			return err;
	}
	return PF_OK;
}

/* Skips a str/bin/ext payload whose length is in the next lenbytes bytes
 * (plus extra bytes for an ext type). */
static pf_err
scan_blob(struct scan *s, size_t lenbytes, size_t extra)
{
	uint64_t n;
	pf_err err;

	err = scan_uint(s, lenbytes, &n);
	if (err != PF_OK)
		return err;
	if (left(s) < extra || left(s) - extra < n)
		return PF_EPROTO;
	if (n > PF_MSG_STR_MAX)
		return PF_ETOOBIG;
	return scan_skip(s, n + extra);
}

/* depth: nesting level of the containers this object may open (root 1). */
static pf_err
scan_obj(struct scan *s, unsigned depth)
{
	uint64_t n;
	uint8_t t;
	pf_err err;

	if (++s->objects > PF_MSG_OBJECTS_MAX)
		return PF_ETOOBIG;
	if (left(s) < 1)
		return PF_EPROTO;
	t = *s->p++;
	if (t <= 0x7f || t >= 0xe0)
		return PF_OK; /* fixint */
	if ((t & 0xf0) == 0x80)
		return scan_children(s, t & 0x0f, 2, depth);
	if ((t & 0xf0) == 0x90)
		return scan_children(s, t & 0x0f, 1, depth);
	if ((t & 0xe0) == 0xa0)
		return scan_skip(s, t & 0x1f);
	switch (t) {
	case 0xc0: /* nil */
	case 0xc2: /* false */
	case 0xc3: /* true */
		return PF_OK;
	case 0xc4:
	case 0xd9:
		return scan_blob(s, 1, 0); /* bin8, str8 */
	case 0xc5:
	case 0xda:
		return scan_blob(s, 2, 0);
	case 0xc6:
	case 0xdb:
		return scan_blob(s, 4, 0);
	case 0xc7:
		return scan_blob(s, 1, 1); /* ext8: length, type, data */
	case 0xc8:
		return scan_blob(s, 2, 1);
	case 0xc9:
		return scan_blob(s, 4, 1);
	case 0xca:
	case 0xce:
	case 0xd2:
		return scan_skip(s, 4);
	case 0xcb:
	case 0xcf:
	case 0xd3:
		return scan_skip(s, 8);
	case 0xcc:
	case 0xd0:
		return scan_skip(s, 1);
	case 0xcd:
	case 0xd1:
		return scan_skip(s, 2);
	case 0xd4:
		return scan_skip(s, 2); /* fixext: type + data */
	case 0xd5:
		return scan_skip(s, 3);
	case 0xd6:
		return scan_skip(s, 5);
	case 0xd7:
		return scan_skip(s, 9);
	case 0xd8:
		return scan_skip(s, 17);
	case 0xdc:
	case 0xdd:
		err = scan_uint(s, t == 0xdc ? 2 : 4, &n);
		if (err != PF_OK)
			return err;
		return scan_children(s, n, 1, depth);
	case 0xde:
	case 0xdf:
		err = scan_uint(s, t == 0xde ? 2 : 4, &n);
		if (err != PF_OK)
			return err;
		return scan_children(s, n, 2, depth);
	default: /* 0xc1: never used */
		return PF_EPROTO;
	}
}

/* prescan validates buf as one message; *ret_objects: its objects. */
static pf_err
prescan(const uint8_t *buf, size_t len, uint32_t *ret_objects)
{
	struct scan s = { buf, buf + len, 0 };
	pf_err err;

	if (len > PF_MSG_MAX)
		return PF_ETOOBIG;
	if (len == 0
	    || !((buf[0] & 0xf0) == 0x90 || buf[0] == 0xdc || buf[0] == 0xdd))
		return PF_EPROTO; /* a message is an array */
	err = scan_obj(&s, 1);
	if (err != PF_OK)
		return err;
	if (s.p != s.end)
		return PF_EPROTO;
	*ret_objects = s.objects;
	return PF_OK;
}

pf_err
pf_msg_split(const void *buf, size_t len, size_t *ret_len)
{
	const uint8_t *b = buf;
	struct scan s = { b, b + len, 0 };
	pf_err err;

	if (buf == NULL || ret_len == NULL)
		return PF_EINVAL;
	if (len == 0
	    || !((b[0] & 0xf0) == 0x90 || b[0] == 0xdc || b[0] == 0xdd))
		return PF_EPROTO; /* a message is an array */
	err = scan_obj(&s, 1);
	if (err != PF_OK)
		return err;
	if ((size_t)(s.p - b) > PF_MSG_MAX)
		return PF_ETOOBIG;
	*ret_len = (size_t)(s.p - b);
	return PF_OK;
}

/* ---- decoder ---- */

/* Bump allocator over the message's single allocation; with base == NULL
 * it only measures. */
struct arena {
	uint8_t *base;
	size_t used;
};

static void *
arena_alloc(struct arena *a, size_t size, size_t align)
{
	void *p;

	a->used = (a->used + align - 1) & ~(align - 1);
	p = a->base != NULL ? a->base + a->used : NULL;
	a->used += size;
	return p;
}

static pf_err
get_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *ret)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > (uint64_t)max)
			return PF_EPROTO;
		*ret = (int64_t)o->via.u64;
		return PF_OK;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		if (o->via.i64 < min)
			return PF_EPROTO;
		*ret = o->via.i64;
		return PF_OK;
	}
	return PF_EPROTO;
}

static pf_err
get_bytes(const msgpack_object *o, int bin, size_t cap, struct arena *a,
    pf_bytes *ret)
{
	const char *src;
	uint32_t n;
	uint8_t *p;

	if (bin && o->type == MSGPACK_OBJECT_BIN) {
		src = o->via.bin.ptr;
		n = o->via.bin.size;
	} else if (!bin && o->type == MSGPACK_OBJECT_STR) {
		src = o->via.str.ptr;
		n = o->via.str.size;
	} else {
		return PF_EPROTO;
	}
	if (n > cap)
		return PF_ETOOBIG;
	p = arena_alloc(a, (size_t)n + 1, 1);
	if (p != NULL) {
		if (n > 0)
			memcpy(p, src, n);
		p[n] = '\0';
	}
	ret->ptr = p;
	ret->len = n;
	return PF_OK;
}

static pf_err decode_fields(const msgpack_object_array *arr, size_t first,
    const struct field *f, size_t n, struct arena *a, uint8_t *base);

/* Decodes a nested array whose entries all follow one field table. */
static pf_err
get_nested(const msgpack_object *o, const struct field *f, size_t n,
    struct arena *a, uint8_t *base)
{
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return PF_EPROTO;
	return decode_fields(&o->via.array, 0, f, n, a, base);
}

static pf_err
decode_field(const msgpack_object *o, const struct field *f, struct arena *a,
    uint8_t *base)
{
	void *p = base + f->off;
	int64_t v;
	pf_err err;

	switch (f->type) {
	case F_ID:
		if (o->type != MSGPACK_OBJECT_BIN
		    || o->via.bin.size != PF_ID_LEN)
			return PF_EPROTO;
		memcpy(p, o->via.bin.ptr, PF_ID_LEN);
		return PF_OK;
	case F_STR:
	case F_BIN:
		return get_bytes(o, f->type == F_BIN, f->cap, a, p);
	case F_I64:
		err = get_int(o, INT64_MIN, INT64_MAX, &v);
		if (err == PF_OK)
			memcpy(p, &v, sizeof(v));
		return err;
	case F_U64:
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return PF_EPROTO;
		memcpy(p, &o->via.u64, sizeof(uint64_t));
		return PF_OK;
	case F_I32: {
		int32_t x;

		err = get_int(o, INT32_MIN, INT32_MAX, &v);
		x = (int32_t)v;
		if (err == PF_OK)
			memcpy(p, &x, sizeof(x));
		return err;
	}
	case F_U32: {
		uint32_t x;

		err = get_int(o, 0, UINT32_MAX, &v);
		x = (uint32_t)v;
		if (err == PF_OK)
			memcpy(p, &x, sizeof(x));
		return err;
	}
	case F_U8:
		err = get_int(o, 0, UINT8_MAX, &v);
		if (err == PF_OK)
			*(uint8_t *)p = (uint8_t)v;
		return err;
	case F_TOKENS:
		return get_nested(o, token_fields, NFIELDS(token_fields), a, p);
	case F_CANDS: {
		pf_candidate *c, scratch;
		uint32_t count;

		if (o->type != MSGPACK_OBJECT_ARRAY)
			return PF_EPROTO;
		count = o->via.array.size;
		if (count > f->cap)
			return PF_ETOOBIG;
		c = arena_alloc(
		    a, count * sizeof(pf_candidate), alignof(pf_candidate));
		for (uint32_t i = 0; i < count; i++) {
			pf_candidate *dst = c != NULL ? &c[i] : &scratch;

			memset(dst, 0, sizeof(*dst));
			err = get_nested(&o->via.array.ptr[i], candidate_fields,
			    NFIELDS(candidate_fields), a, (uint8_t *)dst);
			if (err != PF_OK)
				return err;
		}
		memcpy(p, &count, sizeof(count));
		memcpy(base + f->off2, &c, sizeof(c));
		return PF_OK;
	}
	case F_LIST: {
		_Alignas(max_align_t) uint8_t scratch[256]; /* pf_usage fits */
		uint8_t *arr;
		uint32_t count;

		if (o->type != MSGPACK_OBJECT_ARRAY)
			return PF_EPROTO;
		count = o->via.array.size;
		if (count > f->cap || f->esize > sizeof(scratch))
			return PF_ETOOBIG;
		arr = arena_alloc(a, count * f->esize, f->ealign);
		for (uint32_t i = 0; i < count; i++) {
			uint8_t *dst
			    = arr != NULL ? arr + i * f->esize : scratch;

			memset(dst, 0, f->esize);
			err = get_nested(
			    &o->via.array.ptr[i], f->sub, f->nsub, a, dst);
			if (err != PF_OK)
				return err;
		}
		memcpy(p, &count, sizeof(count));
		memcpy(base + f->off2, &arr, sizeof(arr));
		return PF_OK;
	}
	case F_IDS: {
		pf_bytes *ids, scratch;
		uint32_t count;

		if (o->type != MSGPACK_OBJECT_ARRAY)
			return PF_EPROTO;
		count = o->via.array.size;
		if (count > PF_MSG_ARRAY_MAX)
			return PF_ETOOBIG;
		ids = arena_alloc(
		    a, count * sizeof(pf_bytes), alignof(pf_bytes));
		for (uint32_t i = 0; i < count; i++) {
			err = get_bytes(&o->via.array.ptr[i], 0, f->cap, a,
			    ids != NULL ? &ids[i] : &scratch);
			if (err != PF_OK)
				return err;
		}
		memcpy(p, &count, sizeof(count));
		memcpy(base + f->off2, &ids, sizeof(ids));
		return PF_OK;
	}
	}
	return PF_EPROTO;
}

/* Fills an optional field an older peer did not send: zero, "" or an
 * empty list (base is zeroed already). */
static void
absent_field(const struct field *f, struct arena *a, uint8_t *base)
{
	pf_bytes empty;
	uint8_t *p;

	if (f->type != F_STR && f->type != F_BIN)
		return;
	p = arena_alloc(a, 1, 1);
	if (p != NULL)
		p[0] = '\0';
	empty.ptr = p;
	empty.len = 0;
	memcpy(base + f->off, &empty, sizeof(empty));
}

/* Decodes arr->ptr[first..first+n) by table f into base; entries past
 * them are ignored (fields added by a newer peer); optional fields at the
 * end may be missing (an older peer). */
static pf_err
decode_fields(const msgpack_object_array *arr, size_t first,
    const struct field *f, size_t n, struct arena *a, uint8_t *base)
{
	size_t have, need = n;

	while (need > 0 && f[need - 1].opt)
		need--;
	if (arr->size < first || arr->size - first < need)
		return PF_EPROTO;
	have = arr->size - first;
	for (size_t i = 0; i < n; i++) {
		pf_err err;

		if (i >= have) {
			absent_field(&f[i], a, base);
			continue;
		}
		err = decode_field(&arr->ptr[first + i], &f[i], a, base);
		if (err != PF_OK)
			return err;
	}
	return PF_OK;
}

/* Checks the [version, kind, ...] header of a decoded root object. */
static pf_err
check_header(const msgpack_object *root, const struct kind_desc **ret)
{
	const struct kind_desc *d;
	int64_t version, kind;

	if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 2)
		return PF_EPROTO;
	if (get_int(&root->via.array.ptr[0], INT64_MIN, INT64_MAX, &version)
	    != PF_OK)
		return PF_EPROTO;
	if (version != PF_MSG_VERSION)
		return PF_EVERSION;
	if (get_int(&root->via.array.ptr[1], INT64_MIN, INT64_MAX, &kind)
	    != PF_OK)
		return PF_EPROTO;
	d = find_kind(kind);
	if (d == NULL)
		return PF_EPROTO;
	*ret = d;
	return PF_OK;
}

pf_err
pf_msg_decode(const void *buf, size_t len, pf_msg **ret_msg)
{
	const struct kind_desc *d = NULL;
	msgpack_zone zone;
	msgpack_object root;
	msgpack_unpack_return rc;
	struct arena a;
	pf_msg scratch, *msg = NULL;
	size_t off = 0, need;
	uint32_t objects = 0;
	pf_err err;

	if (buf == NULL || ret_msg == NULL)
		return PF_EINVAL;
	err = prescan(buf, len, &objects);
	if (err != PF_OK)
		return err;
	/* a zone sized for this tree (a hint: it grows if need be) instead
	 * of msgpack_unpack_next's 8 KiB one, a large block whose malloc
	 * made glibc consolidate its fast bins on every message */
	if (!msgpack_zone_init(
	        &zone, (size_t)objects * sizeof(msgpack_object) + ZONE_SLACK))
		return PF_ENOMEM;
	rc = msgpack_unpack(buf, len, &off, &zone, &root);
	if (rc != MSGPACK_UNPACK_SUCCESS || off != len) {
		err = PF_EPROTO;
		goto out;
	}
	err = check_header(&root, &d);
	if (err != PF_OK)
		goto out;

	/* Pass 1 measures into scratch; pass 2 fills the real allocation. */
	memset(&scratch, 0, sizeof(scratch));
	a.base = NULL;
	a.used = sizeof(pf_msg);
	err = decode_fields(
	    &root.via.array, 2, d->fields, d->n, &a, (uint8_t *)&scratch.u);
	if (err != PF_OK)
		goto out;
	need = a.used;
	/* Not calloc: a relay body may be tens of MB, all overwritten. */
	msg = malloc(need);
	if (msg == NULL) {
		err = PF_ENOMEM;
		goto out;
	}
	memset(msg, 0, sizeof(*msg));
	a.base = (uint8_t *)msg;
	a.used = sizeof(pf_msg);
	err = decode_fields(
	    &root.via.array, 2, d->fields, d->n, &a, (uint8_t *)&msg->u);
	if (err != PF_OK) {
		free(msg);
		goto out;
	}
	msg->version = PF_MSG_VERSION;
	msg->kind = d->kind;
	*ret_msg = msg;
out:
	msgpack_zone_destroy(&zone);
	return err;
}

void
pf_msg_free(pf_msg *msg)
{
	free(msg);
}

/* Reads one msgpack integer straight from the bytes. */
static pf_err
peek_int(struct scan *s, int64_t *ret)
{
	uint64_t u;
	uint8_t t;
	pf_err err;

	if (left(s) < 1)
		return PF_EPROTO;
	t = *s->p++;
	if (t <= 0x7f) {
		*ret = t;
		return PF_OK;
	}
	if (t >= 0xe0) {
		*ret = (int64_t)(int8_t)t;
		return PF_OK;
	}
	if (t >= 0xcc && t <= 0xcf) {
		err = scan_uint(s, (size_t)1 << (t - 0xcc), &u);
		if (err != PF_OK)
			return err;
		*ret = u > INT64_MAX ? INT64_MAX : (int64_t)u;
		return PF_OK;
	}
	if (t >= 0xd0 && t <= 0xd3) {
		size_t n = (size_t)1 << (t - 0xd0);

		err = scan_uint(s, n, &u);
		if (err != PF_OK)
			return err;
		/* sign-extend the n-byte two's complement value */
		if (n < 8 && (u >> (8 * n - 1)) != 0)
			u |= ~(uint64_t)0 << (8 * n);
		*ret = (int64_t)u;
		return PF_OK;
	}
	return PF_EPROTO;
}

pf_err
pf_msg_peek_kind(const void *buf, size_t len, pf_msg_kind *ret_kind)
{
	struct scan s = { buf, (const uint8_t *)buf + len, 0 };
	const struct kind_desc *d;
	int64_t version, kind;
	uint64_t count;
	uint8_t t;
	pf_err err;

	if (buf == NULL || ret_kind == NULL)
		return PF_EINVAL;
	if (len > PF_MSG_MAX)
		return PF_ETOOBIG;
	if (len < 1)
		return PF_EPROTO;
	t = *s.p++;
	if ((t & 0xf0) == 0x90) {
		count = t & 0x0f;
	} else if (t == 0xdc || t == 0xdd) {
		err = scan_uint(&s, t == 0xdc ? 2 : 4, &count);
		if (err != PF_OK)
			return err;
	} else {
		return PF_EPROTO;
	}
	if (count < 2)
		return PF_EPROTO;
	err = peek_int(&s, &version);
	if (err != PF_OK)
		return err;
	if (version != PF_MSG_VERSION)
		return PF_EVERSION;
	err = peek_int(&s, &kind);
	if (err != PF_OK)
		return err;
	d = find_kind(kind);
	if (d == NULL)
		return PF_EPROTO;
	*ret_kind = d->kind;
	return PF_OK;
}
