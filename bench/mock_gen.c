/*
 * mock_gen.c -- deterministic bodies and stream events for the mock model.
 *
 * Everything is written with small put helpers instead of printf: the
 * non-stream path runs tens of thousands of times a second.
 */
#include <string.h>

#include "bench/mock_gen.h"

#define PUT_LIT(o, s) mock_out_put((o), (s), sizeof(s) - 1)

static const char pad_x[64] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

void
mock_out_init(mock_out *o, char *buf, size_t cap, size_t skip)
{
	o->buf = buf;
	o->cap = buf != NULL ? cap : 0;
	o->skip = skip;
	o->len = 0;
	o->total = 0;
	o->_skipped = skip;
}

void
mock_out_put(mock_out *o, const void *s, size_t n)
{
	const char *p = s;
	size_t room;

	o->total += n;
	if (o->buf == NULL)
		return;
	if (o->skip >= n) {
		o->skip -= n;
		return;
	}
	p += o->skip;
	n -= o->skip;
	o->skip = 0;
	room = o->cap - o->len;
	if (n > room)
		n = room;
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

bool
mock_out_complete(const mock_out *o)
{
	if (o->buf == NULL)
		return true;
	return o->total <= o->_skipped + o->cap;
}

static void
put_u64(mock_out *o, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	mock_out_put(o, tmp + i, sizeof(tmp) - i);
}

void
mock_put_json_str(mock_out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	PUT_LIT(o, "\"");
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[6];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		mock_out_put(o, run, (size_t)(s - run));
		run = s + 1;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			mock_out_put(o, esc, 2);
			continue;
		}
		memcpy(esc, "\\u00", 4);
		esc[4] = hex[c >> 4];
		esc[5] = hex[c & 15];
		mock_out_put(o, esc, 6);
	}
	mock_out_put(o, run, (size_t)(s - run));
	PUT_LIT(o, "\"");
}

