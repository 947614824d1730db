#include "kinds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* Thread-local variables of the library: general- and local-dynamic. */
__thread unsigned long lib_tls = 500;
static __thread unsigned long lib_tls_calls;

/* libc's variables from -fPIC code: through the GOT. */
const char *lib_extern(char *out, size_t len)
{
	size_t n = 0;

	for (char **e = environ; e && *e; e++)
		n += !strncmp(*e, "KINDS_", 6);
	snprintf(out, len, "optind=%d optarg=%s kinds_env=%zu stdout=%s", optind,
		 optarg ? optarg : "none", n, stdout ? "set" : "null");
	return out;
}

unsigned long lib_tls_bump(void)
{
	lib_tls_calls++;
	lib_tls += 2;
	return lib_tls_calls * 10000 + lib_tls;
}

static int lib_generic(int x)
{
	return x * 5;
}

static int (*resolve_lib_ifunc(void))(int)
{
	return lib_generic;
}

/* An exported IFUNC of the library. */
int lib_ifunc(int x) __attribute__((ifunc("resolve_lib_ifunc")));

/* libc's IFUNCs: strlen, memcpy, strchr pick an implementation per CPU. */
size_t lib_strings(const char *s)
{
	char buf[64];
	size_t n = strlen(s);

	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return n * 100 + (size_t)(strchr(buf, 'x') ? strchr(buf, 'x') - buf : 99);
}
