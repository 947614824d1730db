/* compile_commands.json: how each translation unit was compiled. */
#ifndef OPUS_SOURCE_CDB_H
#define OPUS_SOURCE_CDB_H

#include <stddef.h>

struct cdb_entry {
	char *directory;
	char *file;  /* canonical absolute path */
	char **argv; /* NULL-terminated */
	size_t argc;
};

struct cdb {
	struct cdb_entry *v;
	size_t n, cap;
};

int cdb_load(const char *path, struct cdb *out);
/* The same over the file's text; path is for messages. */
int cdb_parse(const char *path, const char *text, size_t len, struct cdb *out);
void cdb_free(struct cdb *c);
/* The first entry compiling the file at canonical path abs, or NULL. A
 * file can have several (libtool compiles each source with and without
 * -fPIC): cdb_find_next gives the one after prev, or NULL. */
const struct cdb_entry *cdb_find(const struct cdb *c, const char *abs);
const struct cdb_entry *cdb_find_next(const struct cdb *c, const struct cdb_entry *prev);

#endif
