#include "diff.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <limits.h>
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

/* A C-quoted file name ("a/x y.c", with \\ \" \t \n and octal escapes),
 * unquoted into out; returns false if it does not close. */
static bool unquote(const char *q, char *out, size_t len)
{
	size_t n = 0;

	for (q++; *q && *q != '"' && *q != '\n' && n + 1 < len; q++) {
		char c = *q;

		if (c == '\\' && q[1] >= '0' && q[1] <= '7') {
			c = 0;
			for (int k = 0; k < 3 && q[1] >= '0' && q[1] <= '7'; k++)
				c = (char)(c * 8 + (*++q - '0'));
		} else if (c == '\\' && q[1]) {
			c = *++q;
			c = c == 't' ? '\t' : c == 'n' ? '\n' : c;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return *q == '"';
}

/* The name on a "--- " or "+++ " line, as GNU patch reads it: quoted, or
 * up to a tab (then it may hold spaces), or up to the first white space. */
static bool header_name(const char *line, char *out, size_t len)
{
	const char *name = line + 4, *end;
	size_t n;

	if (*name == '"')
		return unquote(name, out, len);
	end = name + strcspn(name, "\n");
	if (memchr(name, '\t', (size_t)(end - name)))
		end = memchr(name, '\t', (size_t)(end - name));
	else
		end = name + strcspn(name, " \t\r\n");
	while (end > name && (end[-1] == '\r' || end[-1] == ' '))
		end--;
	n = (size_t)(end - name);
	if (!n || n >= len)
		return false;
	memcpy(out, name, n);
	out[n] = '\0';
	return true;
}

/* name with its first component stripped (-p1), or NULL for /dev/null. */
static const char *strip_one(const char *path, const char *name, int *ret)
{
	const char *slash = strchr(name, '/');

	if (!strcmp(name, "/dev/null"))
		return NULL;
	if (!slash || !slash[1]) {
		*ret =
		    opus_err(-EINVAL, "%s: path '%s' has no component to strip (-p1)", path, name);
		return NULL;
	}
	return slash + 1;
}

/* A "--- OLD" line followed by "+++ NEW": the file they name. */
static struct diff_file *parse_header(const char *path, const char *minus, const char *plus,
				      struct diff_files *out, int *ret)
{
	char old[4096], new[4096];
	const char *o, *n;
	struct diff_file *df;

	if (!header_name(minus, old, sizeof(old)) || !header_name(plus, new, sizeof(new))) {
		*ret = opus_err(-EINVAL, "%s: unreadable file name in '%.60s'", path, plus);
		return NULL;
	}
	o = strip_one(path, old, ret);
	n = strip_one(path, new, ret);
	if (*ret)
		return NULL;
	if (!o && !n) {
		*ret = opus_err(-EINVAL, "%s: both names are /dev/null", path);
		return NULL;
	}
	df = add_file(out, n ? n : o, strlen(n ? n : o));
	if (!df) {
		*ret = -ENOMEM;
		return NULL;
	}
	df->added = !o;
	df->deleted = !n;
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
	/* A hunk cut short (a truncated download, a hand edit) is not the
	 * fix: patch(1) would refuse it too. */
	if (!*ret && (old_len > 0 || new_len > 0))
		*ret = -ENODATA;
	return l;
}

int diff_parse(const char *path, const char *text, struct diff_files *out)
{
	struct diff_file *cur = NULL;
	const char *l = text;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	while (*l && !ret) {
		const char *next = next_line(l);

		if (!strncmp(l, "--- ", 4) && !strncmp(next, "+++ ", 4)) {
			if (cur)
				cur->text_end = (size_t)(l - text);
			cur = parse_header(path, l, next, out, &ret);
			if (cur)
				cur->text_start = (size_t)(l - text);
			l = next_line(next);
		} else if (!strncmp(l, "@@ -", 4) && cur) {
			const char *hunk = l;

			l = parse_hunk(l, cur, &ret);
			if (ret == -EINVAL)
				opus_err(ret, "%s: malformed hunk '%.*s'", path,
					 (int)strcspn(hunk, "\n"), hunk);
			if (ret == -ENODATA)
				ret = opus_err(-EINVAL,
					       "%s: hunk '%.*s' ends before the lines it counts",
					       path, (int)strcspn(hunk, "\n"), hunk);
		} else if (!strncmp(l, "*** ", 4) && !strncmp(next, "--- ", 4)) {
			ret = opus_err(-ENOTSUP,
				       "%s: a context diff; opus reads unified diffs (diff -u, "
				       "git diff)",
				       path);
		} else {
			if (cur && (!strncmp(l, "diff ", 5) || !strncmp(l, "Index: ", 7)))
				cur->text_end = (size_t)(l - text), cur = NULL;
			l = next;
		}
	}
	if (cur)
		cur->text_end = (size_t)(l - text);
	if (!ret && !out->n)
		ret = opus_err(-EINVAL, "%s: not a unified diff (no '+++' lines)", path);
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

int diff_files_line_map(const struct diff_files *f, char **out)
{
	*out = NULL;
	for (size_t i = 0; i < f->n; i++) {
		const struct diff_file *df = &f->v[i];
		size_t n = strlen(df->path);

		if (df->added || df->deleted || n < 2 || strcmp(df->path + n - 2, ".c"))
			continue;
		for (size_t k = 0; k < df->nhunks; k++) {
			const struct diff_hunk *h = &df->hunks[k];
			char line[PATH_MAX + 64];
			int ret;

			snprintf(line, sizeof(line), "%d %d %d %d %s", h->old_start, h->old_len,
				 h->new_start, h->new_len, df->path);
			if ((ret = opus_append_line(out, line)))
				return ret;
		}
	}
	return 0;
}

int diff_files_from_line_map(const char *text, struct diff_files *out)
{
	memset(out, 0, sizeof(*out));
	for (const char *at = text; at && *at;) {
		const char *eol = strchrnul(at, '\n');
		struct diff_hunk h;
		struct diff_file *df;
		int path = 0;

		if (sscanf(at, "%d %d %d %d %n", &h.old_start, &h.old_len, &h.new_start, &h.new_len,
			   &path) == 4 &&
		    path > 0 && at + path < eol) {
			df = add_file(out, at + path, (size_t)(eol - at - path));
			if (!df || OPUS_PUSH(df->hunks, df->nhunks, df->hunks_cap)) {
				diff_files_free(out);
				return -ENOMEM;
			}
			df->hunks[df->nhunks++] = h;
		}
		at = *eol ? eol + 1 : eol;
	}
	return 0;
}
