/* Unit tests of the OpenAI request body rewrite. */
#include <string.h>

#include "tests/tap.h"
#include "workers/provider.h"

static int
rewrite(const char *body, const char *model, int force, wrk_body *out)
{
	return wrk_rewrite_body((const uint8_t *)body, strlen(body), model,
	    strlen(model), force, out);
}

static int
same(const wrk_body *b, const char *want)
{
	if (b->len != strlen(want) || memcmp(b->ptr, want, b->len) != 0) {
		printf("# got %.*s\n", (int)b->len, (const char *)b->ptr);
		return 0;
	}
	return 1;
}

int
main(void)
{
	const char *b1 = "{ \"model\": \"gpt-x\", \"messages\": [] }";
	const char *b2 = "{\"model\":\"a\",\"temperature\":0.7,\"top_p\":0.1,"
	                 "\"stream\":true,\"n\":1}";
	const char *b3 = "{\"model\":\"a\",\"stream\":true,\"stream_options\":"
	                 "{\"include_usage\":false}}";
	const char *b4 = "{\"model\":\"a\",\"stream\":true,\"stream_options\":"
	                 "{\"include_usage\":true}}";
	const char *b5 = "{\"model\":\"a\",\"x\":0.30000000000000004}";
	wrk_body b;

	ok(rewrite(b1, "gpt-x", 0, &b) == PF_OK && b.ptr == (const uint8_t *)b1
	        && b._owned == NULL,
	    "same model, no usage: the client's bytes unchanged");
	wrk_body_fini(&b);
	ok(rewrite(b1, "", 0, &b) == PF_OK && b.ptr == (const uint8_t *)b1,
	    "no upstream model: unchanged");
	wrk_body_fini(&b);
	ok(rewrite(b1, "up-1", 0, &b) == PF_OK
	        && same(&b, "{\"model\":\"up-1\",\"messages\":[]}"),
	    "model renamed, order kept");
	wrk_body_fini(&b);
	ok(rewrite(b2, "a", 1, &b) == PF_OK
	        && same(&b,
	            "{\"model\":\"a\",\"temperature\":0.7,\"top_p\":0.1,"
	            "\"stream\":true,\"n\":1,\"stream_options\":"
	            "{\"include_usage\":true}}"),
	    "include_usage added; 0.7 stays 0.7, integers stay integers");
	wrk_body_fini(&b);
	ok(rewrite(b3, "a", 1, &b) == PF_OK
	        && same(&b,
	            "{\"model\":\"a\",\"stream\":true,\"stream_options\":"
	            "{\"include_usage\":true}}"),
	    "include_usage false forced true");
	wrk_body_fini(&b);
	ok(rewrite(b4, "a", 1, &b) == PF_OK && b.ptr == (const uint8_t *)b4,
	    "include_usage already true: unchanged");
	wrk_body_fini(&b);
	ok(rewrite(b5, "b", 0, &b) == PF_OK
	        && same(&b, "{\"model\":\"b\",\"x\":0.30000000000000004}"),
	    "a real needing 17 digits keeps its exact value");
	wrk_body_fini(&b);
	ok(rewrite("not json", "b", 1, &b) == PF_OK && same(&b, "not json"),
	    "not JSON: passed unchanged");
	wrk_body_fini(&b);
	ok(rewrite("{\"model\":\"a\"}", "bad\xff", 0, &b) == PF_EINVAL,
	    "a model that is not UTF-8 is refused");
	ok(wrk_openai_wants_usage((const uint8_t *)"/chat/completions", 17)
	        && wrk_openai_wants_usage((const uint8_t *)"/completions", 12)
	        && !wrk_openai_wants_usage((const uint8_t *)"/responses", 10)
	        && !wrk_openai_wants_usage((const uint8_t *)"/embeddings", 11),
	    "stream_options only on (chat) completions");
	return tap_done();
}
