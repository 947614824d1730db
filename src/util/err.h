/* Error reporting: functions return 0 or a negative errno and leave a
 * one-line message for the caller to print, like elf_errmsg(). */
#ifndef OPUS_UTIL_ERR_H
#define OPUS_UTIL_ERR_H

#include <stdbool.h>

/* Set the message and return code (a negative errno). */
int opus_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with more context, returning code unchanged. */
int opus_err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *opus_errmsg(void);

/* Verbose progress messages go to stderr when enabled. */
void opus_set_verbose(bool on);
void opus_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
