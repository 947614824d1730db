#include "cli.h"
#include "util/clock.h"
#include "util/err.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"analyze", cmd_analyze, "check whether a source diff is safe to apply live"},
    {"build", cmd_build, "turn a source diff into a patch file"},
    {"apply", cmd_apply,
     "apply a patch to a running process, or to every one that maps its object"},
    {"revert", cmd_revert, "take the newest patch back out of a process"},
    {"recover", cmd_recover, "finish off an apply that was cut short (opus killed)"},
    {"list", cmd_list, "show the patches applied to a process, or to every process"},
    {"inspect", cmd_inspect, "show what a patch file contains"},
    {"keygen", cmd_keygen, "make an Ed25519 key pair for signing patches"},
    {"sign", cmd_sign, "sign a patch file"},
    {"install", cmd_install, "keep a patch in the store, for the daemon to apply"},
    {"uninstall", cmd_uninstall, "take a patch out of the store (and out of processes)"},
    {"daemon", cmd_daemon, "apply stored patches to every process, including new ones"},
    {"deb", cmd_deb, "apply a Debian update's fixes live to an installed package"},
};

static int usage(FILE *out)
{
	fprintf(out, "usage: opus <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\nRun 'opus <command> --help' for a command's options, 'man opus-<command>'\n"
		     "for more, 'opus --version' for the version.\n");
	return out == stdout ? 0 : 2;
}

int cli_fail(const char *cmd)
{
	fprintf(stderr, "opus %s: %s\n", cmd, opus_errmsg());
	return 1;
}

int cli_usage(const char *text)
{
	fprintf(stderr, "usage: %s\n", text);
	return 2;
}

int cli_parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v <= 0 || v > 0x7fffffff)
		return opus_err(-EINVAL, "'%s' is not a process id", s);
	*pid = (pid_t)v;
	return 0;
}

void cli_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		puts(s);
	free(s);
	json_decref(j);
}

static uint64_t main_ns, startup_cpu_ns;

void cli_add_process_times(json_t *stats)
{
	json_object_set_new(stats, "startup_cpu_us", json_real((double)startup_cpu_ns / 1e3));
	json_object_set_new(stats, "main_us", json_real((double)(opus_now_ns() - main_ns) / 1e3));
}

int main(int argc, char **argv)
{
	struct timespec cpu;

	main_ns = opus_now_ns();
	if (!clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu))
		startup_cpu_ns = (uint64_t)cpu.tv_sec * 1000000000ull + (uint64_t)cpu.tv_nsec;
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return usage(stdout);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("opus %s\n", OPUS_VERSION);
		return 0;
	}
	if (getenv("OPUS_VERBOSE"))
		opus_set_verbose(true);
	/* opus reads no JSON, it only writes objects of its own keys: its
	 * hash tables need no seed from /dev/urandom, which jansson would
	 * otherwise open and read in every --json run. */
	json_object_seed((size_t)(main_ns ^ (uint64_t)getpid()) | 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "opus: unknown command '%s'\n", argv[1]);
	return usage(stderr);
}
