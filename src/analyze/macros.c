/* The macros a diff redefines. A function's tokens are compared as written,
 * so a function that uses a macro whose definition changed (a buffer size,
 * a limit: a common kind of fix) looks unchanged although its code is not.
 * The definitions are read from the text of the diff's files, before and
 * after; a macro of those files whose definition names a changed one is
 * changed too. A macro defined in another file on top of a changed one is
 * not followed: its users are left to the build, whose object diff replaces
 * them all the same. */
#include "macros.h"
#include "util/buf.h"
#include "util/file.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A macro of a file: every definition of it, in order ("#undef" for one
 * taken back). */
struct def {
	char *name, *body;
};

struct defs {
	struct def *v;
	size_t n, cap;
};

static bool ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

static struct def *defs_find(const struct defs *d, const char *name, size_t len)
{
	for (size_t i = 0; i < d->n; i++)
		if (strlen(d->v[i].name) == len && !strncmp(d->v[i].name, name, len))
			return &d->v[i];
	return NULL;
}

static int defs_add(struct defs *d, const char *name, size_t len, const char *body)
{
	struct def *e = defs_find(d, name, len);
	char *more;

	if (e) {
		if (asprintf(&more, "%s\n%s", e->body, body) < 0)
			return -ENOMEM;
		free(e->body);
		e->body = more;
		return 0;
	}
	if (OPUS_PUSH(d->v, d->n, d->cap))
		return -ENOMEM;
	e = &d->v[d->n];
	e->name = strndup(name, len);
	e->body = strdup(body);
	if (!e->name || !e->body) {
		free(e->name);
		free(e->body);
		return -ENOMEM;
	}
	d->n++;
	return 0;
}

static void defs_free(struct defs *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].name);
		free(d->v[i].body);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* One logical line (continuations joined), its blanks runs made one. */
static const char *logical_line(const char *at, struct opus_buf *out)
{
	bool blank = false;

	out->len = 0;
	while (*at && *at != '\n') {
		if (at[0] == '\\' && at[1] == '\n') {
			at += 2;
			continue;
		}
		if (isspace((unsigned char)*at))
			blank = true;
		else {
			if (blank && out->len)
				opus_buf_add(out, " ", 1);
			blank = false;
			opus_buf_add(out, at, 1);
		}
		at++;
	}
	opus_buf_add(out, "", 1);
	out->len--;
	return *at ? at + 1 : at;
}

/* "# define NAME rest" or "# undef NAME". */
static int directive(const char *line, struct defs *d)
{
	const char *at = line, *name;
	bool undef;

	if (*at++ != '#')
		return 0;
	at += strspn(at, " ");
	undef = !strncmp(at, "undef", 5);
	if (strncmp(at, "define", 6) && !undef)
		return 0;
	at += undef ? 5 : 6;
	at += strspn(at, " ");
	if (!ident_start(*at))
		return 0;
	for (name = at; ident_char(*at); at++)
		;
	return defs_add(d, name, (size_t)(at - name), undef ? "#undef" : at);
}

static int read_defs(const char *path, struct defs *d)
{
	struct opus_buf line = {0};
	char *text = NULL;
	size_t len = 0;
	int ret = 0;

	if (opus_read_file(path, &text, &len))
		return 0; /* a file the diff adds or deletes has no side here */
	for (const char *at = text; !ret && *at;) {
		at = logical_line(at, &line);
		if (line.data)
			ret = directive(line.data, d);
	}
	opus_buf_free(&line);
	free(text);
	return ret;
}

static bool names_one_of(const char *body, const struct macro_set *s)
{
	for (const char *at = body; *at;) {
		if (ident_start(*at) && (at == body || !ident_char(at[-1]))) {
			size_t n = 1;

			while (ident_char(at[n]))
				n++;
			if (macro_set_find(s, at, n))
				return true;
			at += n;
		} else {
			at++;
		}
	}
	return false;
}

static int set_add(struct macro_set *s, const char *name)
{
	if (macro_set_find(s, name, strlen(name)))
		return 0;
	if (OPUS_PUSH(s->v, s->n, s->cap) || !(s->v[s->n] = strdup(name)))
		return -ENOMEM;
	s->n++;
	return 0;
}

/* Changed: defined otherwise (or only) on one side; then, until none is
 * added, any whose definition names a changed one. */
static int compare_defs(const struct defs *old, const struct defs *new, struct macro_set *out)
{
	const struct defs *side[2] = {old, new};
	bool grew = true;
	int ret = 0;

	for (int k = 0; k < 2; k++)
		for (size_t i = 0; !ret && i < side[k]->n; i++) {
			const struct def *e = &side[k]->v[i];
			const struct def *other = defs_find(side[!k], e->name, strlen(e->name));

			if (!other || strcmp(other->body, e->body))
				ret = set_add(out, e->name);
		}
	while (!ret && grew) {
		size_t before = out->n;

		for (int k = 0; k < 2; k++)
			for (size_t i = 0; !ret && i < side[k]->n; i++)
				if (names_one_of(side[k]->v[i].body, out))
					ret = set_add(out, side[k]->v[i].name);
		grew = out->n > before;
	}
	return ret;
}

int macros_changed(const struct workspace *w, struct macro_set *out)
{
	struct defs old = {0}, new = {0};
	int ret = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; !ret && i < w->files.n; i++) {
		char path[PATH_MAX + 256];

		snprintf(path, sizeof(path), "%s/%s", w->root, w->files.v[i].path);
		ret = read_defs(path, &old);
		snprintf(path, sizeof(path), "%s/%s", w->tree, w->files.v[i].path);
		if (!ret)
			ret = read_defs(path, &new);
	}
	if (!ret)
		ret = compare_defs(&old, &new, out);
	defs_free(&old);
	defs_free(&new);
	if (ret)
		macro_set_free(out);
	return ret;
}

const char *macro_set_find(const struct macro_set *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && !strncmp(s->v[i], name, len))
			return s->v[i];
	return NULL;
}

const char *macro_set_used_by(const struct macro_set *s, const char *text)
{
	for (const char *at = text; s->n && *at;) {
		size_t n = strcspn(at, " ");
		const char *hit = n && ident_start(*at) ? macro_set_find(s, at, n) : NULL;

		if (hit)
			return hit;
		at += n;
		at += strspn(at, " ");
	}
	return NULL;
}

void macro_set_free(struct macro_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}
