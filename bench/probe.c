/* Daemon latency probe: argv[1] is the CLOCK_REALTIME (ns) just before the
 * launcher started it. Calls auth_check until the patched answer shows and
 * prints the time from launch to then, in microseconds: an upper bound of
 * the time from libauth.so being mapped to the process being patched. */
#include "auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	uint64_t launched = argc > 1 ? strtoull(argv[1], NULL, 10) : now_ns();

	while (auth_check("admin", "")) {
		if (now_ns() - launched > 10ull * 1000000000u) {
			puts("timeout");
			return 1;
		}
		nanosleep(&(struct timespec){0, 50 * 1000}, NULL);
	}
	printf("%llu\n", (unsigned long long)((now_ns() - launched) / 1000));
	return 0;
}
