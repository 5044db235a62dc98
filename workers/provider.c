#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"

#include "workers/provider.h"

void
wrk_body_fini(wrk_body *b)
{
	free(b->_owned);
	b->_owned = NULL;
	b->ptr = NULL;
	b->len = 0;
}

const wrk_provider *
wrk_provider_for(int32_t type)
{
	switch (type) {
	case PF_API_OPENAI:
		return &wrk_provider_openai;
	case PF_API_ANTHROPIC:
		return &wrk_provider_anthropic;
	default:
		return NULL;
	}
}

/* Does any real in v need 17 significant digits to survive a round
 * trip?  Then the dump uses 17, else 16 (0.7 stays "0.7"). */
static int
needs_17_digits(const json_t *v, unsigned depth)
{
	const char *key;
	const json_t *m;
	size_t i;
	char tmp[40];

	if (depth > PF_JSON_MAX_DEPTH * 4)
		return 1;
	if (json_is_real(v)) {
		double d = json_real_value(v);

		snprintf(tmp, sizeof tmp, "%.16g", d);
		return strtod(tmp, NULL) != d;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, m)
		{
			if (needs_17_digits(m, depth + 1))
				return 1;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, m)
		{
			if (needs_17_digits(m, depth + 1))
				return 1;
		}
	}
	return 0;
}

char *
wrk_json_dumps(const json_t *v)
{
	int prec = needs_17_digits(v, 0) ? 17 : 16;

	return json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(prec));
}
