/* Fault injection for the tests: OPUS_FAULT_AT=N makes the Nth fault point
 * reached by this process fail (an error, as if that step had failed), or
 * with OPUS_FAULT_ACTION=kill, SIGKILLs opus right there, or with
 * OPUS_FAULT_ACTION=stall:MS, sleeps MS milliseconds and goes on, as opus
 * descheduled there would. OPUS_FAULT_AT=NAME picks the first pass of the
 * point of that name instead. Points sit after
 * each step that changes the target: a seize, an injected syscall, a write.
 * OPUS_FAULT_LIST=1 names each point on stderr as it is passed. Unset, a
 * point costs one getenv. */
#ifndef OPUS_UTIL_FAULT_H
#define OPUS_UTIL_FAULT_H

/* 0, or -EIO with a message naming the point. */
int opus_fault(const char *point);

#endif