uint32_t
mock_tokens_of_bytes(uint64_t bytes)
{
	uint64_t t = (bytes + 3) / 4;

	return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

/* put_chunk_text writes the (JSON-safe) text of content chunk i. */
static void
put_chunk_text(mock_out *o, const mock_reply *r, uint32_t i)
{
	char tok[24];
	size_t n, want;
	mock_out t;

	mock_out_init(&t, tok, sizeof(tok), 0);
	PUT_LIT(&t, "tok");
	put_u64(&t, i);
	PUT_LIT(&t, " ");
	n = t.len;
	if (r->chunk_bytes == 0) {
		mock_out_put(o, tok, n);
		return;
	}
	want = r->chunk_bytes;
	if (want <= n) {
		mock_out_put(o, tok, want);
		return;
	}
	mock_out_put(o, tok, n);
	want -= n;
	while (want > 0) {
		size_t k = want < sizeof(pad_x) ? want : sizeof(pad_x);

		mock_out_put(o, pad_x, k);
		want -= k;
	}
}

static void
put_full_text(mock_out *o, const mock_reply *r)
{
	PUT_LIT(o, "\"");
	for (uint32_t i = 0; i < r->chunks; i++)
		put_chunk_text(o, r, i);
	PUT_LIT(o, "\"");
}

static bool
has_usage(const mock_reply *r)
{
	return !r->no_usage;
}

/* OpenAI chat/completions usage object. */
static void
put_openai_usage(mock_out *o, const mock_reply *r)
{
	PUT_LIT(o, "{\"prompt_tokens\":");
	put_u64(o, r->prompt_tokens);
	PUT_LIT(o, ",\"completion_tokens\":");
	put_u64(o, r->chunks);
	PUT_LIT(o, ",\"total_tokens\":");
	put_u64(o, (uint64_t)r->prompt_tokens + r->chunks);
	if (r->api == MOCK_API_CHAT)
		PUT_LIT(o,
		    ",\"prompt_tokens_details\":{\"cached_tokens\":0},"
		    "\"completion_tokens_details\":"
		    "{\"reasoning_tokens\":0}");
	PUT_LIT(o, "}");
}

static void
put_finish(mock_out *o, const mock_reply *r)
{
	if (r->length_stop)
		PUT_LIT(o, "\"length\"");
	else
		PUT_LIT(o, "\"stop\"");
}

/* ---- chat completions and legacy completions ---- */

static void
put_openai_head(mock_out *o, const mock_reply *r, bool chunk)
{
	if (r->api == MOCK_API_CHAT) {
		PUT_LIT(o, "{\"id\":\"chatcmpl-mock-");
		put_u64(o, r->seq);
		if (chunk)
			PUT_LIT(o, "\",\"object\":\"chat.completion.chunk\"");
		else
			PUT_LIT(o, "\",\"object\":\"chat.completion\"");
	} else {
		PUT_LIT(o, "{\"id\":\"cmpl-mock-");
		put_u64(o, r->seq);
		PUT_LIT(o, "\",\"object\":\"text_completion\"");
	}
	PUT_LIT(o, ",\"created\":");
	put_u64(o, (uint64_t)r->created);
	PUT_LIT(o, ",\"model\":");
	mock_put_json_str(o, r->model);
	if (r->api == MOCK_API_CHAT)
		PUT_LIT(o, ",\"system_fingerprint\":\"fp_mock\"");
	PUT_LIT(o, ",\"choices\":[");
}

static void
put_usage_null(mock_out *o, const mock_reply *r)
{
	if (r->include_usage && has_usage(r))
		PUT_LIT(o, ",\"usage\":null");
}

static void
openai_body(const mock_reply *r, mock_out *o)
{
	put_openai_head(o, r, false);
	if (r->api == MOCK_API_CHAT) {
		PUT_LIT(o,
		    "{\"index\":0,\"message\":{\"role\":\"assistant\","
		    "\"content\":");
		put_full_text(o, r);
		PUT_LIT(o,
		    ",\"refusal\":null},\"logprobs\":null,"
		    "\"finish_reason\":");
	} else {
		PUT_LIT(o, "{\"text\":");
		put_full_text(o, r);
		PUT_LIT(o,
		    ",\"index\":0,\"logprobs\":null,"
		    "\"finish_reason\":");
	}
	put_finish(o, r);
	PUT_LIT(o, "}]");
	if (has_usage(r)) {
		PUT_LIT(o, ",\"usage\":");
		put_openai_usage(o, r);
	}
	PUT_LIT(o, "}");
}

/* Stream layout: chat [role] content.. [finish] [usage] [DONE];
 * completions content.. [finish] [usage] [DONE]. */
static void
openai_event(const mock_reply *r, uint32_t idx, mock_out *o)
{
	uint32_t pre = mock_stream_pre(r);
	bool usage_chunk = r->include_usage && has_usage(r);

	if (idx == mock_stream_events(r) - 1) {
		PUT_LIT(o, "data: [DONE]\n\n");
		return;
	}
	PUT_LIT(o, "data: ");
	put_openai_head(o, r, true);
	if (idx < pre) {
		PUT_LIT(o,
		    "{\"index\":0,\"delta\":{\"role\":\"assistant\","
		    "\"content\":\"\"},\"logprobs\":null,"
		    "\"finish_reason\":null}]");
	} else if (idx < pre + r->chunks) {
		if (r->api == MOCK_API_CHAT) {
			PUT_LIT(o, "{\"index\":0,\"delta\":{\"content\":\"");
			put_chunk_text(o, r, idx - pre);
			PUT_LIT(o,
			    "\"},\"logprobs\":null,"
			    "\"finish_reason\":null}]");
		} else {
			PUT_LIT(o, "{\"text\":\"");
			put_chunk_text(o, r, idx - pre);
			PUT_LIT(o,
			    "\",\"index\":0,\"logprobs\":null,"
			    "\"finish_reason\":null}]");
		}
	} else if (idx == pre + r->chunks) {
		if (r->api == MOCK_API_CHAT)
			PUT_LIT(o,
			    "{\"index\":0,\"delta\":{},"
			    "\"logprobs\":null,\"finish_reason\":");
		else
			PUT_LIT(o,
			    "{\"text\":\"\",\"index\":0,"
			    "\"logprobs\":null,\"finish_reason\":");
		put_finish(o, r);
		PUT_LIT(o, "}]");
	} else if (usage_chunk) {
		PUT_LIT(o, "],\"usage\":");
		put_openai_usage(o, r);
		PUT_LIT(o, "}\n\n");
		return;
	}
	put_usage_null(o, r);
	PUT_LIT(o, "}\n\n");
}

/* ---- OpenAI Responses ---- */

static void
put_resp_usage(mock_out *o, const mock_reply *r)
{
	PUT_LIT(o, "{\"input_tokens\":");
	put_u64(o, r->prompt_tokens);
	PUT_LIT(o,
	    ",\"input_tokens_details\":{\"cached_tokens\":0},"
	    "\"output_tokens\":");
	put_u64(o, r->chunks);
	PUT_LIT(o,
	    ",\"output_tokens_details\":{\"reasoning_tokens\":0},"
	    "\"total_tokens\":");
	put_u64(o, (uint64_t)r->prompt_tokens + r->chunks);
	PUT_LIT(o, "}");
}

static void
put_resp_item_id(mock_out *o, const mock_reply *r)
{
	PUT_LIT(o, "\"msg_mock");
	put_u64(o, r->seq);
	PUT_LIT(o, "\"");
}

static void
put_resp_part(mock_out *o, const mock_reply *r, bool full)
{
	PUT_LIT(o, "{\"type\":\"output_text\",\"text\":");
	if (full)
		put_full_text(o, r);
	else
		PUT_LIT(o, "\"\"");
	PUT_LIT(o, ",\"annotations\":[]}");
}

static void
put_resp_item(mock_out *o, const mock_reply *r, bool done)
{
	PUT_LIT(o, "{\"id\":");
	put_resp_item_id(o, r);
	if (done) {
		PUT_LIT(o,
		    ",\"type\":\"message\",\"status\":\"completed\","
		    "\"role\":\"assistant\",\"content\":[");
		put_resp_part(o, r, true);
		PUT_LIT(o, "]}");
	} else {
		PUT_LIT(o,
		    ",\"type\":\"message\",\"status\":\"in_progress\","
		    "\"role\":\"assistant\",\"content\":[]}");
	}
}

/* put_resp_object writes a Response; done = final state with output and
 * usage. */
static void
put_resp_object(mock_out *o, const mock_reply *r, bool done)
{
	PUT_LIT(o, "{\"id\":\"resp_mock");
	put_u64(o, r->seq);
	PUT_LIT(o, "\",\"object\":\"response\",\"created_at\":");
	put_u64(o, (uint64_t)r->created);
	if (!done)
		PUT_LIT(o, ",\"status\":\"in_progress\"");
	else if (r->length_stop)
		PUT_LIT(o, ",\"status\":\"incomplete\"");
	else
		PUT_LIT(o, ",\"status\":\"completed\"");
	PUT_LIT(o, ",\"error\":null,\"incomplete_details\":");
	if (done && r->length_stop)
		PUT_LIT(o, "{\"reason\":\"max_output_tokens\"}");
	else
		PUT_LIT(o, "null");
	PUT_LIT(o,
	    ",\"instructions\":null,\"max_output_tokens\":null,"
	    "\"model\":");
	mock_put_json_str(o, r->model);
	PUT_LIT(o, ",\"output\":[");
	if (done)
		put_resp_item(o, r, true);
	PUT_LIT(o,
	    "],\"parallel_tool_calls\":true,"
	    "\"previous_response_id\":null,"
	    "\"reasoning\":{\"effort\":null,\"summary\":null},"
	    "\"store\":false,\"temperature\":1.0,"
	    "\"text\":{\"format\":{\"type\":\"text\"}},"
	    "\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,"
	    "\"truncation\":\"disabled\",\"usage\":");
	if (done && has_usage(r))
		put_resp_usage(o, r);
	else
		PUT_LIT(o, "null");
	PUT_LIT(o, ",\"user\":null,\"metadata\":{}}");
}

static void
put_resp_event_head(mock_out *o, const char *type, uint32_t seqno)
{
	PUT_LIT(o, "event: ");
	mock_out_put(o, type, strlen(type));
	PUT_LIT(o, "\ndata: {\"type\":\"");
	mock_out_put(o, type, strlen(type));
	PUT_LIT(o, "\",\"sequence_number\":");
	put_u64(o, seqno);
}

static void
put_resp_where(mock_out *o, const mock_reply *r)
{
	PUT_LIT(o, ",\"item_id\":");
	put_resp_item_id(o, r);
	PUT_LIT(o, ",\"output_index\":0,\"content_index\":0");
}

/* Stream layout: created, in_progress, output_item.added,
 * content_part.added, output_text.delta.., output_text.done,
 * content_part.done, output_item.done, completed (or incomplete). */
static void
responses_event(const mock_reply *r, uint32_t idx, mock_out *o)
{
	uint32_t pre = mock_stream_pre(r);
	uint32_t post = idx >= pre + r->chunks ? idx - pre - r->chunks : 0;

	if (idx >= pre && idx < pre + r->chunks) {
		put_resp_event_head(o, "response.output_text.delta", idx);
		put_resp_where(o, r);
		PUT_LIT(o, ",\"delta\":\"");
		put_chunk_text(o, r, idx - pre);
		PUT_LIT(o, "\",\"logprobs\":[]}\n\n");
		return;
	}
	if (idx == 0 || idx == 1) {
		put_resp_event_head(o,
		    idx == 0 ? "response.created" : "response.in_progress",
		    idx);
		PUT_LIT(o, ",\"response\":");
		put_resp_object(o, r, false);
	} else if (idx == 2) {
		put_resp_event_head(o, "response.output_item.added", idx);
		PUT_LIT(o, ",\"output_index\":0,\"item\":");
		put_resp_item(o, r, false);
	} else if (idx == 3) {
		put_resp_event_head(o, "response.content_part.added", idx);
		put_resp_where(o, r);
		PUT_LIT(o, ",\"part\":");
		put_resp_part(o, r, false);
	} else if (post == 0) {
		put_resp_event_head(o, "response.output_text.done", idx);
		put_resp_where(o, r);
		PUT_LIT(o, ",\"text\":");
		put_full_text(o, r);
		PUT_LIT(o, ",\"logprobs\":[]");
	} else if (post == 1) {
		put_resp_event_head(o, "response.content_part.done", idx);
		put_resp_where(o, r);
		PUT_LIT(o, ",\"part\":");
		put_resp_part(o, r, true);
	} else if (post == 2) {
		put_resp_event_head(o, "response.output_item.done", idx);
		PUT_LIT(o, ",\"output_index\":0,\"item\":");
		put_resp_item(o, r, true);
	} else {
		put_resp_event_head(o,
		    r->length_stop ? "response.incomplete"
		                   : "response.completed",
		    idx);
		PUT_LIT(o, ",\"response\":");
		put_resp_object(o, r, true);
	}
	PUT_LIT(o, "}\n\n");
}

/* ---- Anthropic Messages ---- */

static void
put_stop_reason(mock_out *o, const mock_reply *r)
{
	if (r->length_stop)
		PUT_LIT(o, "\"max_tokens\"");
	else
		PUT_LIT(o, "\"end_turn\"");
}

static void
put_anth_usage(mock_out *o, const mock_reply *r, uint32_t output)
{
	PUT_LIT(o, ",\"usage\":{\"input_tokens\":");
	put_u64(o, r->prompt_tokens);
	PUT_LIT(o, ",\"output_tokens\":");
	put_u64(o, output);
	PUT_LIT(o,
	    ",\"cache_creation_input_tokens\":0,"
	    "\"cache_read_input_tokens\":0}");
}

static void
put_anth_message(mock_out *o, const mock_reply *r, bool done)
{
	PUT_LIT(o, "{\"id\":\"msg_mock");
	put_u64(o, r->seq);
	PUT_LIT(o,
	    "\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"model\":");
	mock_put_json_str(o, r->model);
	if (done) {
		PUT_LIT(o, ",\"content\":[{\"type\":\"text\",\"text\":");
		put_full_text(o, r);
		PUT_LIT(o, "}],\"stop_reason\":");
		put_stop_reason(o, r);
	} else {
		PUT_LIT(o, ",\"content\":[],\"stop_reason\":null");
	}
	PUT_LIT(o, ",\"stop_sequence\":null");
	/* message_start carries a provisional output count, as the real
	 * API does; message_delta then has the cumulative final one. */
	if (has_usage(r))
		put_anth_usage(o, r, done ? r->chunks : 1);
	PUT_LIT(o, "}");
}

static void
put_anth_event_head(mock_out *o, const char *type)
{
	PUT_LIT(o, "event: ");
	mock_out_put(o, type, strlen(type));
	PUT_LIT(o, "\ndata: {\"type\":\"");
	mock_out_put(o, type, strlen(type));
	PUT_LIT(o, "\"");
}

/* Stream layout: message_start, content_block_start,
 * content_block_delta.., content_block_stop, message_delta,
 * message_stop. */
static void
messages_event(const mock_reply *r, uint32_t idx, mock_out *o)
{
	uint32_t pre = mock_stream_pre(r);
	uint32_t post = idx >= pre + r->chunks ? idx - pre - r->chunks : 0;

	if (idx == 0) {
		put_anth_event_head(o, "message_start");
		PUT_LIT(o, ",\"message\":");
		put_anth_message(o, r, false);
	} else if (idx == 1) {
		put_anth_event_head(o, "content_block_start");
		PUT_LIT(o,
		    ",\"index\":0,\"content_block\":{\"type\":\"text\","
		    "\"text\":\"\"}");
	} else if (idx < pre + r->chunks) {
		put_anth_event_head(o, "content_block_delta");
		PUT_LIT(o,
		    ",\"index\":0,\"delta\":{\"type\":\"text_delta\","
		    "\"text\":\"");
		put_chunk_text(o, r, idx - pre);
		PUT_LIT(o, "\"}");
	} else if (post == 0) {
		put_anth_event_head(o, "content_block_stop");
		PUT_LIT(o, ",\"index\":0");
	} else if (post == 1) {
		put_anth_event_head(o, "message_delta");
		PUT_LIT(o, ",\"delta\":{\"stop_reason\":");
		put_stop_reason(o, r);
		PUT_LIT(o, ",\"stop_sequence\":null}");
		if (has_usage(r)) {
			PUT_LIT(o, ",\"usage\":{\"output_tokens\":");
			put_u64(o, r->chunks);
			PUT_LIT(o, "}");
		}
	} else {
		put_anth_event_head(o, "message_stop");
	}
	PUT_LIT(o, "}\n\n");
}

/* ---- embeddings ---- */

/* The value of dimension j of vector k, in thousandths: deterministic,
 * in [-100, 99]. */
static int
embed_milli(uint32_t k, uint32_t j)
{
	return (int)((k * 7u + j * 13u) % 200u) - 100;
}

static void
put_embed_floats(mock_out *o, const mock_reply *r, uint32_t k)
{
	PUT_LIT(o, "[");
	for (uint32_t j = 0; j < r->embed_dims; j++) {
		int v = embed_milli(k, j);
		char tmp[8];
		unsigned a = (unsigned)(v < 0 ? -v : v);
		size_t n = 0;

		if (j > 0)
			tmp[n++] = ',';
		if (v < 0)
			tmp[n++] = '-';
		tmp[n++] = '0';
		tmp[n++] = '.';
		tmp[n++] = (char)('0' + a / 100);
		tmp[n++] = (char)('0' + a / 10 % 10);
		tmp[n++] = (char)('0' + a % 10);
		mock_out_put(o, tmp, n);
	}
	PUT_LIT(o, "]");
}

/* Base64 of the float32 little-endian vector, as openai-python requests
 * by default (encoding_format "base64"). */
static void
put_embed_base64(mock_out *o, const mock_reply *r, uint32_t k)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	                          "qrstuvwxyz0123456789+/";
	unsigned char tri[3];
	size_t have = 0;
	uint64_t nbytes = (uint64_t)r->embed_dims * 4u;

	PUT_LIT(o, "\"");
	for (uint64_t b = 0; b < nbytes || have > 0; b++) {
		if (b < nbytes) {
			uint32_t j = (uint32_t)(b / 4);
			float f = (float)embed_milli(k, j) / 1000.0f;
			uint32_t bits;

			memcpy(&bits, &f, sizeof(bits));
			tri[have++] = (unsigned char)(bits >> (8 * (b % 4)));
		}
		if (have == 3 || (b + 1 >= nbytes && have > 0)) {
			char q[4];

			q[0] = b64[tri[0] >> 2];
			q[1] = b64[((tri[0] & 3) << 4)
			    | (have > 1 ? tri[1] >> 4 : 0)];
			q[2] = have > 1 ? b64[((tri[1] & 15) << 2)
			           | (have > 2 ? tri[2] >> 6 : 0)]
			                : '=';
			q[3] = have > 2 ? b64[tri[2] & 63] : '=';
			mock_out_put(o, q, 4);
			have = 0;
		}
	}
	PUT_LIT(o, "\"");
}

