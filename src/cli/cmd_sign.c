#include "cli.h"
#include "patchfile/sign.h"
#include "util/err.h"

#include <stdio.h>

#define USAGE "opus sign PATCH --key NAME.key [-o OUT]"

int cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *key = NULL, *out = NULL;
	struct opsign_key k;
	int c, status, ret;

	while ((c = cli_next_opt(argc, argv, opts, USAGE, &status)) != -1) {
		switch (c) {
		case 'k':
			key = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return status; /* --help, or a bad option: usage printed */
		}
	}
	if (argc - optind != 1 || !key)
		return cli_usage(USAGE);
	if (opsign_load_key(key, true, &k))
		return cli_fail("sign");
	ret = opsign_sign(argv[optind], &k, out);
	if (!ret)
		printf("signed %s with key %s\n", out ? out : argv[optind], k.id);
	opsign_key_wipe(&k);
	return ret ? cli_fail("sign") : 0;
}
