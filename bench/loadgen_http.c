/*
 * loadgen_http.c -- incremental HTTP/1.1 response parser (see header).
 */
#include "bench/loadgen_http.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum {
	ST_STATUS = 0, /* status line */
	ST_HEADER,     /* header lines */
	ST_BODY_LEN,   /* Content-Length body */
	ST_BODY_CLOSE, /* body until EOF */
	ST_CHUNK_SIZE, /* chunk-size line */
	ST_CHUNK_DATA,
	ST_CHUNK_CRLF, /* the CRLF after chunk data */
	ST_TRAILER,    /* trailer lines after the last chunk */
	ST_DONE,
};

void
lg_http_reset(lg_http *p)
{
	p->status = 0;
	p->headers_done = 0;
	p->sse = 0;
	p->keep_alive = 1;
	p->until_close = 0;
	p->done_marker = 0;
	p->events = 0;
	p->body_bytes = 0;
	p->prompt_tokens = -1;
	p->completion_tokens = -1;
	p->request_id[0] = '\0';
	p->_state = ST_STATUS;
	p->_chunked = 0;
	p->_remaining = 0;
	p->_ev_nl = 0;
	p->_ev_len = 0;
	p->_line_len = 0;
}

/* Appends bytes up to '\n' to the line buffer.  Returns 1 when a line is
 * complete (without CR LF, NUL-terminated), 0 when more is needed, -1 when
 * the line is too long. */
static int
take_line(lg_http *p, const char *d, size_t len, size_t *pos)
{
	const char *nl = memchr(d + *pos, '\n', len - *pos);
	size_t n = nl ? (size_t)(nl - (d + *pos)) : len - *pos;
	if (p->_line_len + n + 1 > sizeof(p->_line))
		return -1;
	memcpy(p->_line + p->_line_len, d + *pos, n);
	p->_line_len += n;
	*pos += n;
	if (!nl)
		return 0;
	(*pos)++;
	if (p->_line_len > 0 && p->_line[p->_line_len - 1] == '\r')
		p->_line_len--;
	p->_line[p->_line_len] = '\0';
	return 1;
}

static int
parse_u64(const char *s, int base, uint64_t *ret)
{
	uint64_t v = 0;
	int any = 0;
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)d;
		any = 1;
	}
	if (!any)
		return -1;
	*ret = v;
	return 0;
}

static int
status_line(lg_http *p)
{
	const char *l = p->_line;
	if (strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1')
	    || l[8] != ' ')
		return -1;
	if (!isdigit((unsigned char)l[9]) || !isdigit((unsigned char)l[10])
	    || !isdigit((unsigned char)l[11]))
		return -1;
	p->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (p->status < 100)
		return -1;
	p->keep_alive = l[7] == '1';
	return 0;
}

static int
has_token(const char *v, const char *tok)
{
	size_t n = strlen(tok);
	for (; *v; v++) {
		if (strncasecmp(v, tok, n) == 0)
			return 1;
	}
	return 0;
}

/* Keeps an x-request-id value made of [0-9A-Za-z_-] that fits, else "". */
static void
request_id(lg_http *p, const char *v)
{
	size_t n = 0;
	while (v[n] && v[n] != ' ' && v[n] != '\t') {
		char c = v[n];
		if (n >= PF_LOADGEN_REQUEST_ID_MAX
		    || (!isalnum((unsigned char)c) && c != '-' && c != '_')) {
			p->request_id[0] = '\0';
			return;
		}
		n++;
	}
	memcpy(p->request_id, v, n);
	p->request_id[n] = '\0';
}

