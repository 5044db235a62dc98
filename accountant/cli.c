/*
 * cli.c -- long-option parsing and configuration loading for the
 * accountant folder's subcommands.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accountant/cli.h"

extern char **environ;

static acct_opt *
find_opt(acct_opt *opts, size_t n, const char *name, size_t namelen)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(opts[i].name) == namelen
		    && memcmp(opts[i].name, name, namelen) == 0)
			return &opts[i];
	}
	return NULL;
}

pf_err
acct_opts_parse(int argc, char **argv, acct_opt *opts, size_t n, int *ret_help,
    char *errbuf, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		opts[i].value = NULL;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		const char *name;
		const char *eq;
		const char *value = NULL;
		size_t namelen;
		acct_opt *opt;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			*ret_help = 1;
			return PF_OK;
		}
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
			snprintf(
			    errbuf, errlen, "unexpected argument '%s'", arg);
			return PF_EINVAL;
		}
		name = arg + 2;
		eq = strchr(name, '=');
		namelen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		opt = find_opt(opts, n, name, namelen);
		if (opt == NULL) {
			snprintf(errbuf, errlen, "unknown option '--%.*s'",
			    (int)namelen, name);
			return PF_EINVAL;
		}
		if (opt->value != NULL) {
			snprintf(errbuf, errlen, "option '--%s' given twice",
			    opt->name);
			return PF_EINVAL;
		}
		if (!opt->has_arg) {
			if (eq != NULL) {
				snprintf(errbuf, errlen,
				    "option '--%s' takes no value", opt->name);
				return PF_EINVAL;
			}
			opt->value = "";
			continue;
		}
		if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(errbuf, errlen, "option '--%s' needs a value",
			    opt->name);
			return PF_EINVAL;
		}
		opt->value = value;
	}
	*ret_help = 0;
	return PF_OK;
}

const char *
acct_opt_value(const acct_opt *opts, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(opts[i].name, name) == 0)
			return opts[i].value;
	}
	return NULL;
}

int
acct_cli_prepare(const char *name, const char *usage, int argc, char **argv,
    acct_opt *opts, size_t n, pf_config *ret_cfg)
{
	char errbuf[1024];
	int help = 0;
	pf_err err;

	err = acct_opts_parse(
	    argc, argv, opts, n, &help, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr,
		    "planktonfly %s: %s\n(see 'planktonfly %s --help')\n", name,
		    errbuf, name);
		return ACCT_EXIT_USAGE;
	}
	if (help) {
		fputs(usage, stdout);
		fputs(ACCT_CLI_HELP_OPTS, stdout);
		pf_config_usage(stdout);
		return ACCT_EXIT_OK;
	}
	err = acct_load_config(
	    acct_opt_value(opts, n, "config"), ret_cfg, errbuf, sizeof(errbuf));
	if (err != PF_OK) {
		fprintf(stderr, "planktonfly %s: %s\n", name, errbuf);
		return ACCT_EXIT_USAGE;
	}
	return -1;
}

pf_err
acct_load_config(
    const char *path, pf_config *ret_cfg, char *errbuf, size_t errlen)
{
	pf_config cfg;
	pf_err err;

	err = pf_config_load(path, environ, &cfg, errbuf, errlen);
	if (err != PF_OK)
		return err;
	if (cfg.database_url[0] == '\0') {
		snprintf(errbuf, errlen,
		    "PF_DATABASE_URL is not set (environment or --config)");
		return PF_ECONFIG;
	}
	*ret_cfg = cfg;
	return PF_OK;
}

pf_err
acct_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	long long v;
	char *end;

	/* strtoll skips leading spaces and accepts '+'; we accept neither. */
	if (s == NULL || s[0] == '\0'
	    || !(isdigit((unsigned char)s[0]) || s[0] == '-'))
		return PF_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return PF_EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return PF_EOVERFLOW;
	*ret = (int64_t)v;
	return PF_OK;
}
