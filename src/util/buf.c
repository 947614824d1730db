#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct opus_buf *b, size_t more)
{
	size_t ncap = b->cap ? b->cap : 256;
	char *p;

	if (b->len + more + 1 <= b->cap)
		return 0;
	while (ncap < b->len + more + 1)
		ncap *= 2;
	p = realloc(b->data, ncap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

long opus_buf_add(struct opus_buf *b, const void *data, size_t len)
{
	long off = (long)b->len;

	if (reserve(b, len))
		return -ENOMEM;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return off;
}

long opus_buf_addstr(struct opus_buf *b, const char *s)
{
	return opus_buf_add(b, s, strlen(s) + 1);
}

long opus_buf_printf(struct opus_buf *b, const char *fmt, ...)
{
	long off = (long)b->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return off;
}

void opus_buf_free(struct opus_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int opus_append_line(char **text, const char *line)
{
	size_t old = *text ? strlen(*text) : 0;
	char *p = realloc(*text, old + strlen(line) + 2);

	if (!p)
		return -ENOMEM;
	strcpy(p + old, line);
	strcat(p + old, "\n");
	*text = p;
	return 0;
}
