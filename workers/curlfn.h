/*
 * curlfn.h -- libcurl, loaded at its first use.
 *
 * The worker carries plain-HTTP requests to IP-literal upstreams with its
 * own client (h1.h) and needs libcurl only for https, host names and
 * proxies.  Linked, libcurl and what it pulls in (its TLS, Kerberos,
 * LDAP, SSH and IDN libraries) cost every worker process ~4.4 MB of
 * resident memory before it relays anything (measured: an idle program
 * linked with -lcurl 7.7 MB, without 3.4 MB).  So the worker does not
 * link it: wrk_curl_load opens it (dlopen) when the first transfer that
 * needs it starts, and the names below send the curl_* calls of the
 * files that include this header (after <curl/curl.h>) through the
 * table it fills.  Calling one before wrk_curl_load succeeded is a bug.
 *
 * The macros replace curl's compile-time type checks of curl_easy_setopt
 * and curl_easy_getinfo (typecheck-gcc.h): arguments must have the exact
 * type the option takes (long, pointer, curl_off_t), as for any variadic
 * call.
 */
#ifndef PF_WORKERS_CURLFN_H
#define PF_WORKERS_CURLFN_H

#include <curl/curl.h>

#include "common/err.h"

typedef struct wrk_curl_fns {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *h);
	void (*easy_reset)(CURL *h);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	CURLcode (*easy_pause)(CURL *h, int bitmask);
	const char *(*easy_strerror)(CURLcode code);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *m);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_socket_action)(
	    CURLM *m, curl_socket_t s, int ev_bitmask, int *running);
	CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_in_queue);
} wrk_curl_fns;

extern wrk_curl_fns wrk_curl;

/*
 * wrk_curl_load opens libcurl (libcurl.so.4), fills wrk_curl and runs
 * curl_global_init, once per process (any thread; later calls return the
 * first one's result).  Never unloaded.  Errors: PF_EIO (libcurl missing
 * or incomplete, or its global init failed; logged once).
 */
PF_NODISCARD pf_err wrk_curl_load(void);

/*
 * wrk_slist_append and wrk_slist_free_all are curl_slist_append and
 * curl_slist_free_all without libcurl: a header list curl reads (it only
 * follows data and next), built before anyone knows whether libcurl or
 * the own client carries the request.  wrk_slist_append returns the new
 * head (list itself when list was not NULL) or NULL when out of memory
 * (list unchanged).  Each node holds its string in the same allocation:
 * free a list with wrk_slist_free_all only, never curl_slist_free_all.
 */
struct curl_slist *wrk_slist_append(struct curl_slist *list, const char *s);
void wrk_slist_free_all(struct curl_slist *list);

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init wrk_curl.global_init
#define curl_easy_init wrk_curl.easy_init
#define curl_easy_cleanup wrk_curl.easy_cleanup
#define curl_easy_reset wrk_curl.easy_reset
#define curl_easy_setopt wrk_curl.easy_setopt
#define curl_easy_getinfo wrk_curl.easy_getinfo
#define curl_easy_pause wrk_curl.easy_pause
#define curl_easy_strerror wrk_curl.easy_strerror
#define curl_multi_init wrk_curl.multi_init
#define curl_multi_cleanup wrk_curl.multi_cleanup
#define curl_multi_setopt wrk_curl.multi_setopt
#define curl_multi_add_handle wrk_curl.multi_add_handle
#define curl_multi_remove_handle wrk_curl.multi_remove_handle
#define curl_multi_socket_action wrk_curl.multi_socket_action
#define curl_multi_info_read wrk_curl.multi_info_read

#endif
