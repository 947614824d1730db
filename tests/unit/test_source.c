/* The source module's readers over real input: a unified diff as git
 * writes it (changed lines, hunks, line mapping, names with spaces,
 * added and deleted files), a compile database in both of its forms, and
 * the path spelling compiles are rebased with. */
#include "source/cdb.h"
#include "source/diff.h"
#include "unit.h"
#include "util/err.h"
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[] = "/tmp/opus-unit-source-XXXXXX";

static void write_text(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* Lines "line 1" .. "line n", with line change_at replaced and a line
 * inserted after line insert_after; 0 leaves either out. */
static char *lines(int n, int change_at, int insert_after)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	for (int i = 1; i <= n; i++) {
		fprintf(f, i == change_at ? "line %d, changed\n" : "line %d\n", i);
		if (i == insert_after)
			fprintf(f, "a new line\n");
	}
	fclose(f);
	return out;
}

/* The diff of the two trees under dir as git writes it (an added or
 * deleted file against /dev/null); exit status 1: they differ. */
static char *run_diff(void)
{
	char cmd[600], *text;
	size_t len;

	snprintf(cmd, sizeof(cmd),
		 "cd %s && git diff --no-index --no-prefix a b > d.diff; test $? = 1", dir);
	CHECK(system(cmd) == 0);
	snprintf(cmd, sizeof(cmd), "%s/d.diff", dir);
	CHECK(opus_read_file(cmd, &text, &len) == 0);
	return text;
}

static const struct diff_file *find_file(const struct diff_files *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].path, path))
			return &d->v[i];
	return NULL;
}

/* A diff cut short inside a hunk is an error, named. */
/* noinline: inlined, gcc 12 takes text for a dead local (-Wdangling-pointer). */
/* A patch file carries its diff's hunks in C files as text; read back, they
 * move lines as the diff does (a path with a space kept whole). */
static void test_line_map(const struct diff_files *d)
{
	struct diff_files back;
	const struct diff_file *f;
	char *text = NULL;
	int line;

	CHECK(diff_files_line_map(d, &text) == 0 && text);
	CHECK(diff_files_from_line_map(text, &back) == 0);
	/* x.c and "with space.c"; the added and the deleted file carry none. */
	CHECK(back.n == 2);
	f = find_file(&back, "x.c");
	CHECK(f && f->nhunks == 2 && f->nlines == 0);
	CHECK(f && diff_file_map_line(f, 190, &line) && line == 191);
	CHECK(f && !diff_file_map_line(f, 40, &line));
	f = find_file(&back, "with space.c");
	CHECK(f && f->nhunks == 1);
	diff_files_free(&back);
	free(text);
}

__attribute__((noinline)) static void test_cut_diff(const char *text)
{
	struct diff_files d = {0};
	const char *hunk = strstr(text, "+++ b/x.c");
	size_t at = hunk ? (size_t)(hunk - text) : 0, len = strlen(text);
	char *cut;

	for (int i = 0; hunk && i < 4 && at < len; i++)
		at += strcspn(text + at + 1, "\n") + 1;
	CHECK(hunk != NULL && at < len);
	if (!hunk || at >= len || !(cut = strndup(text, at + 1)))
		return;
	CHECK(diff_parse("cut.diff", cut, &d) < 0);
	CHECK(strstr(opus_errmsg(), "cut.diff") != NULL);
	diff_files_free(&d);
	free(cut);
}

