#include "cli.h"
#include "options.h"
#include "patchfile/sign.h"
#include "patchfile/trust.h"
#include "util/err.h"

#include <stdio.h>

#define USAGE "opus keygen NAME    (writes NAME.key, the secret key, and NAME.pub)"

int cmd_keygen(int argc, char **argv)
{
	struct opsign_key k;
	int status;
	const struct cli_opt opts[] = {
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "keygen", USAGE, &status))
		return status;
	if (argc - optind != 1)
		return cli_usage(USAGE);
	if (opsign_keygen(argv[optind], &k))
		return cli_fail("keygen");
	printf("key %s: secret key %s.key (keep it off the servers), public key %s.pub\n"
	       "trust it on a server: install -m 644 %s.pub %s/\n",
	       k.id, argv[optind], argv[optind], argv[optind], OPTRUST_DEFAULT_DIR);
	opsign_key_wipe(&k);
	return 0;
}
