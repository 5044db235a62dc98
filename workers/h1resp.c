/*
 * h1resp.c -- incremental HTTP/1.x response parser (see h1resp.h).
 */
#include <string.h>
#include <strings.h>

#include "common/ids.h"
#include "common/limits.h"
#include "workers/h1resp.h"

/* a chunk or a Content-Length beyond this is not believed */
#define SIZE_MAX_BELIEVED (UINT64_C(1) << 62)

void
wrk_h1resp_init(wrk_h1resp *r, int head_request)
{
	memset(r, 0, sizeof *r);
	r->state = WRK_H1_HEAD;
	r->no_body = (uint8_t)(head_request != 0);
}

/* The end of the head in p[0..n): the offset after its empty line, or 0
 * when it is not there yet.  Lines end in CRLF or a bare LF. */
static size_t
head_end(const uint8_t *p, size_t n)
{
	const uint8_t *q = p, *end = p + n;

	while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		q++;
		if (q < end && *q == '\n')
			return (size_t)(q + 1 - p);
		if (q + 1 < end && q[0] == '\r' && q[1] == '\n')
			return (size_t)(q + 2 - p);
		if (q >= end)
			break;
	}
	return 0;
}

static int
is_ws(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Trim spaces and tabs (and a CR) off both ends of p[0..*n). */
static const uint8_t *
trim(const uint8_t *p, size_t *n)
{
	while (*n > 0 && is_ws(p[0])) {
		p++;
		(*n)--;
	}
	while (*n > 0 && (is_ws(p[*n - 1]) || p[*n - 1] == '\r'))
		(*n)--;
	return p;
}

static int
name_is(const uint8_t *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp((const char *)p, name, n) == 0;
}

/* Does the comma-separated list v contain token t (any case)? */
static int
has_token(const uint8_t *v, size_t n, const char *t)
{
	size_t i = 0;

	while (i < n) {
		size_t s = i, k;
		const uint8_t *tok;

		while (i < n && v[i] != ',')
			i++;
		k = i - s;
		tok = trim(v + s, &k);
		if (name_is(tok, k, t))
			return 1;
		i++;
	}
	return 0;
}

/* Is the last token of the list v "chunked"? */
static int
last_is_chunked(const uint8_t *v, size_t n)
{
	const uint8_t *c = memrchr(v, ',', n);
	size_t k;

	if (c != NULL) {
		k = n - (size_t)(c + 1 - v);
		v = trim(c + 1, &k);
	} else {
		k = n;
		v = trim(v, &k);
	}
	return name_is(v, k, "chunked");
}

static int
parse_dec(const uint8_t *p, size_t n, uint64_t *ret)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
		if (v > SIZE_MAX_BELIEVED)
			return -1;
	}
	*ret = v;
	return 0;
}

/* What the header lines say about the body. */
struct head_facts {
	int chunked, other_te, close, keep_alive, has_len;
	uint64_t len;
	const uint8_t *ctype; /* Content-Type value, ctype_len bytes */
	size_t ctype_len;
};

static pf_err
header_line(wrk_h1resp *r, const uint8_t *p, size_t n, struct head_facts *f)
{
	const uint8_t *colon = memchr(p, ':', n), *v;
	size_t nlen, vlen;
	uint64_t len;

	if (n > 0 && is_ws(p[0]))
		return PF_EPROTO; /* obsolete line folding */
	if (colon == NULL || colon == p)
		return PF_EPROTO;
	nlen = (size_t)(colon - p);
	for (size_t i = 0; i < nlen; i++)
		if (p[i] <= ' ' || p[i] >= 0x7f)
			return PF_EPROTO;
	vlen = n - nlen - 1;
	v = trim(colon + 1, &vlen);
	if (name_is(p, nlen, "content-length")) {
		if (parse_dec(v, vlen, &len) != 0
		    || (f->has_len && len != f->len))
			return PF_EPROTO;
		f->has_len = 1;
		f->len = len;
	} else if (name_is(p, nlen, "transfer-encoding")) {
		if (last_is_chunked(v, vlen))
			f->chunked = 1;
		else
			f->other_te = 1;
	} else if (name_is(p, nlen, "connection")) {
		f->close |= has_token(v, vlen, "close");
		f->keep_alive |= has_token(v, vlen, "keep-alive");
	} else if (name_is(p, nlen, "content-type")) {
		r->has_ctype = 1;
		f->ctype = v;
		f->ctype_len = vlen;
	}
	return PF_OK;
}

