/*
 * convert.c -- Anthropic Messages <-> OpenAI chat completions.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "workers/convert.h"

/* ---- helpers ------------------------------------------------------------ */

/* Set key to a new reference; returns 0 on success (v NULL = failure). */
static int
put(json_t *obj, const char *key, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_object_set_new(obj, key, v);
}

/* Copy key from src to dst when present. */
static int
copy(json_t *dst, const json_t *src, const char *from, const char *to)
{
	json_t *v = json_object_get(src, from);

	if (v == NULL)
		return 0;
	return json_object_set(dst, to, v);
}

static int
append(json_t *arr, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_array_append_new(arr, v);
}

/* Text of a content value (string, or text blocks joined by "\n"). */
static json_t *
joined_text(const json_t *content)
{
	wrk_buf b;
	const json_t *blk;
	size_t i;
	json_t *s;

	if (json_is_string(content))
		return json_string(json_string_value(content));
	wrk_buf_init(&b);
	json_array_foreach(content, i, blk)
	{
		const json_t *t = json_object_get(blk, "text");

		if (!json_is_string(t))
			continue;
		if ((b.len > 0 && wrk_buf_append(&b, "\n", 1, PF_MSG_STR_MAX))
		    || wrk_buf_append(&b, json_string_value(t),
		        json_string_length(t), PF_MSG_STR_MAX)) {
			wrk_buf_fini(&b);
			return NULL;
		}
	}
	s = json_stringn(wrk_buf_cstr(&b), b.len);
	wrk_buf_fini(&b);
	return s;
}

static int
type_is(const json_t *blk, const char *type)
{
	const json_t *t = json_object_get(blk, "type");

	return json_is_string(t) && strcmp(json_string_value(t), type) == 0;
}

/* ---- request ------------------------------------------------------------- */

static json_t *
image_part(const json_t *blk)
{
	const json_t *src = json_object_get(blk, "source");
	const json_t *data = json_object_get(src, "data");
	const json_t *mt = json_object_get(src, "media_type");
	json_t *part, *iu;
	char *url;
	size_t n;

	if (type_is(src, "url")) {
		iu = json_pack("{s:O}", "url", json_object_get(src, "url"));
	} else if (json_is_string(data) && json_is_string(mt)) {
		n = json_string_length(mt) + json_string_length(data) + 16;
		url = malloc(n);
		if (url == NULL)
			return NULL;
		snprintf(url, n, "data:%s;base64,%s", json_string_value(mt),
		    json_string_value(data));
		iu = json_pack("{s:s}", "url", url);
		free(url);
	} else {
		return NULL;
	}
	if (iu == NULL)
		return NULL;
	part = json_pack("{s:s,s:o}", "type", "image_url", "image_url", iu);
	return part;
}

/* One Anthropic message -> one or more chat messages appended to out. */
static int
convert_message(const json_t *m, json_t *out)
{
	const json_t *role = json_object_get(m, "role");
	const json_t *content = json_object_get(m, "content");
	const json_t *blk;
	size_t i;

	if (!json_is_string(role))
		return -1;
	if (json_is_string(content))
		return append(out,
		    json_pack("{s:O,s:O}", "role", role, "content", content));
	if (!json_is_array(content))
		return -1;
	if (strcmp(json_string_value(role), "assistant") == 0) {
		json_t *msg, *calls = json_array();
		json_t *text = joined_text(content);

		if (calls == NULL || text == NULL) {
			json_decref(calls);
			json_decref(text);
			return -1;
		}
		json_array_foreach(content, i, blk)
		{
			char *args;
			json_t *call;

			if (!type_is(blk, "tool_use"))
				continue;
			args = json_dumps(json_object_get(blk, "input"),
			    JSON_COMPACT | JSON_ENCODE_ANY);
			call = json_pack("{s:O?,s:s,s:{s:O?,s:s}}", "id",
			    json_object_get(blk, "id"), "type", "function",
			    "function", "name", json_object_get(blk, "name"),
			    "arguments", args ? args : "{}");
			free(args);
			if (append(calls, call) != 0) {
				json_decref(calls);
				json_decref(text);
				return -1;
			}
		}
		msg = json_pack("{s:s}", "role", "assistant");
		if (msg == NULL
		    || put(msg, "content",
		           json_string_length(text) > 0 ? json_incref(text)
		                                        : json_null())
		        != 0
		    || (json_array_size(calls) > 0
		        && put(msg, "tool_calls", json_incref(calls)) != 0)) {
			json_decref(msg);
			json_decref(calls);
			json_decref(text);
			return -1;
		}
		json_decref(calls);
		json_decref(text);
		return append(out, msg);
	}
	/* user (and anything else): tool results first, as tool messages
	 * answering the previous assistant turn, then the other parts */
	{
		json_t *parts = json_array();

		if (parts == NULL)
			return -1;
		json_array_foreach(content, i, blk)
		{
			json_t *v = NULL;

			if (type_is(blk, "tool_result")) {
				json_t *t = joined_text(
				    json_object_get(blk, "content"));

				if (t == NULL
				    || append(out,
				           json_pack("{s:s,s:O?,s:o}", "role",
				               "tool", "tool_call_id",
				               json_object_get(
				                   blk, "tool_use_id"),
				               "content", t))
				        != 0) {
					json_decref(parts);
					return -1;
				}
				continue;
			}
			if (type_is(blk, "text"))
				v = json_pack("{s:s,s:O}", "type", "text",
				    "text", json_object_get(blk, "text"));
			else if (type_is(blk, "image"))
				v = image_part(blk);
			else
				continue; /* thinking, documents: dropped */
			if (append(parts, v) != 0) {
				json_decref(parts);
				return -1;
			}
		}
		if (json_array_size(parts) == 0) {
			json_decref(parts);
			return 0;
		}
		return append(out,
		    json_pack("{s:O,s:o}", "role", role, "content", parts));
	}
}

