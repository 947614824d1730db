#include "kinds.h"

/* The executable's own thread-local variables: local-exec references. */
static __thread unsigned long tls_calls;
__thread unsigned long kinds_tls_total = 1000;

unsigned long kinds_tls(void)
{
	tls_calls++;
	kinds_tls_total += 10;
	/* The library's, from the executable: initial-exec, through the GOT. */
	lib_tls += 1;
	return tls_calls * 1000000 + kinds_tls_total + lib_tls;
}
