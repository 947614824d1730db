#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];
static bool verbose; /* set once, before any thread starts: every thread's */

int opus_err(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return code;
}

int opus_err_wrap(int code, const char *fmt, ...)
{
	char prefix[512], old[sizeof(errbuf)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, errbuf, sizeof(old));
	/* prefix + ": " + old, cut to fit. */
	{
		size_t p = strlen(prefix), o = strnlen(old, sizeof(old) - 1);

		if (p > sizeof(errbuf) - 3)
			p = sizeof(errbuf) - 3;
		if (o > sizeof(errbuf) - 3 - p)
			o = sizeof(errbuf) - 3 - p;
		memcpy(errbuf, prefix, p);
		memcpy(errbuf + p, ": ", 2);
		memcpy(errbuf + p + 2, old, o);
		errbuf[p + 2 + o] = '\0';
	}
	return code;
}

const char *opus_errmsg(void)
{
	return errbuf[0] ? errbuf : "unknown error";
}

void opus_set_verbose(bool on)
{
	verbose = on;
}

void opus_info(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	fputs("opus: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