static void
embeddings_body(const mock_reply *r, mock_out *o)
{
	PUT_LIT(o, "{\"object\":\"list\",\"data\":[");
	for (uint32_t k = 0; k < r->embed_inputs; k++) {
		if (k > 0)
			PUT_LIT(o, ",");
		PUT_LIT(o, "{\"object\":\"embedding\",\"index\":");
		put_u64(o, k);
		PUT_LIT(o, ",\"embedding\":");
		if (r->embed_base64)
			put_embed_base64(o, r, k);
		else
			put_embed_floats(o, r, k);
		PUT_LIT(o, "}");
	}
	PUT_LIT(o, "],\"model\":");
	mock_put_json_str(o, r->model);
	if (has_usage(r)) {
		PUT_LIT(o, ",\"usage\":{\"prompt_tokens\":");
		put_u64(o, r->prompt_tokens);
		PUT_LIT(o, ",\"total_tokens\":");
		put_u64(o, r->prompt_tokens);
		PUT_LIT(o, "}");
	}
	PUT_LIT(o, "}");
}

/* ---- public ---- */

uint32_t
mock_stream_pre(const mock_reply *r)
{
	switch (r->api) {
	case MOCK_API_CHAT:
		return 1;
	case MOCK_API_RESPONSES:
		return 4;
	case MOCK_API_MESSAGES:
		return 2;
	default:
		return 0;
	}
}

