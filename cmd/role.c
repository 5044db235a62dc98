/*
 * role.c -- planktonfly-ingress, planktonfly-worker, planktonfly-accountant:
 * one role of split mode in an executable that links only that role's
 * libraries (PF_ROLE_CMD names the role's command function, PF_ROLE_H its
 * header).  `planktonfly ROLE` execs this executable when it lies beside
 * it (cmd/main.c).
 */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include PF_ROLE_H

/* GnuTLS is loaded into every role (libpq -> libldap, libcurl ->
 * librtmp, libmicrohttpd) but used by none (TLS is OpenSSL's, through
 * libpq and libcurl).  Its library constructor initialises it anyway
 * (~0.6 MB of RSS) unless GNUTLS_NO_IMPLICIT_INIT=1 is in the environment
 * at start -- setting it from the program is too late, hence the one
 * re-exec (by path, not /proc/self/exe, which would rename the process
 * "exe").  libmicrohttpd initialises it explicitly, so the ingress
 * (PF_ROLE_GNUTLS_USED) keeps its cost and skips the re-exec. */
static void
skip_gnutls_init(char **argv)
{
#ifndef PF_ROLE_GNUTLS_USED
	char path[PATH_MAX];
	ssize_t n;

	if (getenv("GNUTLS_NO_IMPLICIT_INIT") != NULL)
		return;
	n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return;
	path[n] = '\0';
	if (setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0) != 0)
		return;
	execv(path, argv);
	/* not re-executed: run with the cost */
#else
	(void)argv;
#endif
}

int
main(int argc, char **argv)
{
	skip_gnutls_init(argv);
	return PF_ROLE_CMD(argc, argv);
}
