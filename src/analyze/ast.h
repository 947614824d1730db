/* One version of a translation unit, parsed with libclang, reduced to what
 * the safety analysis compares: functions (with normalized token hashes and
 * their statements), variables, and type layouts. Only entities in files
 * under the tree's root are kept; system headers are not ours to judge. */
#ifndef OPUS_ANALYZE_AST_H
#define OPUS_ANALYZE_AST_H

#include "clang_api.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A statement that does work: an expression, declaration or return, taken
 * from wherever it stands in the body. Control statements contribute their
 * conditions and their bodies' statements, not themselves. */
struct ast_stmt {
	char *text; /* normalized tokens: locals renamed, no layout or comments */
	CXCursor cur;
	int line;
	char *next; /* normalized text of the statement after it, if any */
};

struct ast_func {
	char *usr, *name, *file;
	int line;
	char *signature; /* canonical: compared */
	char *spelled;	 /* as written: which typedefs it uses */
	char *text;	 /* normalized tokens, as hashed */
	uint64_t hash;
	bool is_static;
	CXCursor cur;
	struct ast_stmt *stmts;
	size_t nstmts, stmts_cap;
};

struct ast_var {
	char *usr, *name, *file;
	int line;
	char *type;	    /* canonical: compared */
	char *spelled;	    /* as written: which typedefs it uses */
	uint64_t init_hash; /* 0 without an initializer */
	char *func;	    /* a static local's function; NULL for file scope */
};

struct ast_type {
	char *usr, *name, *file;
	int line;
	char *layout;
	bool record; /* a struct or union, or a typedef of one */
};

/* libclang names each file as it was reached; canonical paths are cached. */
struct ast_file_cache {
	CXFile file;
	char *rel; /* relative to root, NULL if outside it */
};

struct ast_unit {
	CXTranslationUnit tu;
	char root[4096];
	struct ast_file_cache *files;
	size_t nfiles, files_cap;
	struct ast_func *funcs;
	size_t nfuncs, funcs_cap;
	struct ast_var *vars;
	size_t nvars, vars_cap;
	struct ast_type *types;
	size_t ntypes, types_cap;
	/* The unit's own file as tokens, annotated once: the normalized text
	 * of each function and statement is a slice of it (libclang's
	 * annotation walks the whole unit per call: one call per statement
	 * took minutes on a 30,000-line file). */
	CXFile main_file;
	CXToken *toks;
	CXCursor *curs;
	unsigned *offs; /* each token's offset in main_file, ascending */
	unsigned ntoks;
	/* Every file the parse read (the unit and what it includes), by the
	 * path libclang opened, made absolute. */
	char **reads;
	size_t nreads, reads_cap;
};

/* Parse file with args (the compiler's, minus output options) in dir. */
int ast_load(CXIndex idx, const char *file, char *const *args, size_t nargs, const char *dir,
	     const char *root, struct ast_unit *out);
void ast_unit_free(struct ast_unit *u);

/* Normalized tokens of a cursor's extent; *hash gets their FNV-1a hash. */
char *ast_normalize(CXTranslationUnit tu, CXCursor c, uint64_t *hash);
/* The same, from the unit's annotated tokens when c is in its own file. */
char *ast_unit_normalize(const struct ast_unit *u, CXCursor c, uint64_t *hash);
/* Where a cursor is: its file relative to the root, NULL if outside it. */
const char *ast_location(struct ast_unit *u, CXCursor c, int *line);
/* The cursor's single meaningful child, through parentheses and casts. */
CXCursor ast_strip(CXCursor c);
CXCursor ast_child(CXCursor c, unsigned n);
unsigned ast_nchildren(CXCursor c);
/* Spelling of the operator token of a binary or unary operator cursor. */
void ast_operator(CXTranslationUnit tu, CXCursor c, char *op, size_t len);
char *ast_string(CXString s); /* takes the CXString, returns a malloc'd copy */

#endif
