#include "cache.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC  "opus-analysis-cache 1\n"
#define ENTRIES_KEPT 32
#define SEP	     '\x1f' /* between the text fields of a line */

int analysis_reads_add(struct analysis_reads *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i], path))
			return 0;
	if (OPUS_PUSH(r->v, r->n, r->cap) || !(r->v[r->n] = strdup(path)))
		return -ENOMEM;
	r->n++;
	return 0;
}

void analysis_reads_free(struct analysis_reads *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int cache_dir(char *out, size_t len)
{
	const char *dir = getenv("OPUS_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (dir && !*dir)
		return -ENOENT; /* turned off */
	if (dir)
		snprintf(out, len, "%s/analysis", dir);
	else if (xdg && *xdg)
		snprintf(out, len, "%s/opus/analysis", xdg);
	else if (home && *home)
		snprintf(out, len, "%s/.cache/opus/analysis", home);
	else
		return -ENOENT;
	return 0;
}

/* Only a directory of ours that no one else can write holds entries we
 * trust: a planted entry would hide the analysis's errors. */
static bool dir_is_ours(const char *dir)
{
	return opus_private_dir(dir, "analysis cache", true) == 0;
}

int analysis_cache_key(const struct analyze_opts *o, const char *clang_version,
		       char key[ANALYSIS_KEY_LEN + 1])
{
	char dir[PATH_MAX], root[PATH_MAX], cdb[PATH_MAX + 32];
	uint8_t digest[OPUS_SHA256_LEN];
	struct opus_buf b = {0};
	char *diff = NULL, *db = NULL;
	size_t dlen = 0, clen = 0;
	struct stat self;
	int ret = cache_dir(dir, sizeof(dir));

	if (!ret && !realpath(o->source, root))
		ret = -ENOENT;
	/* Where the workspace looks for it when none is named. */
	if (!ret && o->cdb)
		snprintf(cdb, sizeof(cdb), "%s", o->cdb);
	else if (!ret) {
		snprintf(cdb, sizeof(cdb), "%s/compile_commands.json", root);
		if (access(cdb, F_OK) < 0)
			snprintf(cdb, sizeof(cdb), "%s/build/compile_commands.json", root);
	}
	/* opus itself: another build of it may analyse differently. */
	if (!ret && (opus_read_file(o->diff, &diff, &dlen) || opus_read_file(cdb, &db, &clen) ||
		     stat("/proc/self/exe", &self) < 0))
		ret = -ENOENT;
	if (!ret) {
		opus_buf_printf(&b, "%s%s\n%s\n%s\n%llu %lld %lld.%09ld\n", CACHE_MAGIC, root,
				clang_version, cdb, (unsigned long long)self.st_ino,
				(long long)self.st_size, (long long)self.st_mtim.tv_sec,
				self.st_mtim.tv_nsec);
		opus_buf_add(&b, db, clen + 1);
		opus_buf_add(&b, diff, dlen);
		ret = b.data ? 0 : -ENOMEM;
	}
	if (!ret) {
		opus_sha256(b.data, b.len, digest);
		opus_hex_encode(digest, sizeof(digest), key);
	}
	opus_buf_free(&b);
	free(diff);
	free(db);
	return ret;
}

/* ---- entries ---- */

static void put_stat(struct opus_buf *b, const char *path, const struct stat *st)
{
	opus_buf_printf(b, "R %llu %lld %lld.%09ld %lld.%09ld %s\n", (unsigned long long)st->st_ino,
			(long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
			(long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec, path);
}

static bool plain_text(const char *s)
{
	return !strchr(s, '\n') && !strchr(s, SEP);
}

/* The analysis's own lines (functions, findings, never-left functions,
 * callers to prove), or -EINVAL when a field cannot be kept as a line. */
static int format_analysis(const struct analysis *a, struct opus_buf *b)
{
	for (size_t i = 0; i < a->nfuncs; i++) {
		const struct an_function *f = &a->funcs[i];

		if (!plain_text(f->name) || !plain_text(f->file))
			return -EINVAL;
		opus_buf_printf(b, "F %d %s%c%s\n", (int)f->change, f->name, SEP, f->file);
	}
	for (size_t i = 0; i < a->nfindings; i++) {
		const struct an_finding *f = &a->findings[i];

		if (!plain_text(f->kind) || !plain_text(f->function) || !plain_text(f->file) ||
		    !plain_text(f->message))
			return -EINVAL;
		opus_buf_printf(b, "X %d %d %s%c%s%c%s%c%s\n", (int)f->severity, f->line, f->kind,
				SEP, f->function, SEP, f->file, SEP, f->message);
	}
	for (size_t i = 0; i < a->nnever_left; i++) {
		const struct an_function *f = &a->never_left[i];

		if (!plain_text(f->name) || !plain_text(f->file))
			return -EINVAL;
		opus_buf_printf(b, "N %d %s%c%s\n", f->line, f->name, SEP, f->file);
	}
	for (size_t i = 0; i < a->ncallers_to_prove; i++) {
		const struct an_function *f = &a->callers_to_prove[i];

		if (!plain_text(f->name) || !plain_text(f->file))
			return -EINVAL;
		opus_buf_printf(b, "P %d %s%c%s\n", f->line, f->name, SEP, f->file);
	}
	return b->data ? 0 : -ENOMEM;
}

/* The entry's text, or -EINVAL when a field cannot be kept as a line or a
 * file read is gone. */
static int format_entry(const struct analysis *a, const struct analysis_reads *reads,
			struct opus_buf *b)
{
	opus_buf_printf(b, "%s", CACHE_MAGIC);
	for (size_t i = 0; i < reads->n; i++) {
		struct stat st;

		if (stat(reads->v[i], &st) < 0 || !plain_text(reads->v[i]))
			return -EINVAL;
		put_stat(b, reads->v[i], &st);
	}
	return format_analysis(a, b);
}

int analysis_text_write(const struct analysis *a, const struct analysis_reads *reads,
			struct opus_buf *b)
{
	for (size_t i = 0; i < reads->n; i++) {
		if (!plain_text(reads->v[i]))
			return -EINVAL;
		opus_buf_printf(b, "r %s\n", reads->v[i]);
	}
	return format_analysis(a, b);
}

/* Keep the newest entries only. */
static void prune(const char *dir)
{
	struct {
		char name[ANALYSIS_KEY_LEN + 1];
		struct timespec at;
	} v[ENTRIES_KEPT + 1];
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		struct stat st;
		size_t oldest = 0;

		if (strlen(e->d_name) != ANALYSIS_KEY_LEN ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		snprintf(v[n].name, sizeof(v[n].name), "%s", e->d_name);
		v[n++].at = st.st_mtim;
		if (n <= ENTRIES_KEPT)
			continue;
		for (size_t i = 1; i < n; i++)
			if (v[i].at.tv_sec < v[oldest].at.tv_sec ||
			    (v[i].at.tv_sec == v[oldest].at.tv_sec &&
			     v[i].at.tv_nsec < v[oldest].at.tv_nsec))
				oldest = i;
		unlinkat(dirfd(d), v[oldest].name, 0);
		v[oldest] = v[--n];
	}
	if (d)
		closedir(d);
}

void analysis_cache_store(const char *key, const struct analysis *a,
			  const struct analysis_reads *reads)
{
	char dir[PATH_MAX], path[PATH_MAX + ANALYSIS_KEY_LEN + 2];
	struct opus_buf b = {0};

	if (cache_dir(dir, sizeof(dir)) || !dir_is_ours(dir) || format_entry(a, reads, &b)) {
		opus_buf_free(&b);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	opus_write_file_atomic(path, b.data, b.len);
	opus_buf_free(&b);
	prune(dir);
}

/* Fields of a line split at SEP, in place: n of them, or -EINVAL. */
static int split(char *s, char **out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *sep = i + 1 < n ? strchr(s, SEP) : NULL;

		if (i + 1 < n && !sep)
			return -EINVAL;
		out[i] = s;
		if (sep)
			*sep = '\0', s = sep + 1;
	}
	return strchr(s, SEP) ? -EINVAL : 0;
}

/* An R line: is the file it names as it was? */
static bool read_unchanged(const char *line)
{
	struct stat st;
	char now[PATH_MAX + 128];
	struct opus_buf b = {0};
	const char *path = line;
	bool same;

	for (int i = 0; i < 4 && path; i++)
		path = strchr(path, ' ') ? strchr(path, ' ') + 1 : NULL;
	if (!path || stat(path, &st) < 0)
		return false;
	put_stat(&b, path, &st);
	snprintf(now, sizeof(now), "R %s\n", line);
	same = b.data && !strcmp(b.data, now);
	opus_buf_free(&b);
	return same;
}

/* One line of an entry, or of the text form when reads is given. */
static int parse_line(char *line, struct analysis *a, struct analysis_reads *reads)
{
	char *f[4];
	int x, y, n = 0;

	if (!reads && line[0] == 'R' && line[1] == ' ')
		return read_unchanged(line + 2) ? 0 : -ESTALE;
	if (reads && line[0] == 'r' && line[1] == ' ')
		return analysis_reads_add(reads, line + 2);
	if (line[0] == 'F' && sscanf(line, "F %d %n", &x, &n) == 1 && n && !split(line + n, f, 2))
		return analysis_add_function(a, f[0], f[1], (enum an_change)x);
	if (line[0] == 'X' && sscanf(line, "X %d %d %n", &x, &y, &n) == 2 && n &&
	    !split(line + n, f, 4) && x >= AN_INFO && x <= AN_ERROR)
		return analysis_add(a, (enum an_severity)x, f[0], f[1], f[2], y, "%s", f[3]);
	if (line[0] == 'N' && sscanf(line, "N %d %n", &x, &n) == 1 && n && !split(line + n, f, 2))
		return analysis_add_never_left(a, f[0], f[1], x);
	if (line[0] == 'P' && sscanf(line, "P %d %n", &x, &n) == 1 && n && !split(line + n, f, 2))
		return analysis_add_caller_to_prove(a, f[0], f[1], x);
	return -EINVAL;
}

int analysis_cache_load(const char *key, struct analysis *out)
{
	char dir[PATH_MAX], path[PATH_MAX + ANALYSIS_KEY_LEN + 2], *text = NULL, *line, *next;
	size_t len = 0;
	struct stat st;
	int fd, ret = cache_dir(dir, sizeof(dir));

	memset(out, 0, sizeof(*out));
	if (ret || !dir_is_ours(dir))
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022) || opus_read_fd(fd, path, &text, &len) ||
	    strncmp(text, CACHE_MAGIC, strlen(CACHE_MAGIC)))
		ret = -ENOENT;
	close(fd);
	for (line = ret ? NULL : text + strlen(CACHE_MAGIC); !ret && line && *line; line = next) {
		next = strchr(line, '\n');
		if (!next) {
			ret = -EINVAL;
			break;
		}
		*next++ = '\0';
		ret = parse_line(line, out, NULL);
	}
	free(text);
	if (ret) {
		analysis_free(out);
		return -ENOENT;
	}
	utimensat(AT_FDCWD, path, NULL, 0); /* used: kept longest by prune */
	return 0;
}

int analysis_text_read(char *text, struct analysis *a, struct analysis_reads *reads)
{
	int ret = 0;

	for (char *line = text, *next; !ret && *line; line = next) {
		if (!(next = strchr(line, '\n')))
			return -EINVAL;
		*next++ = '\0';
		ret = parse_line(line, a, reads);
	}
	return ret;
}
