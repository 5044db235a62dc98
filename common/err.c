#include <stddef.h>

#include "common/err.h"

static const char *const messages[PF_ERR_COUNT] = {
	[PF_OK] = "ok",
	[PF_ENOMEM] = "out of memory",
	[PF_EINVAL] = "invalid argument",
	[PF_ETOOBIG] = "input too large",
	[PF_EPROTO] = "protocol error",
	[PF_EVERSION] = "unsupported message version",
	[PF_EIO] = "I/O error",
	[PF_EDB] = "database error",
	[PF_EREDIS] = "redis error",
	[PF_ENOTFOUND] = "not found",
	[PF_EEXIST] = "already exists",
	[PF_ETIMEDOUT] = "timed out",
	[PF_ECLOSED] = "closed",
	[PF_ECANCELED] = "canceled",
	[PF_EOVERFLOW] = "arithmetic overflow",
	[PF_ECONFIG] = "configuration error",
	[PF_EUPSTREAM] = "upstream error",
	[PF_EAGAIN] = "try again",
	[PF_ENET] = "messaging error",
	[PF_ECRYPTO] = "crypto error",
	[PF_EDENIED] = "access denied",
	[PF_EPENDING] = "in progress",
};

const char *
pf_strerror(pf_err err)
{
	if ((unsigned)err >= PF_ERR_COUNT || messages[err] == NULL)
		return "unknown error";
	return messages[err];
}
