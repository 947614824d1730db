/* A monotonic clock for the phase timings opus reports. */
#ifndef OPUS_UTIL_CLOCK_H
#define OPUS_UTIL_CLOCK_H

#include <stdint.h>

uint64_t opus_now_ns(void);

#endif
