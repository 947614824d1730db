/* What a build decided, for the CLI to print: replaced functions and why,
 * added code, warnings about state the new code cannot inherit. */
#ifndef OPUS_MKPATCH_NOTES_H
#define OPUS_MKPATCH_NOTES_H

#include <stdbool.h>
#include <stddef.h>

enum build_note_kind {
	BUILD_REPLACED,
	BUILD_ADDED,
	BUILD_WARNING,
	BUILD_INFO,
};

struct build_note {
	enum build_note_kind kind;
	char *function;
	char *file;
	char *message;
	/* BUILD_REPLACED: for code it inlines, its own lines unchanged. */
	bool inherited;
};

struct build_notes {
	struct build_note *v;
	size_t n, cap;
};

int build_note_add(struct build_notes *notes, enum build_note_kind kind, const char *function,
		   const char *file, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Drop the notes added after the first n. */
void build_notes_truncate(struct build_notes *notes, size_t n);
void build_notes_free(struct build_notes *notes);
const char *build_note_kind_name(enum build_note_kind kind);

#endif