static json_t *
convert_tools(const json_t *tools)
{
	json_t *out = json_array();
	const json_t *t;
	size_t i;

	if (out == NULL)
		return NULL;
	json_array_foreach(tools, i, t)
	{
		json_t *fn
		    = json_pack("{s:O?}", "name", json_object_get(t, "name"));

		if (fn == NULL || copy(fn, t, "description", "description")
		    || copy(fn, t, "input_schema", "parameters")
		    || append(out,
		           json_pack(
		               "{s:s,s:o}", "type", "function", "function", fn))
		        != 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static int
convert_tool_choice(const json_t *tc, json_t *out)
{
	const json_t *dp = json_object_get(tc, "disable_parallel_tool_use");

	if (json_is_true(dp) && put(out, "parallel_tool_calls", json_false()))
		return -1;
	if (type_is(tc, "auto"))
		return put(out, "tool_choice", json_string("auto"));
	if (type_is(tc, "any"))
		return put(out, "tool_choice", json_string("required"));
	if (type_is(tc, "none"))
		return put(out, "tool_choice", json_string("none"));
	if (type_is(tc, "tool"))
		return put(out, "tool_choice",
		    json_pack("{s:s,s:{s:O?}}", "type", "function", "function",
		        "name", json_object_get(tc, "name")));
	return 0;
}

pf_err
wrk_conv_request(const uint8_t *body, size_t len, const char *model,
    size_t mlen, wrk_body *ret)
{
	json_t *root, *out = NULL, *msgs, *m, *sys;
	json_error_t jerr;
	pf_err err = PF_ENOMEM;
	char *dump;
	size_t i;

	root = json_loadb((const char *)body, len, 0, &jerr);
	if (!json_is_object(root)
	    || !json_is_array(json_object_get(root, "messages"))) {
		json_decref(root);
		return PF_EINVAL;
	}
	out = json_object();
	msgs = json_array();
	if (out == NULL || msgs == NULL
	    || put(out, "model",
	        mlen > 0 ? json_stringn(model, mlen)
	                 : json_incref(json_object_get(root, "model"))))
		goto fail;
	if (put(out, "messages", msgs) != 0) {
		msgs = NULL;
		goto fail;
	}
	sys = json_object_get(root, "system");
	if (sys != NULL
	    && append(msgs,
	           json_pack("{s:s,s:o}", "role", "system", "content",
	               joined_text(sys)))
	        != 0)
		goto fail;
	json_array_foreach(json_object_get(root, "messages"), i, m)
	{
		if (convert_message(m, msgs) != 0) {
			err = PF_EINVAL;
			goto fail;
		}
	}
	if (copy(out, root, "max_tokens", "max_tokens")
	    || copy(out, root, "temperature", "temperature")
	    || copy(out, root, "top_p", "top_p")
	    || copy(out, root, "stop_sequences", "stop")
	    || copy(out, root, "stream", "stream"))
		goto fail;
	if (json_is_true(json_object_get(root, "stream"))
	    && put(
	        out, "stream_options", json_pack("{s:b}", "include_usage", 1)))
		goto fail;
	if (copy(out, json_object_get(root, "metadata"), "user_id", "user"))
		goto fail;
	if (json_is_array(json_object_get(root, "tools"))) {
		if (put(out, "tools",
		        convert_tools(json_object_get(root, "tools"))))
			goto fail;
		if (convert_tool_choice(
		        json_object_get(root, "tool_choice"), out))
			goto fail;
	}
	dump = wrk_json_dumps(out);
	if (dump == NULL)
		goto fail;
	json_decref(out);
	json_decref(root);
	ret->_owned = dump;
	ret->ptr = (const uint8_t *)dump;
	ret->len = strlen(dump);
	return PF_OK;
fail:
	json_decref(out);
	json_decref(root);
	return err;
}

/* ---- answers -------------------------------------------------------------- */

static const char *
stop_reason(const char *finish)
{
	if (strcmp(finish, "length") == 0)
		return "max_tokens";
	if (strcmp(finish, "tool_calls") == 0
	    || strcmp(finish, "function_call") == 0)
		return "tool_use";
	if (strcmp(finish, "content_filter") == 0)
		return "refusal";
	return "end_turn";
}

static int64_t
int_of(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) && json_integer_value(v) > 0
	    ? (int64_t)json_integer_value(v)
	    : 0;
}

/* Anthropic usage from OpenAI numbers (input excludes cached). */
static json_t *
usage_json(int64_t prompt, int64_t completion, int64_t cached)
{
	if (cached > prompt)
		cached = prompt;
	return json_pack("{s:I,s:I,s:i,s:I}", "input_tokens",
	    (json_int_t)(prompt - cached), "output_tokens",
	    (json_int_t)completion, "cache_creation_input_tokens", 0,
	    "cache_read_input_tokens", (json_int_t)cached);
}

static json_t *
tool_input(const json_t *args)
{
	json_error_t jerr;
	json_t *v = NULL;

	if (json_is_string(args))
		v = json_loads(json_string_value(args), 0, &jerr);
	if (!json_is_object(v)) {
		json_decref(v);
		v = json_object();
	}
	return v;
}

pf_err
wrk_conv_response(const uint8_t *body, size_t len, wrk_buf *out)
{
	json_t *root, *msg, *content, *res = NULL, *u, *d, *call;
	const json_t *choice, *fr;
	json_error_t jerr;
	pf_err err = PF_ENOMEM;
	char *dump;
	size_t i;

	out->len = 0;
	root = json_loadb((const char *)body, len, 0, &jerr);
	choice = json_array_get(json_object_get(root, "choices"), 0);
	msg = json_object_get(choice, "message");
	if (!json_is_object(msg)) {
		json_decref(root);
		return PF_EINVAL;
	}
	content = json_array();
	if (content == NULL)
		goto fail;
	if (json_is_string(json_object_get(msg, "content"))
	    && json_string_length(json_object_get(msg, "content")) > 0
	    && append(content,
	        json_pack("{s:s,s:O}", "type", "text", "text",
	            json_object_get(msg, "content"))))
		goto fail_content;
	json_array_foreach(json_object_get(msg, "tool_calls"), i, call)
	{
		const json_t *fn = json_object_get(call, "function");

		if (append(content,
		        json_pack("{s:s,s:O?,s:O?,s:o}", "type", "tool_use",
		            "id", json_object_get(call, "id"), "name",
		            json_object_get(fn, "name"), "input",
		            tool_input(json_object_get(fn, "arguments")))))
			goto fail_content;
	}
	fr = json_object_get(choice, "finish_reason");
	u = json_object_get(root, "usage");
	d = json_object_get(u, "prompt_tokens_details");
	res = json_pack("{s:O?,s:s,s:s,s:O?,s:o,s:s,s:n,s:o}", "id",
	    json_object_get(root, "id"), "type", "message", "role", "assistant",
	    "model", json_object_get(root, "model"), "content", content,
	    "stop_reason",
	    stop_reason(json_is_string(fr) ? json_string_value(fr) : "stop"),
	    "stop_sequence", "usage",
	    usage_json(int_of(u, "prompt_tokens"),
	        int_of(u, "completion_tokens"), int_of(d, "cached_tokens")));
	if (res == NULL)
		goto fail;
	dump = wrk_json_dumps(res);
	if (dump == NULL)
		goto fail;
	err = wrk_buf_append(out, dump, strlen(dump), PF_RESPONSE_MAX);
	free(dump);
	goto fail;
fail_content:
	json_decref(content);
fail:
	json_decref(res);
	json_decref(root);
	return err;
}

pf_err
wrk_conv_error(long status, const uint8_t *body, size_t len, wrk_buf *out)
{
	const char *type = "invalid_request_error";
	const json_t *msg;
	json_t *root, *res;
	json_error_t jerr;
	char *dump;
	pf_err err;

	if (status == 401)
		type = "authentication_error";
	else if (status == 403)
		type = "permission_error";
	else if (status == 404)
		type = "not_found_error";
	else if (status == 413)
		type = "request_too_large";
	else if (status == 429)
		type = "rate_limit_error";
	else if (status == 529)
		type = "overloaded_error";
	else if (status >= 500)
		type = "api_error";
	out->len = 0;
	root = json_loadb((const char *)body, len, 0, &jerr);
	msg = json_object_get(json_object_get(root, "error"), "message");
	res = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
	    type, "message",
	    json_is_string(msg) ? json_string_value(msg) : "upstream error");
	json_decref(root);
	dump = res != NULL ? wrk_json_dumps(res) : NULL;
	json_decref(res);
	if (dump == NULL)
		return PF_ENOMEM;
	err = wrk_buf_append(out, dump, strlen(dump), PF_ERROR_BODY_MAX);
	free(dump);
	return err;
}

/* ---- stream ------------------------------------------------------------- */

void
wrk_conv_init(wrk_conv *c, int64_t input_estimate)
{
	memset(c, 0, sizeof *c);
	c->input_estimate = input_estimate > 0 ? input_estimate : 0;
	c->open_block = -1;
	c->tool_index = -1;
	c->prompt = c->completion = c->cached = -1;
	snprintf(c->id, sizeof c->id, "msg_relay");
}

/* Emit "event: type\ndata: {"type":type,...obj}\n\n"; takes obj. */
static pf_err
emit_event(const char *type, json_t *obj, wrk_conv_emit_cb emit, void *arg)
{
	json_t *ev = json_pack("{s:s}", "type", type);
	char *dump = NULL;
	wrk_buf b;
	pf_err err = PF_ENOMEM;

	wrk_buf_init(&b);
	if (ev == NULL || obj == NULL || json_object_update(ev, obj) != 0)
		goto done;
	dump = wrk_json_dumps(ev);
	if (dump == NULL)
		goto done;
	if (wrk_buf_append(&b, "event: ", 7, PF_SSE_EVENT_MAX)
	    || wrk_buf_append(&b, type, strlen(type), PF_SSE_EVENT_MAX)
	    || wrk_buf_append(&b, "\ndata: ", 7, PF_SSE_EVENT_MAX)
	    || wrk_buf_append(&b, dump, strlen(dump), PF_SSE_EVENT_MAX)
	    || wrk_buf_append(&b, "\n\n", 2, PF_SSE_EVENT_MAX))
		goto done;
	err = emit(arg, b.data, b.len);
done:
	free(dump);
	wrk_buf_fini(&b);
	json_decref(ev);
	json_decref(obj);
	return err;
}

static pf_err
start_message(wrk_conv *c, wrk_conv_emit_cb emit, void *arg)
{
	c->started = 1;
	return emit_event("message_start",
	    json_pack("{s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:I,s:i}}}",
	        "message", "id", c->id, "type", "message", "role", "assistant",
	        "model", c->model, "content", "stop_reason", "stop_sequence",
	        "usage", "input_tokens", (json_int_t)c->input_estimate,
	        "output_tokens", 0),
	    emit, arg);
}

static pf_err
close_block(wrk_conv *c, wrk_conv_emit_cb emit, void *arg)
{
	int idx = c->open_block;

	if (idx < 0)
		return PF_OK;
	c->open_block = -1;
	c->open_kind = 0;
	c->tool_index = -1;
	return emit_event(
	    "content_block_stop", json_pack("{s:i}", "index", idx), emit, arg);
}

static pf_err
text_delta(wrk_conv *c, const json_t *text, wrk_conv_emit_cb emit, void *arg)
{
	pf_err err;

	if (c->open_kind != 1) {
		err = close_block(c, emit, arg);
		if (err != PF_OK)
			return err;
		c->open_block = c->next_block++;
		c->open_kind = 1;
		err = emit_event("content_block_start",
		    json_pack("{s:i,s:{s:s,s:s}}", "index", c->open_block,
		        "content_block", "type", "text", "text", ""),
		    emit, arg);
		if (err != PF_OK)
			return err;
	}
	return emit_event("content_block_delta",
	    json_pack("{s:i,s:{s:s,s:O}}", "index", c->open_block, "delta",
	        "type", "text_delta", "text", text),
	    emit, arg);
}

static pf_err
tool_delta(wrk_conv *c, const json_t *call, wrk_conv_emit_cb emit, void *arg)
{
	const json_t *fn = json_object_get(call, "function");
	const json_t *args = json_object_get(fn, "arguments");
	const json_t *id = json_object_get(call, "id");
	const json_t *name = json_object_get(fn, "name");
	int idx = (int)int_of(call, "index");
	pf_err err;
	char fallback[32];

	if (c->open_kind != 2 || c->tool_index != idx) {
		err = close_block(c, emit, arg);
		if (err != PF_OK)
			return err;
		c->open_block = c->next_block++;
		c->open_kind = 2;
		c->tool_index = idx;
		snprintf(fallback, sizeof fallback, "toolu_%d", c->open_block);
		err = emit_event("content_block_start",
		    json_pack("{s:i,s:{s:s,s:s,s:s,s:{}}}", "index",
		        c->open_block, "content_block", "type", "tool_use",
		        "id",
		        json_is_string(id) ? json_string_value(id) : fallback,
		        "name",
		        json_is_string(name) ? json_string_value(name) : "",
		        "input"),
		    emit, arg);
		if (err != PF_OK)
			return err;
	}
	if (!json_is_string(args) || json_string_length(args) == 0)
		return PF_OK;
	return emit_event("content_block_delta",
	    json_pack("{s:i,s:{s:s,s:O}}", "index", c->open_block, "delta",
	        "type", "input_json_delta", "partial_json", args),
	    emit, arg);
}

static pf_err
end_message(wrk_conv *c, wrk_conv_emit_cb emit, void *arg)
{
	json_t *usage;
	pf_err err;

	if (c->ended)
		return PF_OK;
	if (!c->started) {
		err = start_message(c, emit, arg);
		if (err != PF_OK)
			return err;
	}
	err = close_block(c, emit, arg);
	if (err != PF_OK)
		return err;
	c->ended = 1;
	usage = usage_json(c->prompt > 0 ? c->prompt : 0,
	    c->completion > 0 ? c->completion : 0,
	    c->cached > 0 ? c->cached : 0);
	err = emit_event("message_delta",
	    json_pack("{s:{s:s,s:n},s:o}", "delta", "stop_reason",
	        c->stop_reason[0] ? c->stop_reason : "end_turn",
	        "stop_sequence", "usage", usage),
	    emit, arg);
	if (err != PF_OK)
		return err;
	return emit_event("message_stop", json_object(), emit, arg);
}

pf_err
wrk_conv_stream_event(
    wrk_conv *c, const char *data, size_t len, wrk_conv_emit_cb emit, void *arg)
{
	json_t *root;
	const json_t *choice, *delta, *v, *call, *u;
	pf_err err = PF_OK;
	size_t i;

	if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
		return end_message(c, emit, arg);
	if (c->ended)
		return PF_OK;
	root = wrk_json_object_load(data, len);
	if (root == NULL)
		return PF_OK; /* not a chunk: nothing to say */
	if (!c->started) {
		v = json_object_get(root, "id");
		if (json_is_string(v))
			snprintf(
			    c->id, sizeof c->id, "%s", json_string_value(v));
		v = json_object_get(root, "model");
		if (json_is_string(v))
			snprintf(c->model, sizeof c->model, "%s",
			    json_string_value(v));
		err = start_message(c, emit, arg);
		if (err != PF_OK)
			goto done;
	}
	u = json_object_get(root, "usage");
	if (json_is_object(u)) {
		c->prompt = int_of(u, "prompt_tokens");
		c->completion = int_of(u, "completion_tokens");
		c->cached = int_of(json_object_get(u, "prompt_tokens_details"),
		    "cached_tokens");
	}
	choice = json_array_get(json_object_get(root, "choices"), 0);
	delta = json_object_get(choice, "delta");
	v = json_object_get(delta, "content");
	if (json_is_string(v) && json_string_length(v) > 0) {
		err = text_delta(c, v, emit, arg);
		if (err != PF_OK)
			goto done;
	}
	json_array_foreach(json_object_get(delta, "tool_calls"), i, call)
	{
		err = tool_delta(c, call, emit, arg);
		if (err != PF_OK)
			goto done;
	}
	v = json_object_get(choice, "finish_reason");
	if (json_is_string(v))
		snprintf(c->stop_reason, sizeof c->stop_reason, "%s",
		    stop_reason(json_string_value(v)));
done:
	json_decref(root);
	return err;
}

pf_err
wrk_conv_stream_end(wrk_conv *c, wrk_conv_emit_cb emit, void *arg)
{
	if (!c->started || c->ended)
		return PF_OK;
	return end_message(c, emit, arg);
}