uint32_t
mock_stream_events(const mock_reply *r)
{
	uint32_t post;

	switch (r->api) {
	case MOCK_API_CHAT:
	case MOCK_API_COMPLETIONS:
		post = 2 + (r->include_usage && has_usage(r) ? 1 : 0);
		break;
	case MOCK_API_RESPONSES:
		post = 4;
		break;
	case MOCK_API_MESSAGES:
		post = 3;
		break;
	default:
		return 0;
	}
	return mock_stream_pre(r) + r->chunks + post;
}

void
mock_stream_event(const mock_reply *r, uint32_t idx, mock_out *o)
{
	switch (r->api) {
	case MOCK_API_CHAT:
	case MOCK_API_COMPLETIONS:
		openai_event(r, idx, o);
		break;
	case MOCK_API_RESPONSES:
		responses_event(r, idx, o);
		break;
	case MOCK_API_MESSAGES:
		messages_event(r, idx, o);
		break;
	default:
		break;
	}
}

void
mock_body(const mock_reply *r, mock_out *o)
{
	switch (r->api) {
	case MOCK_API_CHAT:
	case MOCK_API_COMPLETIONS:
		openai_body(r, o);
		break;
	case MOCK_API_RESPONSES:
		put_resp_object(o, r, true);
		break;
	case MOCK_API_MESSAGES:
		put_anth_message(o, r, true);
		break;
	case MOCK_API_EMBEDDINGS:
		embeddings_body(r, o);
		break;
	}
}

