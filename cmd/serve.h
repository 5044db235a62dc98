/*
 * serve.h -- `planktonfly serve`: every role in one process over inproc://.
 */
#ifndef PF_CMD_SERVE_H
#define PF_CMD_SERVE_H

int pf_cmd_serve(int argc, char **argv);

#endif /* PF_CMD_SERVE_H */
