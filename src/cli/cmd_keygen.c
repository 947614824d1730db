#include "cli.h"
#include "patchfile/sign.h"
#include "util/err.h"

#include <stdio.h>

#define USAGE "opus keygen NAME    (writes NAME.key, the secret key, and NAME.pub)"

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct opsign_key k;
	int c, status;

	while ((c = cli_next_opt(argc, argv, opts, USAGE, &status)) != -1)
		return status;
	if (argc - optind != 1)
		return cli_usage(USAGE);
	if (opsign_keygen(argv[optind], &k))
		return cli_fail("keygen");
	printf("key %s: secret key %s.key (keep it off the servers), public key %s.pub\n"
	       "trust it on a server: install -m 644 %s.pub %s/\n",
	       k.id, argv[optind], argv[optind], argv[optind], OPSIGN_DEFAULT_TRUSTED_DIR);
	opsign_key_wipe(&k);
	return 0;
}
