/*
 * cli.h -- what every long-running subcommand does before it starts its
 * role: read --config/--help, load the configuration, block the signals
 * it will sigwait for.
 */
#ifndef PF_COMMON_CLI_H
#define PF_COMMON_CLI_H

#include <signal.h>
#include <stdio.h>

#include "common/config.h"

/*
 * pf_cli_config parses argv[1..argc) for "--config FILE", "--config=FILE"
 * and "--help"/"-h", then loads the configuration (file, then environ)
 * into *ret_cfg and sets the log level.  usage prints the command's help.
 * Returns -1 when the caller should go on (*ret_cfg is filled); otherwise
 * the exit status: 0 after --help, 2 for an unknown option or a bad
 * configuration (the message, prefixed with "planktonfly CMD: ", is on
 * stderr).
 */
int pf_cli_config(const char *cmd, int argc, char **argv,
    void (*usage)(FILE *f), pf_config *ret_cfg);

/*
 * pf_cli_block_signals blocks SIGINT, SIGTERM and SIGPIPE in the calling
 * thread and writes the set to *ret_set.  Call it before any thread
 * starts, so every thread inherits the mask and sigwait() in the main
 * thread receives the signals.
 */
void pf_cli_block_signals(sigset_t *ret_set);

/*
 * pf_cli_tune_process prepares a long-running role's process, before any
 * thread starts: raises the soft RLIMIT_NOFILE to the hard limit (every
 * open stream holds one descriptor in the ingress and one in the worker;
 * 10,000 streams do not fit in the usual 1,024), and caps glibc's malloc
 * arenas at PF_MALLOC_ARENAS unless MALLOC_ARENA_MAX is set (one arena per
 * thread that ever allocated keeps freed memory it cannot share), and
 * sets PGGSSENCMODE=disable unless it is set (no GSSAPI encryption to
 * PostgreSQL unless PF_DATABASE_URL asks with gssencmode=prefer or
 * require).  Best effort: failures leave the defaults.
 */
void pf_cli_tune_process(void);

/*
 * pf_cli_set_sched puts the calling thread under SCHED_BATCH when
 * cfg->sched_batch is set; call it before any thread starts, so every
 * thread inherits it.  A SCHED_BATCH thread woken by another does not
 * preempt it: it waits for a free CPU or for the waker to sleep, which it
 * is about to do (a request is handed from thread to thread, and each
 * preemption is one more context switch, tens of microseconds on a
 * paravirtualised vCPU).  Nice values and priorities are unchanged.  Best
 * effort: a failure leaves SCHED_OTHER.
 */
void pf_cli_set_sched(const pf_config *cfg);

/*
 * pf_cli_wait_signal waits like sigwait(2) for a signal in set and
 * returns it.  While it waits it hands free heap memory back to the
 * system every PF_MALLOC_TRIM_EVERY_MS when more than
 * PF_MALLOC_TRIM_FREE bytes are free (after a load peak the pages stay
 * resident otherwise).
 */
int pf_cli_wait_signal(const sigset_t *set);

#endif /* PF_COMMON_CLI_H */