/* Parse the head p[0..n) (its empty line included).  Sets r's fields
 * and the body state; an interim 1xx leaves r in WRK_H1_HEAD. */
static pf_err
parse_head(wrk_h1resp *r, const uint8_t *p, size_t n)
{
	struct head_facts f;
	const uint8_t *line = p, *end = p + n, *nl;
	size_t k;
	int status;
	pf_err err;

	memset(&f, 0, sizeof f);
	/* "HTTP/1.x SSS[ reason]" */
	nl = memchr(line, '\n', n);
	k = (size_t)(nl - line);
	if (k > 0 && line[k - 1] == '\r')
		k--;
	if (k < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0'
	    || line[7] > '9' || line[8] != ' ')
		return PF_EPROTO;
	status = 0;
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return PF_EPROTO;
		status = status * 10 + (line[i] - '0');
	}
	if (status < 100 || (k > 12 && line[12] != ' '))
		return PF_EPROTO;
	r->minor = (uint8_t)(line[7] - '0');
	r->status = status;
	r->has_ctype = 0;
	for (line = nl + 1; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		k = (size_t)(nl - line);
		if (k > 0 && line[k - 1] == '\r')
			k--;
		if (k == 0)
			break; /* the empty line */
		err = header_line(r, line, k, &f);
		if (err != PF_OK)
			return err;
	}
	r->ctype_at = f.ctype != NULL ? (uint32_t)(f.ctype - p) : 0;
	r->ctype_len = (uint32_t)f.ctype_len;
	if (status < 200) {
		if (status == 101)
			return PF_EPROTO; /* no upgrade was asked for */
		return PF_OK;             /* interim: the real head follows */
	}
	r->keep_alive
	    = (uint8_t)(r->minor >= 1 ? !f.close : f.keep_alive && !f.close);
	if (r->no_body || status == 204 || status == 304) {
		r->state = WRK_H1_DONE;
	} else if (f.chunked) {
		r->state = WRK_H1_CHUNK_SIZE;
	} else if (f.other_te) {
		r->state = WRK_H1_UNTIL_EOF;
		r->keep_alive = 0;
	} else if (f.has_len) {
		r->left = f.len;
		r->state = f.len > 0 ? WRK_H1_LENGTH : WRK_H1_DONE;
	} else {
		r->state = WRK_H1_UNTIL_EOF;
		r->keep_alive = 0;
	}
	return PF_OK;
}

/* A line in p[0..n): its length with the LF, 0 when not complete yet
 * (or PF_ETOOBIG in *err when it is too long to wait for). */
static size_t
line_len(const uint8_t *p, size_t n, pf_err *err)
{
	size_t look = n < WRK_H1_LINE_MAX ? n : WRK_H1_LINE_MAX;
	const uint8_t *nl = memchr(p, '\n', look);

	*err = PF_OK;
	if (nl != NULL)
		return (size_t)(nl + 1 - p);
	if (n >= WRK_H1_LINE_MAX)
		*err = PF_ETOOBIG;
	return 0;
}

/* "HEX[ws][;ext]CRLF" */
static pf_err
chunk_size(const uint8_t *p, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;
	int h;

	while (i < n && (h = pf_hex_digit(p[i])) >= 0) {
		v = v * 16 + (uint64_t)h;
		if (v > SIZE_MAX_BELIEVED)
			return PF_EPROTO;
		i++;
	}
	if (i == 0)
		return PF_EPROTO;
	while (i < n && is_ws(p[i]))
		i++;
	if (i < n && p[i] != ';' && p[i] != '\r' && p[i] != '\n')
		return PF_EPROTO;
	*ret = v;
	return PF_OK;
}

