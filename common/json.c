/*
 * json.c -- one-pass JSON validation into a flat token array (json.h).
 *
 * The accepted language follows jansson 2.14's load.c with flags 0 rule
 * by rule; the comments name the jansson check each test mirrors.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

/* jansson's JSON_PARSER_MAX_DEPTH: a value nested deeper is refused */
#define DEPTH_MAX 2048u
/* open containers tracked without an allocation */
#define STACK_INLINE 64u

void
pf_json_init(pf_json *d)
{
	d->_src = NULL;
	d->_tok = d->_inline;
	d->_n = 0;
	d->_cap = PF_JSON_INLINE_TOKS;
	d->_dec = NULL;
}

void
pf_json_fini(pf_json *d)
{
	if (d->_tok != d->_inline)
		free(d->_tok);
	free(d->_dec);
	pf_json_init(d);
}

static pf_json_tok *
tok_new(pf_json *d, enum pf_json_type type, uint32_t start)
{
	pf_json_tok *t;

	if (d->_n == d->_cap) {
		uint32_t cap = d->_cap * 2;
		pf_json_tok *nt;

		if (cap < d->_cap)
			return NULL;
		if (d->_tok == d->_inline) {
			nt = malloc((size_t)cap * sizeof *nt);
			if (nt != NULL)
				memcpy(nt, d->_tok, (size_t)d->_n * sizeof *nt);
		} else {
			nt = realloc(d->_tok, (size_t)cap * sizeof *nt);
		}
		if (nt == NULL)
			return NULL;
		d->_tok = nt;
		d->_cap = cap;
	}
	t = &d->_tok[d->_n++];
	t->_start = start;
	t->_len = 0;
	t->_next = d->_n;
	t->_type = (uint8_t)type;
	t->_esc = 0;
	t->_int = 0;
	return t;
}

static const uint8_t *
skip_ws(const uint8_t *p, const uint8_t *end)
{
	/* lex_scan: ' ', '\t', '\n', '\r' only */
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int
hex4(const uint8_t *p, const uint8_t *end, int32_t *ret)
{
	int32_t v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		uint8_t c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*ret = v;
	return 0;
}

/* One UTF-8 sequence at p: its length, 0 when invalid (jansson's
 * utf8_check_first and utf8_check_full: no overlong forms, surrogates
 * or values past U+10FFFF). */
static size_t
utf8_len(const uint8_t *p, const uint8_t *end)
{
	uint8_t u = p[0];
	size_t n;
	uint32_t v;

	if (u < 0x80)
		return 1;
	if (u >= 0xC2 && u <= 0xDF) {
		n = 2;
		v = u & 0x1F;
	} else if (u >= 0xE0 && u <= 0xEF) {
		n = 3;
		v = u & 0x0F;
	} else if (u >= 0xF0 && u <= 0xF4) {
		n = 4;
		v = u & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 2 && v < 0x80)
	    || (n == 3 && v < 0x800) || (n == 4 && v < 0x10000))
		return 0;
	return n;
}

/* The escape at p (after the backslash) of a string already validated:
 * its code point and the bytes it takes. */
static uint32_t
escape_at(const uint8_t *p, const uint8_t *end, size_t *ret_used)
{
	int32_t v = 0, v2 = 0;

	*ret_used = 1;
	switch (*p) {
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	case 'u':
		break;
	default: /* '"', '\\', '/' */
		return *p;
	}
	(void)!hex4(p + 1, end, &v);
	*ret_used = 5;
	if (v >= 0xD800 && v <= 0xDBFF) {
		(void)!hex4(p + 7, end, &v2);
		*ret_used = 11;
		return (((uint32_t)v - 0xD800) << 10) + ((uint32_t)v2 - 0xDC00)
		    + 0x10000;
	}
	return (uint32_t)v;
}

