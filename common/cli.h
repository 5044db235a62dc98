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

#endif /* PF_COMMON_CLI_H */
