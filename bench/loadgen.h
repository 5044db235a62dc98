/*
 * loadgen.h -- `planktonfly bench`: the load generator.
 */
#ifndef PF_BENCH_LOADGEN_H
#define PF_BENCH_LOADGEN_H

/*
 * lg_cmd runs `planktonfly bench` with argv[0] = "bench".  Prints a
 * progress line a second on stderr, the summary on stdout, and the JSON
 * result to --json FILE.  Returns the exit status: 0 when the run
 * completed (errors are results, not failures), 1 when it could not run
 * (also: a --requests run stopped because for 10 s nothing was in
 * flight and nothing was answered) or
 * --check-billing found a mismatch, 2 on a usage error.
 */
int lg_cmd(int argc, char **argv);

#endif /* PF_BENCH_LOADGEN_H */
