#include <stdlib.h>

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
