#include "cdb.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push_arg(struct cdb_entry *e, size_t *cap, const char *s, size_t len)
{
	char *a = strndup(s, len);

	if (!a || opus_grow(&e->argv, cap, e->argc + 1, sizeof(char *))) {
		free(a);
		return -ENOMEM;
	}
	e->argv[e->argc++] = a;
	e->argv[e->argc] = NULL;
	return 0;
}

/* Split a shell command line as the compile database writers quote it. */
static int split_command(struct cdb_entry *e, size_t *cap, const char *cmd)
{
	char *word = malloc(strlen(cmd) + 1);
	const char *c = cmd;
	int ret = 0;

	if (!word)
		return -ENOMEM;
	while (!ret && *c) {
		size_t n = 0;
		char quote = 0;

		while (*c == ' ' || *c == '\t' || *c == '\n')
			c++;
		if (!*c)
			break;
		for (; *c && (quote || (*c != ' ' && *c != '\t' && *c != '\n')); c++) {
			if (quote && *c == quote)
				quote = 0;
			else if (!quote && (*c == '\'' || *c == '"'))
				quote = *c;
			else if (*c == '\\' && quote != '\'' && c[1])
				word[n++] = *++c;
			else
				word[n++] = *c;
		}
		ret = push_arg(e, cap, word, n);
	}
	free(word);
	return ret;
}

static int load_entry(json_t *j, struct cdb_entry *e)
{
	const char *dir = json_string_value(json_object_get(j, "directory"));
	const char *file = json_string_value(json_object_get(j, "file"));
	json_t *args = json_object_get(j, "arguments");
	const char *cmd = json_string_value(json_object_get(j, "command"));
	char path[PATH_MAX * 2], real[PATH_MAX];
	size_t cap = 0, i;
	json_t *a;

	if (!dir || !file || (!json_is_array(args) && !cmd))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s%s%s", file[0] == '/' ? "" : dir, file[0] == '/' ? "" : "/",
		 file);
	e->directory = strdup(dir);
	e->file = strdup(realpath(path, real) ? real : path);
	if (!e->directory || !e->file)
		return -ENOMEM;
	if (!json_is_array(args))
		return split_command(e, &cap, cmd);
	json_array_foreach(args, i, a)
	{
		const char *s = json_string_value(a);

		if (!s)
			return -EINVAL;
		if (push_arg(e, &cap, s, strlen(s)))
			return -ENOMEM;
	}
	return e->argc ? 0 : -EINVAL;
}

int cdb_load(const char *path, struct cdb *out)
{
	char *text;
	size_t len;
	int ret = opus_read_file(path, &text, &len);

	memset(out, 0, sizeof(*out));
	if (ret)
		return opus_err(ret, "%s: %s", path, strerror(-ret));
	ret = cdb_parse(path, text, len, out);
	free(text);
	return ret;
}

int cdb_parse(const char *path, const char *text, size_t len, struct cdb *out)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr), *j;
	size_t i;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!root)
		return opus_err(-EINVAL, "%s:%d: %s", path, jerr.line, jerr.text);
	if (!json_is_array(root)) {
		json_decref(root);
		return opus_err(-EINVAL, "%s: not a JSON array of compile commands", path);
	}
	json_array_foreach(root, i, j)
	{
		if (OPUS_PUSH(out->v, out->n, out->cap)) {
			ret = -ENOMEM;
			break;
		}
		memset(&out->v[out->n], 0, sizeof(out->v[0]));
		ret = load_entry(j, &out->v[out->n]);
		out->n++;
		if (ret) {
			opus_err(ret, "%s: entry %zu is malformed", path, i);
			break;
		}
	}
	json_decref(root);
	if (ret)
		cdb_free(out);
	return ret;
}

void cdb_free(struct cdb *c)
{
	for (size_t i = 0; i < c->n; i++) {
		for (size_t a = 0; a < c->v[i].argc; a++)
			free(c->v[i].argv[a]);
		free(c->v[i].argv);
		free(c->v[i].directory);
		free(c->v[i].file);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static const struct cdb_entry *find_from(const struct cdb *c, size_t from, const char *abs)
{
	for (size_t i = from; i < c->n; i++)
		if (!strcmp(c->v[i].file, abs))
			return &c->v[i];
	return NULL;
}

const struct cdb_entry *cdb_find(const struct cdb *c, const char *abs)
{
	return find_from(c, 0, abs);
}

const struct cdb_entry *cdb_find_next(const struct cdb *c, const struct cdb_entry *prev)
{
	return find_from(c, (size_t)(prev - c->v) + 1, prev->file);
}