static int
header_line(lg_http *p)
{
	char *colon = strchr(p->_line, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	const char *name = p->_line;
	if (strcasecmp(name, "content-length") == 0) {
		if (parse_u64(v, 10, &p->_remaining) != 0)
			return -1;
		p->until_close = 0;
		p->_state = ST_HEADER;
		p->_chunked = p->_chunked == 1 ? 1 : 2; /* 2 = length seen */
	} else if (strcasecmp(name, "transfer-encoding") == 0) {
		if (has_token(v, "chunked"))
			p->_chunked = 1;
	} else if (strcasecmp(name, "connection") == 0) {
		if (has_token(v, "close"))
			p->keep_alive = 0;
		else if (has_token(v, "keep-alive"))
			p->keep_alive = 1;
	} else if (strcasecmp(name, "content-type") == 0) {
		p->sse = has_token(v, "text/event-stream");
	} else if (strcasecmp(name, "x-request-id") == 0) {
		request_id(p, v);
	}
	return 0;
}

/* Reads the integer after "key": in s (NUL-terminated), or -1. */
static int64_t
json_int_after(const char *s, const char *key)
{
	const char *k = strstr(s, key);
	if (!k)
		return -1;
	k += strlen(key);
	while (*k == ' ' || *k == ':' || *k == '\t')
		k++;
	uint64_t v;
	if (parse_u64(k, 10, &v) != 0 || v > INT64_MAX)
		return -1;
	return (int64_t)v;
}

static void
scan_usage(lg_http *p)
{
	p->_ev[p->_ev_len < sizeof(p->_ev) ? p->_ev_len : sizeof(p->_ev) - 1]
	    = '\0';
	if (!strstr(p->_ev, "\"usage\""))
		return;
	int64_t pt = json_int_after(p->_ev, "\"prompt_tokens\"");
	if (pt < 0)
		pt = json_int_after(p->_ev, "\"input_tokens\"");
	int64_t ct = json_int_after(p->_ev, "\"completion_tokens\"");
	if (ct < 0)
		ct = json_int_after(p->_ev, "\"output_tokens\"");
	if (pt >= 0)
		p->prompt_tokens = pt;
	if (ct >= 0)
		p->completion_tokens = ct;
}

static void
end_event(lg_http *p, uint32_t *new_events)
{
	p->events++;
	(*new_events)++;
	size_t n
	    = p->_ev_len < sizeof(p->_ev) ? p->_ev_len : sizeof(p->_ev) - 1;
	p->_ev[n] = '\0';
	/* the end of a stream: OpenAI's [DONE], Anthropic's message_stop */
	if (strstr(p->_ev, "data: [DONE]") || strstr(p->_ev, "data:[DONE]")
	    || strstr(p->_ev, "event: message_stop")
	    || strstr(p->_ev, "\"type\":\"message_stop\""))
		p->done_marker = 1;
	else
		scan_usage(p);
	p->_ev_len = 0;
}

/* Body bytes (after de-chunking). */
static void
body(lg_http *p, const char *d, size_t n, uint32_t *new_events)
{
	p->body_bytes += n;
	if (!p->sse || p->status < 200 || p->status > 299) {
		/* keep the tail: the usage object ends a JSON answer */
		size_t cap = sizeof(p->_ev) - 1;
		if (n >= cap) {
			memcpy(p->_ev, d + n - cap, cap);
			p->_ev_len = cap;
		} else {
			if (p->_ev_len + n > cap) {
				size_t drop = p->_ev_len + n - cap;
				memmove(
				    p->_ev, p->_ev + drop, p->_ev_len - drop);
				p->_ev_len -= drop;
			}
			memcpy(p->_ev + p->_ev_len, d, n);
			p->_ev_len += n;
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char c = d[i];
		if (c == '\n') {
			if (p->_ev_nl) {
				p->_ev_nl = 0;
				if (p->_ev_len > 0)
					end_event(p, new_events);
				continue;
			}
			p->_ev_nl = 1;
		} else if (c != '\r') {
			p->_ev_nl = 0;
		}
		if (p->_ev_len < sizeof(p->_ev) - 1)
			p->_ev[p->_ev_len] = c;
		if (c != '\r')
			p->_ev_len++;
	}
}

static lg_http_rc
finish(lg_http *p, size_t pos, size_t *used)
{
	if (!p->sse || p->status < 200 || p->status > 299)
		scan_usage(p);
	p->_state = ST_DONE;
	*used = pos;
	return LG_HTTP_DONE;
}

static int
headers_end(lg_http *p)
{
	p->headers_done = 1;
	if (p->status >= 100 && p->status < 200) {
		/* interim response: parse the real one */
		int st = p->status;
		(void)st;
		lg_http_reset(p);
		return ST_STATUS;
	}
	if (p->status == 204 || p->status == 304)
		return ST_DONE;
	if (p->_chunked == 1)
		return ST_CHUNK_SIZE;
	if (p->_chunked == 2)
		return p->_remaining == 0 ? ST_DONE : ST_BODY_LEN;
	p->until_close = 1;
	p->keep_alive = 0;
	return ST_BODY_CLOSE;
}

lg_http_rc
lg_http_feed(
    lg_http *p, const char *d, size_t len, size_t *used, uint32_t *new_events)
{
	size_t pos = 0;
	*new_events = 0;
	while (pos < len || p->_state == ST_DONE) {
		int r;
		switch (p->_state) {
		case ST_STATUS:
		case ST_HEADER:
		case ST_CHUNK_SIZE:
		case ST_CHUNK_CRLF:
		case ST_TRAILER:
			r = take_line(p, d, len, &pos);
			if (r < 0)
				return LG_HTTP_MALFORMED;
			if (r == 0)
				break;
			p->_line_len = 0;
			if (p->_state == ST_STATUS) {
				if (status_line(p) != 0)
					return LG_HTTP_MALFORMED;
				p->_state = ST_HEADER;
			} else if (p->_state == ST_HEADER) {
				if (p->_line[0] == '\0')
					p->_state = headers_end(p);
				else if (header_line(p) != 0)
					return LG_HTTP_MALFORMED;
			} else if (p->_state == ST_CHUNK_SIZE) {
				if (parse_u64(p->_line, 16, &p->_remaining)
				    != 0)
					return LG_HTTP_MALFORMED;
				p->_state = p->_remaining ? ST_CHUNK_DATA
				                          : ST_TRAILER;
			} else if (p->_state == ST_CHUNK_CRLF) {
				if (p->_line[0] != '\0')
					return LG_HTTP_MALFORMED;
				p->_state = ST_CHUNK_SIZE;
			} else if (p->_line[0] == '\0') {
				return finish(p, pos, used);
			}
			break;
		case ST_BODY_LEN:
		case ST_CHUNK_DATA: {
			size_t n = len - pos;
			if (n > p->_remaining)
				n = (size_t)p->_remaining;
			body(p, d + pos, n, new_events);
			pos += n;
			p->_remaining -= n;
			if (p->_remaining > 0)
				break;
			if (p->_state == ST_BODY_LEN)
				return finish(p, pos, used);
			p->_state = ST_CHUNK_CRLF;
			break;
		}
		case ST_BODY_CLOSE:
			body(p, d + pos, len - pos, new_events);
			pos = len;
			break;
		case ST_DONE:
			return finish(p, pos, used);
		default:
			return LG_HTTP_MALFORMED;
		}
	}
	*used = pos;
	return LG_HTTP_MORE;
}

lg_http_rc
lg_http_eof(lg_http *p)
{
	if (p->_state == ST_BODY_CLOSE) {
		uint32_t unused = 0;
		if (p->sse && p->_ev_len > 0)
			end_event(p, &unused);
		else
			scan_usage(p);
		p->_state = ST_DONE;
		return LG_HTTP_DONE;
	}
	return LG_HTTP_MALFORMED;
}