static size_t
utf8_put(uint32_t v, uint8_t *out)
{
	if (v < 0x80) {
		out[0] = (uint8_t)v;
		return 1;
	}
	if (v < 0x800) {
		out[0] = (uint8_t)(0xC0 | (v >> 6));
		out[1] = (uint8_t)(0x80 | (v & 0x3F));
		return 2;
	}
	if (v < 0x10000) {
		out[0] = (uint8_t)(0xE0 | (v >> 12));
		out[1] = (uint8_t)(0x80 | ((v >> 6) & 0x3F));
		out[2] = (uint8_t)(0x80 | (v & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | (v >> 18));
	out[1] = (uint8_t)(0x80 | ((v >> 12) & 0x3F));
	out[2] = (uint8_t)(0x80 | ((v >> 6) & 0x3F));
	out[3] = (uint8_t)(0x80 | (v & 0x3F));
	return 4;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_HOST 1
#else
#define LITTLE_ENDIAN_HOST 0
#endif
#define ONES 0x0101010101010101u
#define HIGHS 0x8080808080808080u

/* The bytes of the 8 at p that are not plain string text (>= 0x80,
 * < 0x20, '"' or '\\'), flagged by their high bit: (x - n) & ~x & HIGHS
 * flags every byte below n and maybe bytes after one (a borrow), so the
 * lowest flag is always a real one. */
static uint64_t
special8(const uint8_t *p)
{
	uint64_t w, q, b;

	memcpy(&w, p, 8);
	q = w ^ (ONES * '"');
	b = w ^ (ONES * '\\');
	return (w | ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q)
	           | ((b - ONES) & ~b))
	    & HIGHS;
}

/* The string whose contents start at p: the closing quote, NULL when
 * jansson's lex_scan_string (and its \u0000 check) would refuse it. */
static const uint8_t *
scan_string(const uint8_t *p, const uint8_t *end, int *ret_esc)
{
	int32_t v, v2;
	size_t n;

	while (p < end) {
		uint8_t c;

		/* the common case: plain ASCII text, 8 bytes a step (on a
		 * little-endian host the lowest flag is the first byte) */
		while (LITTLE_ENDIAN_HOST && end - p >= 8) {
			uint64_t m = special8(p);

			if (m != 0) {
				p += (unsigned)__builtin_ctzll(m) / 8u;
				break;
			}
			p += 8;
		}
		if (p == end)
			break;
		c = *p;
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			p++;
			continue;
		}
		if (c == '"')
			return p;
		if (c < 0x20)
			return NULL; /* control character */
		if (c != '\\') {
			n = utf8_len(p, end);
			if (n == 0)
				return NULL;
			p += n;
			continue;
		}
		*ret_esc = 1;
		if (++p == end)
			return NULL;
		switch (*p) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p++;
			continue;
		case 'u':
			break;
		default:
			return NULL;
		}
		if (hex4(p + 1, end, &v) != 0)
			return NULL;
		p += 5;
		if (v >= 0xD800 && v <= 0xDBFF) {
			/* a high surrogate needs a low one right after */
			if (end - p < 2 || p[0] != '\\' || p[1] != 'u'
			    || hex4(p + 2, end, &v2) != 0 || v2 < 0xDC00
			    || v2 > 0xDFFF)
				return NULL;
			p += 6;
		} else if ((v >= 0xDC00 && v <= 0xDFFF) || v == 0) {
			return NULL; /* lone low surrogate; \u0000 */
		}
	}
	return NULL;
}

