#include "notes.h"
#include "util/file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int build_note_add(struct build_notes *notes, enum build_note_kind kind, const char *function,
		   const char *file, const char *fmt, ...)
{
	struct build_note *n;
	va_list ap;
	char msg[512];

	if (OPUS_PUSH(notes->v, notes->n, notes->cap))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = &notes->v[notes->n];
	n->kind = kind;
	n->inherited = false;
	n->function = strdup(function ? function : "");
	n->file = strdup(file ? file : "");
	n->message = strdup(msg);
	if (!n->function || !n->file || !n->message) {
		free(n->function);
		free(n->file);
		free(n->message);
		return -ENOMEM;
	}
	notes->n++;
	return 0;
}

void build_notes_truncate(struct build_notes *notes, size_t n)
{
	for (size_t i = n; i < notes->n; i++) {
		free(notes->v[i].function);
		free(notes->v[i].file);
		free(notes->v[i].message);
	}
	if (n < notes->n)
		notes->n = n;
}

void build_notes_free(struct build_notes *notes)
{
	build_notes_truncate(notes, 0);
	free(notes->v);
	memset(notes, 0, sizeof(*notes));
}

const char *build_note_kind_name(enum build_note_kind kind)
{
	static const char *const names[] = {"replaced", "added", "warning", "info"};

	return names[kind];
}
