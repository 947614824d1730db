/* A growable byte buffer for building string tables and text sections. */
#ifndef OPUS_UTIL_BUF_H
#define OPUS_UTIL_BUF_H

#include <stddef.h>

struct opus_buf {
	char *data;
	size_t len, cap;
};

/* Append bytes; returns the offset they start at, or -ENOMEM. */
long opus_buf_add(struct opus_buf *b, const void *data, size_t len);
/* Append a string with its NUL: a string-table entry. */
long opus_buf_addstr(struct opus_buf *b, const char *s);
long opus_buf_printf(struct opus_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void opus_buf_free(struct opus_buf *b);

/* Append line and a newline to the malloc'd string *text (NULL: empty). */
int opus_append_line(char **text, const char *line);

#endif
