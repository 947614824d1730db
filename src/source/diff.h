/* What a unified diff touches: files (with -p1 path semantics) and, in each,
 * the lines of the new version that were added or next to a deletion. */
#ifndef OPUS_SOURCE_DIFF_H
#define OPUS_SOURCE_DIFF_H

#include <stdbool.h>
#include <stddef.h>

struct diff_hunk {
	int old_start, old_len, new_start, new_len;
};

struct diff_file {
	char *path; /* the new file's, -p1 (for a deleted file, the old one's) */
	bool added, deleted;
	/* Its part of the diff text, from its "--- " line: a diff cut down to
	 * some files is the concatenation of theirs. */
	size_t text_start, text_end;
	int *lines; /* ascending line numbers in the patched file */
	size_t nlines, cap;
	struct diff_hunk *hunks;
	size_t nhunks, hunks_cap;
};

struct diff_files {
	struct diff_file *v;
	size_t n, cap;
};

/* Parse a unified diff, file names read as GNU patch reads them (a quoted
 * name, a tab or a space before the date). path is for messages. */
int diff_parse(const char *path, const char *text, struct diff_files *out);
void diff_files_free(struct diff_files *f);
/* Is any changed line of f within [first, last]? Sets *line to the first. */
bool diff_file_touches(const struct diff_file *f, int first, int last, int *line);

/* Where line old of the original file is in the patched one; false for a
 * line inside a hunk (changed, or too near a change to say). */
bool diff_file_map_line(const struct diff_file *f, int old, int *new_line);

/* The hunks of the diff's C sources as text, one per line: "OLD_START
 * OLD_LEN NEW_START NEW_LEN PATH". A patch carries them so that a patch
 * built later on top of it can tell the __LINE__ constants it moved. *out
 * is malloc'd, NULL when there are none. */
int diff_files_line_map(const struct diff_files *f, char **out);
/* Those lines read back into files with hunks only (no lines, no text). */
int diff_files_from_line_map(const char *text, struct diff_files *out);

#endif
