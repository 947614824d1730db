#include "diff.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int add_file(struct diff_files *f, const char *name, size_t len)
{
	char *s;

	for (size_t i = 0; i < f->n; i++)
		if (strlen(f->v[i]) == len && !strncmp(f->v[i], name, len))
			return 0;
	s = strndup(name, len);
	if (!s || OPUS_PUSH(f->v, f->n, f->cap)) {
		free(s);
		return -ENOMEM;
	}
	f->v[f->n++] = s;
	return 0;
}

int diff_touched_files(const char *path, const char *text, struct diff_files *out)
{
	const char *line = text;

	memset(out, 0, sizeof(*out));
	for (; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
		const char *name, *slash;
		size_t len;

		if (strncmp(line, "+++ ", 4))
			continue;
		name = line + 4;
		len = strcspn(name, "\t\n");
		if (len >= 9 && !strncmp(name, "/dev/null", 9))
			return opus_err(-ENOTSUP, "%s: the diff deletes a file; not supported",
					path);
		slash = memchr(name, '/', len);
		if (!slash)
			return opus_err(-EINVAL, "%s: path '%.*s' has no component to strip (-p1)",
					path, (int)len, name);
		len -= (size_t)(slash + 1 - name);
		if (add_file(out, slash + 1, len))
			return -ENOMEM;
	}
	if (!out->n)
		return opus_err(-EINVAL, "%s: not a unified diff (no '+++' lines)", path);
	return 0;
}

void diff_files_free(struct diff_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i]);
	free(f->v);
	memset(f, 0, sizeof(*f));
}
