/* The smallest test harness that says what failed: CHECK(cond) reports the
 * file, line and condition and counts a failure; a test program returns
 * unit_status() from main. */
#ifndef OPUS_TESTS_UNIT_H
#define OPUS_TESTS_UNIT_H

#include <stdio.h>

static int unit_failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);         \
			unit_failures++;                                                           \
		}                                                                                  \
	} while (0)

static inline int unit_status(void)
{
	return unit_failures ? 1 : 0;
}

#endif
