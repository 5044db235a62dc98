/*
 * cloop.h -- a transfer thread's curl event loop: curl_multi_socket_action
 * driven by one epoll set.
 *
 * curl tells the loop which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when its next timeout is due (CURLMOPT_TIMERFUNCTION); a loop turn hands
 * curl only the sockets epoll reported ready and, when due, the timeout.
 * A turn costs O(ready sockets), not O(transfers): curl_multi_perform and
 * curl_multi_poll visit every transfer each turn.
 *
 * Besides curl's sockets the set holds fds that only wake the loop (NNG
 * receive fds, level-triggered: wrk_cloop_watch) and an eventfd that any
 * thread can signal (wrk_cloop_wakeup; curl_multi_wakeup does not wake
 * this loop, it only interrupts curl_multi_poll).
 *
 * Everything except wrk_cloop_wakeup runs on the owning thread.
 */
#ifndef PF_WORKERS_CLOOP_H
#define PF_WORKERS_CLOOP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct wrk_cloop wrk_cloop;

/*
 * wrk_cloop_new makes a loop for multi (a CURLM *, still owned by the
 * caller, which must outlive the loop; NULL: none yet, see
 * wrk_cloop_attach) and installs its socket and timer callbacks on it.
 * Errors: PF_ENOMEM, PF_EIO (epoll or eventfd failed).
 */
PF_NODISCARD pf_err wrk_cloop_new(void *multi, wrk_cloop **ret);

/* wrk_cloop_attach gives a loop made without one its CURLM * (same
 * terms as wrk_cloop_new's). */
void wrk_cloop_attach(wrk_cloop *l, void *multi);

/* wrk_cloop_free closes the loop's epoll set and eventfd and detaches its
 * callbacks from the multi handle.  NULL is a no-op. */
void wrk_cloop_free(wrk_cloop *l);

/* wrk_cloop_watch adds fd (not owned) to the set: readable, it ends
 * wrk_cloop_wait; nothing else is done with it.  Errors: PF_EIO. */
PF_NODISCARD pf_err wrk_cloop_watch(wrk_cloop *l, int fd);

/*
 * wrk_cloop_sockopt_cb is a CURLOPT_SOCKOPTFUNCTION (CURLOPT_SOCKOPTDATA:
 * the loop): set it on every transfer of the loop's multi.  A socket curl
 * stops watching stays in the epoll set, so the next transfer on the same
 * kept-alive connection costs no epoll_ctl; the loop forgets what it knew
 * of a descriptor number when curl opens a new socket under it (the old
 * one's entry left the set when it was closed).  Always CURL_SOCKOPT_OK.
 */
int wrk_cloop_sockopt_cb(void *loop, curl_socket_t fd, curlsocktype purpose);

/* wrk_cloop_fd_fn handles epoll events of an fd added by wrk_cloop_own. */
typedef void (*wrk_cloop_fd_fn)(void *arg, int fd, uint32_t events);

/* wrk_cloop_set_handler makes fn(arg, ...) the handler of every fd added
 * by wrk_cloop_own (the thread's own HTTP client, h1.h). */
void wrk_cloop_set_handler(wrk_cloop *l, wrk_cloop_fd_fn fn, void *arg);

/*
 * wrk_cloop_own watches fd (not owned) for events (EPOLLIN, EPOLLOUT;
 * 0: only errors and hang-ups) on behalf of the handler: add for an fd
 * not in the set yet, else a change.  Closing fd removes it.  Errors:
 * PF_EIO.
 */
PF_NODISCARD pf_err wrk_cloop_own(
    wrk_cloop *l, int fd, uint32_t events, int add);

/* wrk_cloop_own_del takes fd out of the set (wrk_cloop_own adds it
 * again). */
void wrk_cloop_own_del(wrk_cloop *l, int fd);

/* wrk_cloop_was_ready: the last wrk_cloop_wait reported fd (a watched
 * fd) readable.  Valid until the next wrk_cloop_run. */
int wrk_cloop_was_ready(const wrk_cloop *l, int fd);

/* wrk_cloop_wakeup ends the current or next wrk_cloop_wait of l.  The one
 * call allowed from any thread. */
void wrk_cloop_wakeup(wrk_cloop *l);

/*
 * wrk_cloop_run hands curl the sockets the last wait found ready and, if
 * curl's timeout is due, the timeout (curl_multi_socket_action); curl
 * calls the transfers' callbacks from here.  Collect finished transfers
 * with curl_multi_info_read afterwards.
 */
void wrk_cloop_run(wrk_cloop *l);

/*
 * wrk_cloop_wait sleeps until a watched fd or a curl socket is ready, the
 * loop is woken, curl's timeout comes, one of the n extra fds (POLLIN,
 * for this call only) is readable, or timeout_ms passes (< 0: no limit of
 * the caller's own).  Returns nonzero when one of the extra fds was
 * readable or nothing at all was (the wait timed out or failed); 0 when
 * only the set's fds were.
 */
int wrk_cloop_wait(wrk_cloop *l, const int *fds, size_t n, int64_t timeout_ms);

#endif /* PF_WORKERS_CLOOP_H */
