/*
 * curlfn.c -- libcurl, loaded at its first use (see curlfn.h).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "workers/curlfn.h"

/* the soname Debian's libcurl4 (OpenSSL flavour) installs, the one the
 * build finds headers for */
#define CURL_SONAME "libcurl.so.4"

wrk_curl_fns wrk_curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static pf_err load_res = PF_EIO;

/* every table entry: libcurl calls it curl_<name> */
#define CURL_FNS(X)                                                            \
	X(global_init)                                                         \
	X(easy_init)                                                           \
	X(easy_cleanup)                                                        \
	X(easy_reset)                                                          \
	X(easy_setopt)                                                         \
	X(easy_getinfo)                                                        \
	X(easy_pause)                                                          \
	X(easy_strerror)                                                       \
	X(multi_init)                                                          \
	X(multi_cleanup)                                                       \
	X(multi_setopt)                                                        \
	X(multi_add_handle)                                                    \
	X(multi_remove_handle)                                                 \
	X(multi_socket_action)                                                 \
	X(multi_info_read)

static void
load(void)
{
	void *lib = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	wrk_curl_fns t;
	void *sym;

	if (lib == NULL) {
		pf_error("PF-WRK-CURL",
		    "msg=\"cannot load %s: https, host names and proxies "
		    "fail\" err=\"%s\"",
		    CURL_SONAME, dlerror());
		return;
	}
	/* POSIX: a function's address from dlsym converts back */
#define GET(name)                                                              \
	sym = dlsym(lib, "curl_" #name);                                       \
	if (sym == NULL) {                                                     \
		pf_error("PF-WRK-CURL", "msg=\"%s lacks curl_%s\"",            \
		    CURL_SONAME, #name);                                       \
		return;                                                        \
	}                                                                      \
	memcpy(&t.name, &sym, sizeof(sym));
	CURL_FNS(GET)
#undef GET
	if (t.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		pf_error("PF-WRK-CURL", "msg=\"curl_global_init failed\"");
		return;
	}
	wrk_curl = t;
	load_res = PF_OK;
}

pf_err
wrk_curl_load(void)
{
	if (pthread_once(&load_once, load) != 0)
		return PF_EIO;
	return load_res;
}

struct curl_slist *
wrk_slist_append(struct curl_slist *list, const char *s)
{
	size_t len = strlen(s);
	struct curl_slist *n;
	struct curl_slist *last;

	/* one allocation: the string lives right after its node */
	if (len > SIZE_MAX - sizeof(*n) - 1)
		return NULL;
	n = malloc(sizeof(*n) + len + 1);
	if (n == NULL)
		return NULL;
	n->data = (char *)(n + 1);
	memcpy(n->data, s, len + 1);
	n->next = NULL;
	if (list == NULL)
		return n;
	for (last = list; last->next != NULL; last = last->next)
		;
	last->next = n;
	return list;
}

void
wrk_slist_free_all(struct curl_slist *list)
{
	while (list != NULL) {
		struct curl_slist *next = list->next;

		free(list); /* its string too */
		list = next;
	}
}
