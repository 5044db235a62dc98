/*
 * cmd.h -- subcommands served by the accountant folder: `migrate`,
 * `admin`, `accountant` and `replay`.  argv[0] is the subcommand name.
 */
#ifndef PF_ACCOUNTANT_CMD_H
#define PF_ACCOUNTANT_CMD_H

int acct_cmd_migrate(int argc, char **argv);
int acct_cmd_admin(int argc, char **argv);
int acct_cmd_accountant(int argc, char **argv);
int acct_cmd_replay(int argc, char **argv);

#endif /* PF_ACCOUNTANT_CMD_H */
