#include "cli.h"
#include "options.h"
#include "patchfile/sign.h"
#include "util/err.h"

#include <stdio.h>

#define USAGE "opus sign PATCH --key NAME.key [-o OUT]"

int cmd_sign(int argc, char **argv)
{
	const char *key = NULL, *out = NULL;
	struct opsign_key k;
	int status, ret;
	const struct cli_opt opts[] = {
	    CLI_STRING("key", 'k', &key),
	    CLI_STRING("output", 'o', &out),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "sign", USAGE, &status))
		return status;
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
