#include "diff.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct diff_file *add_file(struct diff_files *f, const char *name, size_t len)
{
	struct diff_file *df;

	for (size_t i = 0; i < f->n; i++)
		if (strlen(f->v[i].path) == len && !strncmp(f->v[i].path, name, len))
			return &f->v[i];
	if (OPUS_PUSH(f->v, f->n, f->cap))
		return NULL;
	df = &f->v[f->n];
	memset(df, 0, sizeof(*df));
	df->path = strndup(name, len);
	if (!df->path)
		return NULL;
	f->n++;
	return df;
}

static int add_line(struct diff_file *df, int line)
{
	if (df->nlines && df->lines[df->nlines - 1] == line)
		return 0;
	if (OPUS_PUSH(df->lines, df->nlines, df->cap))
		return -ENOMEM;
	df->lines[df->nlines++] = line;
	return 0;
}

static const char *next_line(const char *l)
{
	const char *nl = strchr(l, '\n');

	return nl ? nl + 1 : l + strlen(l);
}

/* "+++ b/dir/file.c\t..." -> the file, first component stripped. */
static struct diff_file *parse_target(const char *path, const char *line, struct diff_files *out)
{
	const char *name = line + 4, *slash;
	size_t len = strcspn(name, "\t\n");
	struct diff_file *df;

	if (len >= 9 && !strncmp(name, "/dev/null", 9)) {
		opus_err(-ENOTSUP, "%s: the diff deletes a file; not supported", path);
		return NULL;
	}
	slash = memchr(name, '/', len);
	if (!slash) {
		opus_err(-EINVAL, "%s: path '%.*s' has no component to strip (-p1)", path, (int)len,
			 name);
		return NULL;
	}
	len -= (size_t)(slash + 1 - name);
	df = add_file(out, slash + 1, len);
	if (!df)
		opus_err(-ENOMEM, "out of memory");
	return df;
}

/* Walk one hunk's body, recording changed lines of the new file. */
static const char *parse_hunk(const char *l, struct diff_file *df, int *ret)
{
	int old_start, old_len = 1, new_start, new_len = 1, line;

	if (sscanf(l, "@@ -%d,%d +%d,%d", &old_start, &old_len, &new_start, &new_len) < 4 &&
	    sscanf(l, "@@ -%d +%d,%d", &old_start, &new_start, &new_len) < 3 &&
	    sscanf(l, "@@ -%d,%d +%d", &old_start, &old_len, &new_start) < 3 &&
	    sscanf(l, "@@ -%d +%d", &old_start, &new_start) < 2) {
		*ret = -EINVAL;
		return next_line(l);
	}
	if (OPUS_PUSH(df->hunks, df->nhunks, df->hunks_cap)) {
		*ret = -ENOMEM;
		return next_line(l);
	}
	df->hunks[df->nhunks++] = (struct diff_hunk){old_start, old_len, new_start, new_len};
	line = new_start;
	for (l = next_line(l); *l && (old_len > 0 || new_len > 0); l = next_line(l)) {
		if (*l == ' ' || *l == '\n') {
			old_len--, new_len--, line++;
		} else if (*l == '-') {
			old_len--;
			*ret = add_line(df, line);
		} else if (*l == '+') {
			new_len--;
			*ret = add_line(df, line++);
		} else if (*l != '\\') {
			break;
		}
		if (*ret)
			break;
	}
	return l;
}

int diff_parse(const char *path, const char *text, struct diff_files *out)
{
	struct diff_file *cur = NULL;
	const char *l = text;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	while (*l && !ret) {
		if (!strncmp(l, "+++ ", 4)) {
			cur = parse_target(path, l, out);
			if (!cur) {
				diff_files_free(out);
				return -EINVAL;
			}
			l = next_line(l);
		} else if (!strncmp(l, "@@ -", 4) && cur) {
			l = parse_hunk(l, cur, &ret);
		} else {
			l = next_line(l);
		}
	}
	if (!ret && !out->n)
		ret = opus_err(-EINVAL, "%s: not a unified diff (no '+++' lines)", path);
	else if (ret)
		opus_err(ret, "%s: malformed hunk", path);
	/* The caller owns the files only when the diff read. */
	if (ret)
		diff_files_free(out);
	return ret;
}

void diff_files_free(struct diff_files *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].path);
		free(f->v[i].lines);
		free(f->v[i].hunks);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}

bool diff_file_touches(const struct diff_file *f, int first, int last, int *line)
{
	for (size_t i = 0; i < f->nlines; i++)
		if (f->lines[i] >= first && f->lines[i] <= last) {
			*line = f->lines[i];
			return true;
		}
	return false;
}

bool diff_file_map_line(const struct diff_file *f, int old, int *new_line)
{
	int delta = 0;

	for (size_t i = 0; i < f->nhunks; i++) {
		const struct diff_hunk *h = &f->hunks[i];

		if (old < h->old_start)
			break;
		if (old < h->old_start + h->old_len)
			return false;
		delta = h->new_start + h->new_len - (h->old_start + h->old_len);
	}
	*new_line = old + delta;
	return true;
}
