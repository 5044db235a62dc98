/* Unit tests of the Anthropic <-> OpenAI conversion. */
#include <jansson.h>
#include <string.h>

#include "tests/tap.h"
#include "workers/convert.h"

static json_t *
conv_req(const char *body, const char *model)
{
	wrk_body b;
	json_error_t e;
	json_t *j;

	if (wrk_conv_request(
	        (const uint8_t *)body, strlen(body), model, strlen(model), &b)
	    != PF_OK)
		return NULL;
	j = json_loadb((const char *)b.ptr, b.len, 0, &e);
	wrk_body_fini(&b);
	return j;
}

static int
str_is(const json_t *v, const char *want)
{
	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static void
test_request(void)
{
	const char *body
	    = "{\"model\":\"claude-x\",\"max_tokens\":99,\"stream\":true,"
	      "\"system\":[{\"type\":\"text\",\"text\":\"be brief\"}],"
	      "\"stop_sequences\":[\"END\"],\"temperature\":0.5,"
	      "\"metadata\":{\"user_id\":\"u1\"},"
	      "\"tools\":[{\"name\":\"get\",\"description\":\"d\","
	      "\"input_schema\":{\"type\":\"object\"}}],"
	      "\"tool_choice\":{\"type\":\"any\"},"
	      "\"messages\":["
	      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
	      "\"look\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\","
	      "\"media_type\":\"image/png\",\"data\":\"QUJD\"}}]},"
	      "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
	      "\"text\":\"calling\"},{\"type\":\"tool_use\",\"id\":\"tu1\","
	      "\"name\":\"get\",\"input\":{\"q\":1}}]},"
	      "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
	      "\"tool_use_id\":\"tu1\",\"content\":\"42\"},{\"type\":\"text\","
	      "\"text\":\"thanks\"}]}]}";
	json_t *j = conv_req(body, "gpt-up");
	json_t *msgs = json_object_get(j, "messages");

	ok(j != NULL && str_is(json_object_get(j, "model"), "gpt-up")
	        && json_integer_value(json_object_get(j, "max_tokens")) == 99,
	    "model mapped, max_tokens kept");
	ok(json_array_size(msgs) == 5,
	    "system + user + assistant + tool + user");
	ok(str_is(json_object_get(json_array_get(msgs, 0), "role"), "system"),
	    "system message first");
	ok(str_is(
	       json_object_get(json_array_get(msgs, 0), "content"), "be brief"),
	    "system text from blocks");
	ok(strcmp(
	       json_string_value(json_object_get(
	           json_object_get(
	               json_array_get(
	                   json_object_get(json_array_get(msgs, 1), "content"),
	                   1),
	               "image_url"),
	           "url")),
	       "data:image/png;base64,QUJD")
	        == 0,
	    "image becomes a data URL part");
	{
		json_t *a = json_array_get(msgs, 2);
		json_t *call
		    = json_array_get(json_object_get(a, "tool_calls"), 0);
		json_t *fn = json_object_get(call, "function");

		ok(str_is(json_object_get(a, "content"), "calling")
		        && strcmp(
		               json_string_value(json_object_get(call, "id")),
		               "tu1")
		            == 0
		        && str_is(
		            json_object_get(fn, "arguments"), "{\"q\":1}"),
		    "assistant tool_use becomes tool_calls with JSON "
		    "arguments");
	}
	{
		json_t *t = json_array_get(msgs, 3);

		ok(str_is(json_object_get(t, "role"), "tool")
		        && str_is(json_object_get(t, "tool_call_id"), "tu1")
		        && strcmp(
		               json_string_value(json_object_get(t, "content")),
		               "42")
		            == 0,
		    "tool_result becomes a tool message before the user text");
	}
	ok(json_is_true(json_object_get(
	       json_object_get(j, "stream_options"), "include_usage"))
	        && str_is(json_object_get(j, "tool_choice"), "required")
	        && str_is(json_object_get(j, "user"), "u1")
	        && json_is_array(json_object_get(j, "stop")),
	    "stream usage asked, tool_choice any = required, user, stop");
	ok(str_is(json_object_get(
	              json_object_get(
	                  json_array_get(json_object_get(j, "tools"), 0),
	                  "function"),
	              "name"),
	       "get"),
	    "tools become functions");
	json_decref(j);
	ok(conv_req("{\"model\":\"x\"}", "") == NULL,
	    "a body without messages is refused");
}

typedef struct sink {
	char out[8192];
	size_t len;
	int n;
} sink;

static pf_err
sink_cb(void *arg, const uint8_t *ev, size_t len)
{
	sink *s = arg;

	s->n++;
	if (s->len + len < sizeof s->out) {
		memcpy(s->out + s->len, ev, len);
		s->len += len;
		s->out[s->len] = 0;
	}
	return PF_OK;
}

static pf_err
feed(wrk_conv *c, const char *data, sink *s)
{
	return wrk_conv_stream_event(c, data, strlen(data), sink_cb, s);
}

static void
test_stream(void)
{
	wrk_conv c;
	sink s;
	pf_err err = PF_OK;

	memset(&s, 0, sizeof s);
	wrk_conv_init(&c, 12);
	err |= feed(&c,
	    "{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"delta\":{"
	    "\"role\":\"assistant\",\"content\":\"Hi\"}}]}",
	    &s);
	err |= feed(&c,
	    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
	    "\"call_1\",\"function\":{\"name\":\"get\",\"arguments\":\"\"}}]}}]"
	    "}",
	    &s);
	err |= feed(&c,
	    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,"
	    "\"function\":{\"arguments\":\"{\\\"q\\\":1}\"}}]}}]}",
	    &s);
	err |= feed(&c,
	    "{\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
	    &s);
	err |= feed(&c,
	    "{\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
	    "\"completion_tokens\":4,\"prompt_tokens_details\":{"
	    "\"cached_tokens\":6}}}",
	    &s);
	err |= feed(&c, "[DONE]", &s);
	ok(err == PF_OK && s.n == 9,
	    "start, text block (start, delta, stop), tool block (start, "
	    "delta, stop), message_delta, message_stop (%d)",
	    s.n);
	ok(strstr(s.out, "\"id\":\"call_1\"") != NULL
	        && strstr(s.out, "\"partial_json\":\"{\\\"q\\\":1}\"") != NULL,
	    "tool_use block with input_json_delta");
	ok(strstr(s.out, "\"stop_reason\":\"tool_use\"") != NULL
	        && strstr(s.out, "\"input_tokens\":4") != NULL
	        && strstr(s.out, "\"cache_read_input_tokens\":6") != NULL
	        && strstr(s.out, "\"output_tokens\":4") != NULL,
	    "stop reason mapped; input excludes cached tokens");
	ok(wrk_conv_stream_end(&c, sink_cb, &s) == PF_OK && s.n == 9,
	    "end after [DONE] adds nothing");
	ok(strstr(s.out, "\"usage\":{\"input_tokens\":12,\"output_tokens\":0}")
	        != NULL,
	    "message_start announces the estimated input tokens");

	memset(&s, 0, sizeof s);
	wrk_conv_init(&c, 0);
	ok(feed(&c, "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}", &s)
	            == PF_OK
	        && wrk_conv_stream_end(&c, sink_cb, &s) == PF_OK
	        && strstr(s.out, "event: message_stop") != NULL,
	    "a stream without [DONE] is still closed");
}

static void
test_answers(void)
{
	const char *resp
	    = "{\"id\":\"c9\",\"model\":\"m\",\"choices\":[{\"message\":{"
	      "\"content\":\"hello\",\"tool_calls\":[{\"id\":\"t\","
	      "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":2}\"}}]}"
	      ","
	      "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":7,"
	      "\"completion_tokens\":3}}";
	const char *err = "{\"error\":{\"message\":\"nope\",\"type\":\"x\"}}";
	wrk_buf out;

	wrk_buf_init(&out);
	ok(wrk_conv_response((const uint8_t *)resp, strlen(resp), &out) == PF_OK
	        && strstr(wrk_buf_cstr(&out), "\"type\":\"message\"") != NULL
	        && strstr(wrk_buf_cstr(&out),
	               "{\"type\":\"text\",\"text\":\"hello\"}")
	            != NULL
	        && strstr(wrk_buf_cstr(&out), "\"input\":{\"a\":2}") != NULL
	        && strstr(wrk_buf_cstr(&out), "\"stop_reason\":\"max_tokens\"")
	            != NULL
	        && strstr(wrk_buf_cstr(&out), "\"input_tokens\":7") != NULL,
	    "chat.completion becomes a message");
	ok(wrk_conv_response((const uint8_t *)"[]", 2, &out) == PF_EINVAL,
	    "not a chat completion: refused");
	ok(wrk_conv_error(429, (const uint8_t *)err, strlen(err), &out) == PF_OK
	        && strcmp(wrk_buf_cstr(&out),
	               "{\"type\":\"error\",\"error\":{\"type\":"
	               "\"rate_limit_error\",\"message\":\"nope\"}}")
	            == 0,
	    "error body in Anthropic's shape");
	wrk_buf_fini(&out);
}