/* A real: refused when strtod overflows (jsonp_strtod). */
static int
real_ok(const uint8_t *p, size_t n)
{
	char small[64];
	char *buf = small;
	double v;
	int ok;

	if (n >= sizeof small) {
		buf = malloc(n + 1);
		if (buf == NULL)
			return -1;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	errno = 0;
	v = strtod(buf, NULL);
	ok = !((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE);
	if (buf != small)
		free(buf);
	return ok;
}

/* skip_digits: past one or more decimal digits at p, NULL when none. */
static const uint8_t *
skip_digits(const uint8_t *p, const uint8_t *end)
{
	if (p == end || *p < '0' || *p > '9')
		return NULL;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

/* The number at p into t: past its end, NULL when refused (lex_scan_number:
 * no leading zeros, digits after '.' and after the exponent, integers
 * within int64 -- strtoll's ERANGE). */
static const uint8_t *
scan_number(
    const uint8_t *p, const uint8_t *end, pf_json_tok *t, int *ret_nomem)
{
	const uint8_t *s = p;
	int neg = 0, real = 0;
	uint64_t v = 0;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (p == end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0') {
		p++;
	} else {
		while (p < end && *p >= '0' && *p <= '9') {
			unsigned dgt = (unsigned)(*p - '0');

			if (v > (UINT64_MAX - dgt) / 10)
				v = UINT64_MAX; /* past any int64: refused below */
			else
				v = v * 10 + dgt;
			p++;
		}
	}
	if (p < end && *p == '.') {
		p = skip_digits(p + 1, end);
		if (p == NULL)
			return NULL;
		real = 1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		p = skip_digits(p, end);
		if (p == NULL)
			return NULL;
		real = 1;
	}
	if (real) {
		int ok = real_ok(s, (size_t)(p - s));

		if (ok < 0)
			*ret_nomem = 1;
		if (ok <= 0)
			return NULL;
		t->_type = PF_JSON_REAL;
		return p;
	}
	if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
		return NULL;
	t->_type = PF_JSON_INTEGER;
	t->_int = neg ? (int64_t)(0 - v) : (int64_t)v;
	return p;
}

static int
literal(const uint8_t *p, const uint8_t *end, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* The scalar at p into a new token: past its end, NULL when refused. */
static const uint8_t *
scan_scalar(pf_json *d, const uint8_t *s, const uint8_t *p, const uint8_t *end,
    int *ret_esc, int *ret_nomem)
{
	pf_json_tok *t = tok_new(d, PF_JSON_NULL, (uint32_t)(p - s));
	const uint8_t *q;
	int esc = 0;

	if (t == NULL) {
		*ret_nomem = 1;
		return NULL;
	}
	switch (*p) {
	case '"':
		q = scan_string(p + 1, end, &esc);
		if (q == NULL)
			return NULL;
		t->_type = PF_JSON_STRING;
		t->_start = (uint32_t)(p + 1 - s);
		t->_len = (uint32_t)(q - (p + 1));
		t->_esc = (uint8_t)esc;
		*ret_esc |= esc;
		return q + 1;
	case 't':
		t->_type = PF_JSON_TRUE;
		return literal(p, end, "true") ? p + 4 : NULL;
	case 'f':
		t->_type = PF_JSON_FALSE;
		return literal(p, end, "false") ? p + 5 : NULL;
	case 'n':
		return literal(p, end, "null") ? p + 4 : NULL;
	default:
		if (*p == '-' || (*p >= '0' && *p <= '9'))
			return scan_number(p, end, t, ret_nomem);
		return NULL;
	}
}

pf_err
pf_json_parse(pf_json *d, const void *buf, size_t len)
{
	const uint8_t *s = buf, *end = s + len, *p;
	uint32_t stack_inline[STACK_INLINE];
	uint32_t *stack = stack_inline;
	size_t depth = 0, cap = STACK_INLINE;
	int esc = 0, nomem = 0;
	pf_err err = PF_EINVAL;
	uint32_t top;
	pf_json_tok *t;

	d->_n = 0;
	d->_src = buf;
	if (len >= UINT32_MAX)
		goto fail;
	/* parse_json: '[' or '{' expected at the top */
	p = skip_ws(s, end);
	if (p == end || (*p != '{' && *p != '['))
		goto fail;
value:
	/* parse_value: lex->depth counts every value, the top one is 1 */
	if (depth + 1 > DEPTH_MAX || p == end)
		goto fail;
	if (*p == '{' || *p == '[') {
		t = tok_new(d, *p == '{' ? PF_JSON_OBJECT : PF_JSON_ARRAY,
		    (uint32_t)(p - s));
		if (t == NULL)
			goto nomem;
		if (depth == cap) {
			uint32_t *ns = malloc(2 * cap * sizeof *ns);

			if (ns == NULL)
				goto nomem;
			memcpy(ns, stack, depth * sizeof *ns);
			if (stack != stack_inline)
				free(stack);
			stack = ns;
			cap *= 2;
		}
		stack[depth++] = d->_n - 1;
		p = skip_ws(p + 1, end);
		if (p < end && *p == (t->_type == PF_JSON_OBJECT ? '}' : ']')) {
			p++;
			depth--;
			goto after;
		}
		if (t->_type == PF_JSON_OBJECT)
			goto key;
		goto value;
	}
	p = scan_scalar(d, s, p, end, &esc, &nomem);
	if (p == NULL)
		goto scalar_fail;
	/* jansson's quirk: the byte after a number or a literal is "ungot"
	 * (lex_unget_unsave), and an ungot NUL reads as an empty slot of
	 * its stream buffer, so the next read skips it */
	if (p < end && *p == '\0' && d->_tok[d->_n - 1]._type != PF_JSON_STRING)
		p++;
after:
	/* a value ended at p; the container it closed (if any) is done */
	if (depth == 0) {
		d->_tok[0]._next = d->_n;
		p = skip_ws(p, end);
		if (p != end)
			goto fail; /* end of file expected */
		goto done;
	}
	top = stack[depth - 1];
	d->_tok[top]._len++;
	p = skip_ws(p, end);
	if (p < end && *p == ',') {
		p = skip_ws(p + 1, end);
		if (d->_tok[top]._type == PF_JSON_OBJECT)
			goto key;
		goto value;
	}
	if (p < end
	    && *p == (d->_tok[top]._type == PF_JSON_OBJECT ? '}' : ']')) {
		p++;
		d->_tok[top]._next = d->_n;
		depth--;
		goto after;
	}
	goto fail;
key:
	/* parse_object: string or '}' expected, then ':' */
	if (p == end || *p != '"')
		goto fail;
	p = scan_scalar(d, s, p, end, &esc, &nomem);
	if (p == NULL)
		goto scalar_fail;
	p = skip_ws(p, end);
	if (p == end || *p != ':')
		goto fail;
	p = skip_ws(p + 1, end);
	goto value;
scalar_fail:
	if (nomem)
		goto nomem;
	goto fail;
done:
	if (stack != stack_inline)
		free(stack);
	if (esc) {
		/* decoded strings live at their raw offsets (never longer) */
		d->_dec = malloc(len);
		if (d->_dec == NULL) {
			d->_n = 0;
			return PF_ENOMEM;
		}
	}
	return PF_OK;
nomem:
	err = PF_ENOMEM;
fail:
	if (stack != stack_inline)
		free(stack);
	d->_n = 0;
	return err;
}

static const pf_json_tok *
tok_at(const pf_json *d, int v)
{
	if (v < 0 || (uint32_t)v >= d->_n)
		return NULL;
	return &d->_tok[v];
}

enum pf_json_type
pf_json_type(const pf_json *d, int v)
{
	const pf_json_tok *t = tok_at(d, v);

	return t != NULL ? (enum pf_json_type)t->_type : PF_JSON_NONE;
}

int
pf_json_str_eq(const pf_json *d, int v, const char *s, size_t n)
{
	const pf_json_tok *t = tok_at(d, v);
	const uint8_t *p, *end;
	uint8_t u[4];
	size_t used, k, i = 0;

	if (t == NULL || t->_type != PF_JSON_STRING)
		return 0;
	p = (const uint8_t *)d->_src + t->_start;
	end = p + t->_len;
	if (!t->_esc)
		return t->_len == n && memcmp(p, s, n) == 0;
	while (p < end) {
		if (*p != '\\') {
			if (i == n || (uint8_t)s[i] != *p)
				return 0;
			i++;
			p++;
			continue;
		}
		k = utf8_put(escape_at(p + 1, end, &used), u);
		if (n - i < k || memcmp(s + i, u, k) != 0)
			return 0;
		i += k;
		p += 1 + used;
	}
	return i == n;
}

int
pf_json_get(const pf_json *d, int obj, const char *key)
{
	const pf_json_tok *t = tok_at(d, obj);
	size_t n = strlen(key);
	uint32_t i;
	int found = -1;

	if (t == NULL || t->_type != PF_JSON_OBJECT)
		return -1;
	/* members are key, value pairs; the last equal key wins */
	for (i = (uint32_t)obj + 1; i < t->_next; i = d->_tok[i + 1]._next) {
		const pf_json_tok *k = &d->_tok[i];

		if (k->_esc ? pf_json_str_eq(d, (int)i, key, n)
		            : k->_len == n
		            && memcmp(d->_src + k->_start, key, n) == 0)
			found = (int)i + 1;
	}
	return found;
}

size_t
pf_json_count(const pf_json *d, int v)
{
	const pf_json_tok *t = tok_at(d, v);

	if (t == NULL
	    || (t->_type != PF_JSON_OBJECT && t->_type != PF_JSON_ARRAY))
		return 0;
	return t->_len;
}

int
pf_json_first(const pf_json *d, int arr)
{
	const pf_json_tok *t = tok_at(d, arr);

	if (t == NULL || t->_type != PF_JSON_ARRAY || t->_len == 0)
		return -1;
	return arr + 1;
}

int
pf_json_next(const pf_json *d, int arr, int elem)
{
	const pf_json_tok *a = tok_at(d, arr);
	const pf_json_tok *e = tok_at(d, elem);

	if (a == NULL || e == NULL || a->_type != PF_JSON_ARRAY
	    || e->_next >= a->_next)
		return -1;
	return (int)e->_next;
}

int64_t
pf_json_int(const pf_json *d, int v)
{
	const pf_json_tok *t = tok_at(d, v);

	return t != NULL && t->_type == PF_JSON_INTEGER ? t->_int : 0;
}

const char *
pf_json_str(pf_json *d, int v, size_t *ret_len)
{
	const pf_json_tok *t = tok_at(d, v);
	const uint8_t *p, *end;
	uint8_t *out, *o;
	size_t used;

	if (t == NULL || t->_type != PF_JSON_STRING)
		return NULL;
	p = (const uint8_t *)d->_src + t->_start;
	if (!t->_esc) {
		*ret_len = t->_len;
		return (const char *)p;
	}
	end = p + t->_len;
	out = o = (uint8_t *)d->_dec + t->_start;
	while (p < end) {
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		o += utf8_put(escape_at(p + 1, end, &used), o);
		p += 1 + used;
	}
	*ret_len = (size_t)(o - out);
	return (const char *)out;
}
