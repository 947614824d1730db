/* Options from a table, after git's parse-options: each subcommand lists
 * its options, each bound to the field it sets, and one parser fills them
 * all, checks values (a --timeout in range, a --jobs count) and prints
 * usage for --help or a bad option. What is left of argv from optind on
 * are the positional arguments. */
#ifndef OPUS_CLI_OPTIONS_H
#define OPUS_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

enum cli_opt_type {
	CLI_OPT_FLAG,	 /* bool *: set to true */
	CLI_OPT_STRING,	 /* const char **: the argument */
	CLI_OPT_LIST,	 /* const char ***, with count: every occurrence, in order */
	CLI_OPT_TIMEOUT, /* double *: seconds, 0 to 3600 */
	CLI_OPT_MILLIS,	 /* double *: milliseconds, above 0 up to an hour */
	CLI_OPT_COUNT,	 /* unsigned *: 1 to max */
};

struct cli_opt {
	const char *name; /* long name, without the dashes */
	char short_name;  /* the one-letter form, or 0 */
	enum cli_opt_type type;
	void *value;
	size_t *count; /* CLI_OPT_LIST: how many */
	unsigned max;  /* CLI_OPT_COUNT: the largest value allowed */
};

#define CLI_FLAG(n, s, v)                                                                          \
	{                                                                                          \
		(n), (s), CLI_OPT_FLAG, (v), NULL, 0                                               \
	}
#define CLI_STRING(n, s, v)                                                                        \
	{                                                                                          \
		(n), (s), CLI_OPT_STRING, (v), NULL, 0                                             \
	}
#define CLI_LIST(n, s, v, c)                                                                       \
	{                                                                                          \
		(n), (s), CLI_OPT_LIST, (v), (c), 0                                                \
	}
#define CLI_COUNT(n, s, v, m)                                                                      \
	{                                                                                          \
		(n), (s), CLI_OPT_COUNT, (v), NULL, (m)                                            \
	}
/* The options several subcommands share, spelt once. */
#define CLI_JSON(v) CLI_FLAG("json", 'j', (v))
#define CLI_TIMEOUT(v)                                                                             \
	{                                                                                          \
		"timeout", 't', CLI_OPT_TIMEOUT, (v), NULL, 0                                      \
	}
#define CLI_MAX_PAUSE(v)                                                                           \
	{                                                                                          \
		"max-pause", 0, CLI_OPT_MILLIS, (v), NULL, 0                                       \
	}
#define CLI_JOBS(v)    CLI_COUNT("jobs", 'J', (v), 1024)
#define CLI_TRUSTED(v) CLI_STRING("trusted", 'T', (v))
#define CLI_STORE(v)   CLI_STRING("store", 's', (v))
/* Per thread where the patch allows it is the default (--per-thread says
 * so); --stop-world stops every thread until none is inside. */
#define CLI_STOP_WORLD(v) CLI_FLAG("stop-world", 0, (v))
#define CLI_END                                                                                    \
	{                                                                                          \
		0                                                                                  \
	}

/* Parses argv against opts (--help is always there). 0: parsed, the
 * positional arguments from optind on. -1: the command ends with *status
 * (0 after --help; 2 after a bad option, usage on stderr; 1 after a bad
 * value, the error printed for cmd). Lists are malloc'd: the caller frees
 * them. */
int cli_parse(int argc, char **argv, const struct cli_opt *opts, const char *cmd, const char *usage,
	      int *status);

#endif
