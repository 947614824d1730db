#include "cli.h"
#include "options.h"
#include "patchfile/store.h"
#include "util/err.h"
#include "util/hex.h"

#include <getopt.h>
#include <stdio.h>

#define USAGE "opus install PATCH [--store DIR] [--trusted DIR]"

int cmd_install(int argc, char **argv)
{
	const char *store = NULL, *trusted = NULL;
	char hex[2 * OPUS_BUILD_ID_MAX + 1];
	struct opatch p;
	int status;
	const struct cli_opt opts[] = {
	    CLI_STORE(&store),
	    CLI_TRUSTED(&trusted),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "install", USAGE, &status))
		return status;
	if (argc - optind != 1)
		return cli_usage(USAGE);
	store = opstore_dir(store);
	if (opstore_install(store, argv[optind], trusted, &p))
		return cli_fail("install");
	opus_hex_encode(p.build_id, p.build_id_len, hex);
	printf("installed %s in %s: for %s (build-id %s)\n"
	       "opus daemon applies it to every process that maps that object, now and later;\n"
	       "without the daemon, run: opus apply --all %s\n",
	       p.id, store, p.target_name, hex, argv[optind]);
	opatch_free(&p);
	return 0;
}
