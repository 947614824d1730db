#include "options.h"
#include "cli.h"
#include "util/err.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 32
#define HELP	 (-1) /* the index getopt reports for --help */

static int parse_timeout(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (*end || end == s || !(v >= 0 && v <= 3600))
		return opus_err(-EINVAL, "--timeout '%s': expected seconds between 0 and 3600", s);
	*out = v;
	return 0;
}

static int parse_millis(const char *opt, const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (*end || end == s || !(v > 0 && v <= 3600e3))
		return opus_err(-EINVAL, "--%s '%s': expected milliseconds above 0, up to 3600000",
				opt, s);
	*out = v;
	return 0;
}

static int parse_count(const char *opt, const char *s, unsigned max, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > (long)max)
		return opus_err(-EINVAL, "--%s '%s': expected a number from 1 to %u", opt, s, max);
	*out = (unsigned)v;
	return 0;
}

static int push(const struct cli_opt *o, const char *arg, int argc)
{
	const char ***list = o->value;

	/* No list is longer than argv. */
	if (!*list && !(*list = calloc((size_t)argc + 1, sizeof(**list))))
		return -ENOMEM;
	(*list)[(*o->count)++] = arg;
	return 0;
}

static int set(const struct cli_opt *o, const char *arg, int argc)
{
	switch (o->type) {
	case CLI_OPT_FLAG:
		*(bool *)o->value = true;
		return 0;
	case CLI_OPT_STRING:
		*(const char **)o->value = arg;
		return 0;
	case CLI_OPT_LIST:
		return push(o, arg, argc);
	case CLI_OPT_TIMEOUT:
		return parse_timeout(arg, o->value);
	case CLI_OPT_MILLIS:
		return parse_millis(o->name, arg, o->value);
	case CLI_OPT_COUNT:
		return parse_count(o->name, arg, o->max, o->value);
	}
	return -EINVAL;
}

/* getopt's tables from ours: each option's val is its index in opts. */
static size_t getopt_tables(const struct cli_opt *opts, struct option *lo, char *so)
{
	size_t n = 0, s = 0;

	for (; opts[n].name && n < MAX_OPTS - 2; n++) {
		bool arg = opts[n].type != CLI_OPT_FLAG;

		lo[n] = (struct option){opts[n].name, arg ? required_argument : no_argument, NULL,
					(int)n + 256};
		if (opts[n].short_name) {
			so[s++] = opts[n].short_name;
			if (arg)
				so[s++] = ':';
		}
	}
	lo[n] = (struct option){"help", no_argument, NULL, 'h'};
	lo[n + 1] = (struct option){0};
	so[s++] = 'h';
	so[s] = '\0';
	return n;
}

/* The table index of what getopt returned, HELP, or -2 for an error. */
static int index_of(const struct cli_opt *opts, size_t n, int c)
{
	if (c == 'h')
		return HELP;
	if (c >= 256 && (size_t)(c - 256) < n)
		return c - 256;
	for (size_t i = 0; i < n && c > 0 && c < 128; i++)
		if (opts[i].short_name == c)
			return (int)i;
	return -2;
}

int cli_parse(int argc, char **argv, const struct cli_opt *opts, const char *cmd, const char *usage,
	      int *status)
{
	struct option lo[MAX_OPTS];
	char so[3 * MAX_OPTS + 3];
	size_t n = getopt_tables(opts, lo, so);
	int c;

	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		int i = index_of(opts, n, c);

		if (i == HELP) {
			printf("usage: %s\n", usage);
			*status = 0;
			return -1;
		}
		if (i < 0) {
			*status = cli_usage(usage);
			return -1;
		}
		if (set(&opts[i], optarg, argc)) {
			*status = cli_fail(cmd);
			return -1;
		}
	}
	return 0;
}