/* Wrong types anywhere: refused or converted, never a crash (ASan). */
static void
test_odd_input(void)
{
	static const char *const reqs[] = {
		"{\"messages\":[1,null,\"x\",{}]}",
		"{\"messages\":[{\"role\":5,\"content\":\"x\"}]}",
		"{\"messages\":[{\"role\":\"user\",\"content\":[1,{},"
		"{\"type\":\"image\"},{\"type\":\"image\",\"source\":5},"
		"{\"type\":\"tool_result\",\"content\":[7]},"
		"{\"type\":\"text\"}]}]}",
		"{\"messages\":[{\"role\":\"assistant\",\"content\":[{"
		"\"type\":\"tool_use\"},{\"type\":\"tool_use\",\"input\":"
		"[1]}]}],\"tools\":[1,{\"name\":2}],\"tool_choice\":7,"
		"\"system\":5,\"metadata\":[]}",
		"{\"messages\":[],\"tools\":{},\"tool_choice\":{\"type\":"
		"\"tool\"}}",
	};
	static const char *const chunks[] = { "1", "[]", "{\"choices\":5}",
		"{\"choices\":[{\"delta\":{\"content\":7,\"tool_calls\":"
		"[1,{\"function\":5},{\"index\":\"x\"}]},\"finish_reason\":"
		"3}],\"usage\":{\"prompt_tokens\":\"a\"}}",
		"{\"id\":5,\"model\":[]}" };
	static const char *const resps[] = { "{\"choices\":[{\"message\":{"
		                             "\"content\":5,\"tool_calls\":[1,"
		                             "{\"function\":{\"arguments\":"
		                             "\"[\"}}]}}],\"usage\":[]}",
		"{\"choices\":[{}]}", "null" };
	int survived = 1;
	wrk_buf out;

	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		wrk_body b;
		pf_err err = wrk_conv_request(
		    (const uint8_t *)reqs[i], strlen(reqs[i]), "m", 1, &b);

		if (err == PF_OK)
			wrk_body_fini(&b);
		else if (err != PF_EINVAL)
			survived = 0;
	}
	ok(survived, "odd requests: converted or refused");
	{
		wrk_conv c;
		sink s;

		memset(&s, 0, sizeof s);
		wrk_conv_init(&c, 0);
		for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
			if (feed(&c, chunks[i], &s) != PF_OK)
				survived = 0;
		ok(survived && wrk_conv_stream_end(&c, sink_cb, &s) == PF_OK
		        && strstr(s.out, "event: message_stop") != NULL,
		    "odd chunks: skipped, the message still closes");
	}
	wrk_buf_init(&out);
	for (size_t i = 0; i < sizeof resps / sizeof resps[0]; i++) {
		pf_err err = wrk_conv_response(
		    (const uint8_t *)resps[i], strlen(resps[i]), &out);

		if (err != PF_OK && err != PF_EINVAL)
			survived = 0;
	}
	ok(survived
	        && wrk_conv_error(500, (const uint8_t *)"x", 1, &out) == PF_OK
	        && strstr(wrk_buf_cstr(&out), "api_error") != NULL,
	    "odd answers: converted or refused; error without a body");
	wrk_buf_fini(&out);
}

int
main(void)
{
	test_request();
	test_stream();
	test_answers();
	test_odd_input();
	return tap_done();
}
