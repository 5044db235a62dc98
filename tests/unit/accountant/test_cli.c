/*
 * test_cli.c -- option parsing and integer parsing of the accountant CLI.
 */
#include <stdint.h>
#include <string.h>

#include "accountant/cli.h"
#include "tests/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void
test_parse_int(void)
{
	int64_t v = 42;

	ok(acct_parse_int("0", 0, 10, &v) == PF_OK && v == 0, "0");
	ok(acct_parse_int("-7", -10, 10, &v) == PF_OK && v == -7, "-7");
	ok(acct_parse_int("9223372036854775807", 0, INT64_MAX, &v) == PF_OK
	        && v == INT64_MAX,
	    "INT64_MAX");
	v = 42;
	ok(acct_parse_int("9223372036854775808", 0, INT64_MAX, &v)
	            == PF_EOVERFLOW
	        && v == 42,
	    "INT64_MAX + 1 overflows, out untouched");
	ok(acct_parse_int("11", 0, 10, &v) == PF_EOVERFLOW, "above max");
	ok(acct_parse_int("-1", 0, 10, &v) == PF_EOVERFLOW, "below min");
	ok(acct_parse_int("", 0, 10, &v) == PF_EINVAL, "empty");
	ok(acct_parse_int(" 5", 0, 10, &v) == PF_EINVAL, "leading space");
	ok(acct_parse_int("+5", 0, 10, &v) == PF_EINVAL, "plus sign");
	ok(acct_parse_int("5 ", 0, 10, &v) == PF_EINVAL, "trailing space");
	ok(acct_parse_int("5x", 0, 10, &v) == PF_EINVAL, "trailing junk");
	ok(acct_parse_int("0x5", 0, 10, &v) == PF_EINVAL, "hex");
	ok(acct_parse_int("-", -10, 10, &v) == PF_EINVAL, "lone minus");
	ok(acct_parse_int(NULL, 0, 10, &v) == PF_EINVAL, "NULL");
}

static void
test_opts(void)
{
	acct_opt opts[] = { { "config", 1, NULL }, { "name", 1, NULL },
		{ "unlimited", 0, NULL } };
	char err[256];
	int help = -1;
	char *a1[] = { "--name", "bob", "--unlimited", "--config=/x.ini" };
	char *a2[] = { "--name" };
	char *a3[] = { "--nope", "1" };
	char *a4[] = { "--name", "a", "--name", "b" };
	char *a5[] = { "bob" };
	char *a6[] = { "--unlimited=1" };
	char *a7[] = { "--name", "a", "--help", "--nope" };
	char *a8[] = { "--name=" };
	char *a9[] = { "--na", "x" };

	ok(acct_opts_parse(4, a1, opts, N(opts), &help, err, sizeof(err))
	        == PF_OK,
	    "parses separate, flag and = forms");
	ok(help == 0, "no help");
	ok(strcmp(acct_opt_value(opts, N(opts), "name"), "bob") == 0,
	    "--name bob");
	ok(strcmp(acct_opt_value(opts, N(opts), "unlimited"), "") == 0,
	    "flag set to \"\"");
	ok(strcmp(acct_opt_value(opts, N(opts), "config"), "/x.ini") == 0,
	    "--config=/x.ini");
	ok(acct_opt_value(opts, N(opts), "other") == NULL, "unknown name");
	ok(acct_opts_parse(1, a2, opts, N(opts), &help, err, sizeof(err))
	        == PF_EINVAL,
	    "missing value: %s", err);
	ok(acct_opts_parse(2, a3, opts, N(opts), &help, err, sizeof(err))
	            == PF_EINVAL
	        && strstr(err, "--nope") != NULL,
	    "unknown option named: %s", err);
	ok(acct_opts_parse(4, a4, opts, N(opts), &help, err, sizeof(err))
	        == PF_EINVAL,
	    "repeated option: %s", err);
	ok(acct_opts_parse(1, a5, opts, N(opts), &help, err, sizeof(err))
	        == PF_EINVAL,
	    "positional argument: %s", err);
	ok(acct_opts_parse(1, a6, opts, N(opts), &help, err, sizeof(err))
	        == PF_EINVAL,
	    "flag with a value: %s", err);
	ok(acct_opts_parse(4, a7, opts, N(opts), &help, err, sizeof(err))
	            == PF_OK
	        && help == 1,
	    "--help wins over later errors");
	ok(acct_opts_parse(1, a8, opts, N(opts), &help, err, sizeof(err))
	            == PF_OK
	        && strcmp(acct_opt_value(opts, N(opts), "name"), "") == 0,
	    "--name= gives an empty value");
	ok(acct_opts_parse(2, a9, opts, N(opts), &help, err, sizeof(err))
	        == PF_EINVAL,
	    "no prefix abbreviations");
}

int
main(void)
{
	test_parse_int();
	test_opts();
	return tap_done();
}