static const struct {
	unsigned status;
	const char *type;   /* OpenAI error.type */
	const char *code;   /* OpenAI error.code */
	const char *a_type; /* Anthropic error.type */
} error_kinds[] = {
	{ 400, "invalid_request_error", "invalid_request_error",
	    "invalid_request_error" },
	{ 401, "invalid_request_error", "invalid_api_key",
	    "authentication_error" },
	{ 403, "invalid_request_error", "permission_denied",
	    "permission_error" },
	{ 404, "invalid_request_error", "model_not_found", "not_found_error" },
	{ 405, "invalid_request_error", "method_not_allowed",
	    "invalid_request_error" },
	{ 413, "invalid_request_error", "request_too_large",
	    "request_too_large" },
	{ 429, "requests", "rate_limit_exceeded", "rate_limit_error" },
	{ 500, "server_error", "server_error", "api_error" },
	{ 502, "server_error", "bad_gateway", "api_error" },
	{ 503, "server_error", "overloaded", "overloaded_error" },
	{ 504, "server_error", "timeout", "api_error" },
	{ 529, "server_error", "overloaded", "overloaded_error" },
};

void
mock_error_body(mock_api api, unsigned status, const char *code_override,
    const char *message, mock_out *o)
{
	const char *type
	    = status >= 500 ? "server_error" : "invalid_request_error";
	const char *code = "mock_error";
	const char *a_type
	    = status >= 500 ? "api_error" : "invalid_request_error";

	for (size_t i = 0; i < sizeof(error_kinds) / sizeof(error_kinds[0]);
	     i++) {
		if (error_kinds[i].status == status) {
			type = error_kinds[i].type;
			code = error_kinds[i].code;
			a_type = error_kinds[i].a_type;
			break;
		}
	}
	if (code_override != NULL)
		code = code_override;
	if (api == MOCK_API_MESSAGES) {
		PUT_LIT(o, "{\"type\":\"error\",\"error\":{\"type\":\"");
		mock_out_put(o, a_type, strlen(a_type));
		PUT_LIT(o, "\",\"message\":");
		mock_put_json_str(o, message);
		PUT_LIT(o, "}}");
		return;
	}
	PUT_LIT(o, "{\"error\":{\"message\":");
	mock_put_json_str(o, message);
	PUT_LIT(o, ",\"type\":\"");
	mock_out_put(o, type, strlen(type));
	PUT_LIT(o, "\",\"param\":null,\"code\":\"");
	mock_out_put(o, code, strlen(code));
	PUT_LIT(o, "\"}}");
}

static void
put_model_obj(mock_out *o, const char *id, size_t n)
{
	PUT_LIT(o, "{\"id\":\"");
	/* names come from the command line or a URL: drop what JSON would
	 * need escaped rather than echo it */
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (c == '"' || c == '\\' || (unsigned char)c < 0x20)
			continue;
		mock_out_put(o, &c, 1);
	}
	PUT_LIT(o,
	    "\",\"object\":\"model\",\"created\":1700000000,"
	    "\"owned_by\":\"planktonfly-mock\"}");
}

void
mock_models_body(const char *csv, const char *id, mock_out *o)
{
	const char *p = csv;
	bool first = true;

	if (id != NULL) {
		put_model_obj(o, id, strlen(id));
		return;
	}
	PUT_LIT(o, "{\"object\":\"list\",\"data\":[");
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		if (n > 0) {
			if (!first)
				PUT_LIT(o, ",");
			put_model_obj(o, p, n);
			first = false;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	PUT_LIT(o, "]}");
}