/* Deliver up to r->left body bytes from p[0..n). */
static pf_err
body_piece(wrk_h1resp *r, const uint8_t *p, size_t n, size_t *took,
    wrk_h1_body_cb cb, void *arg)
{
	size_t k = r->left < n ? (size_t)r->left : n;
	int rc;

	*took = 0;
	if (k == 0)
		return PF_OK;
	rc = cb(arg, p, k);
	if (rc < 0)
		return PF_ECANCELED;
	if (rc == 0)
		return PF_EAGAIN;
	r->left -= k;
	*took = k;
	return PF_OK;
}

pf_err
wrk_h1resp_feed(wrk_h1resp *r, const uint8_t *p, size_t n, size_t *used,
    wrk_h1_body_cb cb, void *arg)
{
	size_t at = 0, k, took;
	uint64_t size;
	pf_err err = PF_OK;
	int rc;

	*used = 0;
	while (r->state == WRK_H1_HEAD) {
		size_t look = n - at < PF_UPSTREAM_HEADER_MAX
		    ? n - at
		    : PF_UPSTREAM_HEADER_MAX;

		k = head_end(p + at, look);
		if (k == 0)
			return look >= PF_UPSTREAM_HEADER_MAX ? PF_ETOOBIG
			                                      : PF_OK;
		err = parse_head(r, p + at, k);
		if (err != PF_OK)
			return err;
		r->ctype_at += (uint32_t)at; /* from the head's start to p's */
		at += k;
		*used = at;
		if (r->state != WRK_H1_HEAD)
			return PF_OK; /* the caller looks at the head first */
	}
	while (at < n && err == PF_OK) {
		switch (r->state) {
		case WRK_H1_LENGTH:
		case WRK_H1_CHUNK_DATA:
			err = body_piece(r, p + at, n - at, &took, cb, arg);
			at += took;
			if (err == PF_OK && r->left == 0)
				r->state = r->state == WRK_H1_LENGTH
				    ? WRK_H1_DONE
				    : WRK_H1_CHUNK_END;
			break;
		case WRK_H1_UNTIL_EOF:
			rc = cb(arg, p + at, n - at);
			if (rc < 0)
				err = PF_ECANCELED;
			else if (rc == 0)
				err = PF_EAGAIN;
			else
				at = n;
			break;
		case WRK_H1_CHUNK_SIZE:
			k = line_len(p + at, n - at, &err);
			if (k == 0) {
				*used = at;
				return err;
			}
			err = chunk_size(p + at, k, &size);
			if (err != PF_OK)
				break;
			at += k;
			r->left = size;
			r->state
			    = size > 0 ? WRK_H1_CHUNK_DATA : WRK_H1_TRAILER;
			break;
		case WRK_H1_CHUNK_END:
			if (p[at] == '\n') {
				at++;
			} else if (p[at] != '\r') {
				err = PF_EPROTO;
				break;
			} else if (at + 1 == n) {
				*used = at;
				return PF_OK; /* the LF is still to come */
			} else if (p[at + 1] != '\n') {
				err = PF_EPROTO;
				break;
			} else {
				at += 2;
			}
			r->state = WRK_H1_CHUNK_SIZE;
			break;
		case WRK_H1_TRAILER:
			k = line_len(p + at, n - at, &err);
			if (k == 0) {
				*used = at;
				return err;
			}
			at += k;
			if (k == 1 || (k == 2 && p[at - 2] == '\r')) {
				r->state = WRK_H1_DONE;
				break;
			}
			r->trailer += k;
			if (r->trailer > PF_UPSTREAM_HEADER_MAX)
				err = PF_ETOOBIG;
			break;
		default: /* done: the rest is not ours */
			*used = at;
			return PF_OK;
		}
	}
	*used = at;
	return err;
}

pf_err
wrk_h1resp_eof(wrk_h1resp *r)
{
	if (r->state == WRK_H1_UNTIL_EOF)
		r->state = WRK_H1_DONE;
	return r->state == WRK_H1_DONE ? PF_OK : PF_EPROTO;
}
