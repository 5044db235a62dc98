#include <string.h>

#include "workers/sse.h"

void
wrk_sse_init(wrk_sse *s, size_t max)
{
	wrk_buf_init(&s->_tail);
	s->_max = max;
	s->_line = 0;
	s->_cr = 0;
	s->_content = 0;
}

void
wrk_sse_fini(wrk_sse *s)
{
	wrk_buf_fini(&s->_tail);
}

size_t
wrk_sse_buffered(const wrk_sse *s)
{
	return s->_tail.len;
}

/* Deliver the event made of the buffered tail plus in[start..end). */
static pf_err
emit(wrk_sse *s, const uint8_t *in, size_t start, size_t end,
    wrk_sse_event_cb cb, void *arg)
{
	pf_err err;

	if (s->_tail.len == 0) {
		if (end - start > s->_max)
			return PF_ETOOBIG;
		return cb(arg, in + start, end - start);
	}
	err = wrk_buf_append(&s->_tail, in + start, end - start, s->_max);
	if (err != PF_OK)
		return err;
	err = cb(arg, s->_tail.data, s->_tail.len);
	s->_tail.len = 0;
	return err;
}

/* A line ended at input offset pos (terminator included).  Updates *start
 * when an event was delivered or leading blank lines were dropped. */
static pf_err
end_line(wrk_sse *s, const uint8_t *in, size_t *start, size_t pos,
    wrk_sse_event_cb cb, void *arg)
{
	pf_err err;

	if (s->_line > 0) {
		s->_content = 1;
		s->_line = 0;
		return PF_OK;
	}
	if (s->_content) {
		s->_content = 0;
		err = emit(s, in, *start, pos, cb, arg);
		*start = pos;
		return err;
	}
	/* Blank line before any content: drop it. */
	s->_tail.len = 0;
	*start = pos;
	return PF_OK;
}

pf_err
wrk_sse_feed(
    wrk_sse *s, const void *data, size_t len, wrk_sse_event_cb cb, void *arg)
{
	const uint8_t *in = data;
	size_t start = 0;
	pf_err err;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];

		if (s->_cr) {
			s->_cr = 0;
			if (c == '\n') {
				err = end_line(s, in, &start, i + 1, cb, arg);
				if (err != PF_OK)
					return err;
				continue;
			}
			err = end_line(s, in, &start, i, cb, arg);
			if (err != PF_OK)
				return err;
		}
		if (c == '\r') {
			s->_cr = 1;
		} else if (c == '\n') {
			err = end_line(s, in, &start, i + 1, cb, arg);
			if (err != PF_OK)
				return err;
		} else {
			s->_line++;
		}
	}
	if (start < len)
		return wrk_buf_append(
		    &s->_tail, in + start, len - start, s->_max);
	return PF_OK;
}

pf_err
wrk_sse_finish(wrk_sse *s, wrk_sse_event_cb cb, void *arg)
{
	static const uint8_t none[1] = { 0 };
	size_t start = 0;
	pf_err err;

	if (s->_cr) {
		/* a CR at the very end ends its line after all */
		s->_cr = 0;
		err = end_line(s, none, &start, 0, cb, arg);
		if (err != PF_OK)
			return err;
	}
	/* An event the stream ended inside is discarded (as the SSE
	 * spec's parser does): a half JSON line would only break
	 * clients. */
	s->_tail.len = 0;
	s->_content = 0;
	s->_line = 0;
	return PF_OK;
}

int
wrk_sse_data(const uint8_t *ev, size_t len, wrk_buf *out)
{
	size_t i = 0;
	int found = 0;

	out->len = 0;
	while (i < len) {
		size_t j = i, n;
		const uint8_t *v;

		while (j < len && ev[j] != '\n' && ev[j] != '\r')
			j++;
		n = j - i;
		if (n >= 4 && memcmp(ev + i, "data", 4) == 0
		    && (n == 4 || ev[i + 4] == ':')) {
			v = ev + i + (n > 4 ? 5 : 4);
			n -= n > 4 ? 5 : 4;
			if (n > 0 && v[0] == ' ') {
				v++;
				n--;
			}
			if (found && wrk_buf_append(out, "\n", 1, len) != PF_OK)
				return -1;
			if (wrk_buf_append(out, v, n, len) != PF_OK)
				return -1;
			found = 1;
		}
		if (j < len && ev[j] == '\r')
			j++;
		if (j < len && ev[j] == '\n')
			j++;
		i = j;
	}
	return found;
}