static void test_diff(void)
{
	struct diff_files d = {0};
	const struct diff_file *f;
	char path[512], *text;
	int line;

	snprintf(path, sizeof(path), "%s/a", dir);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/b", dir);
	CHECK(mkdir(path, 0700) == 0);
	char *old = lines(200, 0, 0), *changed = lines(200, 40, 150), *seventh = lines(200, 7, 0);

	write_text("a/x.c", old);
	write_text("b/x.c", changed);
	write_text("a/with space.c", old);
	write_text("b/with space.c", seventh);
	write_text("a/gone.c", "int gone;\n");
	write_text("b/new.c", "int fresh;\n");
	text = run_diff();
	CHECK(diff_parse("d.diff", text, &d) == 0);
	CHECK(d.n == 4);

	f = find_file(&d, "x.c");
	CHECK(f && !f->added && !f->deleted && f->nhunks == 2);
	/* The changed line and the inserted one, in the patched file's lines. */
	CHECK(f && diff_file_touches(f, 40, 40, &line) && line == 40);
	CHECK(f && diff_file_touches(f, 151, 151, &line) && line == 151);
	CHECK(f && !diff_file_touches(f, 60, 140, &line));
	/* Lines away from the changes move by what was inserted before them. */
	CHECK(f && diff_file_map_line(f, 10, &line) && line == 10);
	CHECK(f && diff_file_map_line(f, 100, &line) && line == 100);
	CHECK(f && diff_file_map_line(f, 190, &line) && line == 191);
	CHECK(f && !diff_file_map_line(f, 40, &line));

	f = find_file(&d, "with space.c");
	CHECK(f && diff_file_touches(f, 7, 7, &line));
	f = find_file(&d, "gone.c");
	CHECK(f && f->deleted);
	f = find_file(&d, "new.c");
	CHECK(f && f->added);
	test_line_map(&d);
	diff_files_free(&d);

	test_cut_diff(text);
	free(text);
	free(old);
	free(changed);
	free(seventh);
}

static void test_cdb(void)
{
	char json[2048], file[512];
	struct cdb c = {0};
	const struct cdb_entry *e;

	write_text("one.c", "int one;\n");
	write_text("two.c", "int two;\n");
	snprintf(json, sizeof(json),
		 "[{\"directory\": \"%s\", \"file\": \"one.c\", \"arguments\": [\"cc\", \"-O2\", "
		 "\"-DNAME=\\\"a b\\\"\", \"-c\", \"one.c\"]},\n"
		 " {\"directory\": \"%s\", \"file\": \"%s/two.c\", \"command\": \"cc -O2 "
		 "'-DMSG=two words' -DQ=\\\"q\\\" -c two.c\"}]",
		 dir, dir, dir);
	CHECK(cdb_parse("cdb.json", json, strlen(json), &c) == 0);
	CHECK(c.n == 2);
	snprintf(file, sizeof(file), "%s/one.c", dir);
	e = cdb_find(&c, file);
	CHECK(e && e->argc == 5 && !strcmp(e->argv[2], "-DNAME=\"a b\"") && !e->argv[5]);
	snprintf(file, sizeof(file), "%s/two.c", dir);
	e = cdb_find(&c, file);
	/* A command line is split as the shell would. */
	CHECK(e && e->argc == 6 && !strcmp(e->argv[2], "-DMSG=two words") &&
	      !strcmp(e->argv[3], "-DQ=q"));
	CHECK(cdb_find(&c, "/nowhere/three.c") == NULL);
	cdb_free(&c);
	/* Not an array: refused, named. */
	CHECK(cdb_parse("cdb.json", "{}", 2, &c) < 0);
	CHECK(strstr(opus_errmsg(), "cdb.json") != NULL);
	cdb_free(&c);
}

/* A build directory beside the source root names it through "..": the
 * rebase into the scratch copy needs the spelling resolved. */
static void test_normalize_path(void)
{
	const char *cases[][2] = {
	    {"/t/build/lib/../../src/lib", "/t/src/lib"},
	    {"/t/build/lib/.", "/t/build/lib"},
	    {"/t//src/./lib/", "/t/src/lib"},
	    {"/..", "/"},
	    {"/a/b/../../..", "/"},
	    {"relative/../x", "relative/../x"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[64];

		snprintf(path, sizeof(path), "%s", cases[i][0]);
		opus_normalize_path(path);
		CHECK(!strcmp(path, cases[i][1]));
	}
}

int main(void)
{
	char cmd[300];

	CHECK(mkdtemp(dir) != NULL);
	test_diff();
	test_cdb();
	test_normalize_path();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return unit_status();
}
