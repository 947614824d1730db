#include "ast.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME  1099511628211ull

char *ast_string(CXString s)
{
	const char *c = clang_getCString(s);
	char *copy = strdup(c ? c : "");

	clang_disposeString(s);
	return copy;
}

struct kids {
	CXCursor v[64];
	unsigned n;
};

static enum CXChildVisitResult collect_kid(CXCursor c, CXCursor parent, CXClientData data)
{
	struct kids *k = data;

	(void)parent;
	if (k->n < 64)
		k->v[k->n++] = c;
	return CXChildVisit_Continue;
}

static struct kids kids_of(CXCursor c)
{
	struct kids k = {.n = 0};

	clang_visitChildren(c, collect_kid, &k);
	return k;
}

unsigned ast_nchildren(CXCursor c)
{
	return kids_of(c).n;
}

CXCursor ast_child(CXCursor c, unsigned n)
{
	struct kids k = kids_of(c);

	return n < k.n ? k.v[n] : clang_getNullCursor();
}

CXCursor ast_strip(CXCursor c)
{
	for (;;) {
		enum CXCursorKind k = clang_getCursorKind(c);
		struct kids kids;

		if (k != CXCursor_UnexposedExpr && k != CXCursor_ParenExpr &&
		    k != CXCursor_CStyleCastExpr)
			return c;
		kids = kids_of(c);
		if (kids.n != 1)
			return c;
		c = kids.v[0];
	}
}

const char *ast_location(struct ast_unit *u, CXCursor c, int *line)
{
	CXFile file;
	unsigned l, col, off;
	char real[PATH_MAX];
	struct ast_file_cache *e;
	size_t rl = strlen(u->root);
	char *name;

	clang_getSpellingLocation(clang_getCursorLocation(c), &file, &l, &col, &off);
	*line = (int)l;
	if (!file)
		return NULL;
	for (size_t i = 0; i < u->nfiles; i++)
		if (u->files[i].file == file)
			return u->files[i].rel;
	if (OPUS_PUSH(u->files, u->nfiles, u->files_cap))
		return NULL;
	e = &u->files[u->nfiles++];
	e->file = file;
	e->rel = NULL;
	name = ast_string(clang_getFileName(file));
	if (name && realpath(name, real) && !strncmp(real, u->root, rl) && real[rl] == '/')
		e->rel = strdup(real + rl + 1);
	free(name);
	return e->rel;
}

static void token_text(CXTranslationUnit tu, CXToken t, char *out, size_t len)
{
	char *s = ast_string(clang_getTokenSpelling(tu, t));

	snprintf(out, len, "%s", s ? s : "");
	free(s);
}

void ast_operator(CXTranslationUnit tu, CXCursor c, char *op, size_t len)
{
	CXToken *toks;
	unsigned n, lhs_end;

	op[0] = '\0';
	clang_tokenize(tu, clang_getCursorExtent(c), &toks, &n);
	if (n && clang_getCursorKind(c) == CXCursor_UnaryOperator) {
		/* Prefix: the first token; postfix (x++): the last. */
		token_text(tu, toks[0], op, len);
		if (clang_getTokenKind(toks[0]) != CXToken_Punctuation)
			token_text(tu, toks[n - 1], op, len);
	} else if (n) {
		/* A binary operator is the first token after its left operand. */
		clang_getFileLocation(clang_getRangeEnd(clang_getCursorExtent(ast_child(c, 0))),
				      NULL, NULL, NULL, &lhs_end);
		for (unsigned i = 0; i < n; i++) {
			unsigned off;

			clang_getFileLocation(clang_getTokenLocation(tu, toks[i]), NULL, NULL, NULL,
					      &off);
			if (off >= lhs_end && clang_getTokenKind(toks[i]) == CXToken_Punctuation) {
				token_text(tu, toks[i], op, len);
				break;
			}
		}
	}
	clang_disposeTokens(tu, toks, n);
}

static bool is_local_decl(CXCursor d)
{
	enum CXCursorKind k = clang_getCursorKind(d);

	return k == CXCursor_ParmDecl ||
	       (k == CXCursor_VarDecl && !clang_Cursor_hasVarDeclGlobalStorage(d));
}

struct local_names {
	unsigned offs[256];
	unsigned n;
};

static unsigned local_index(struct local_names *ln, CXCursor d)
{
	unsigned off;

	clang_getFileLocation(clang_getCursorLocation(d), NULL, NULL, NULL, &off);
	for (unsigned i = 0; i < ln->n; i++)
		if (ln->offs[i] == off)
			return i;
	if (ln->n < 256)
		ln->offs[ln->n++] = off;
	return ln->n - 1;
}

/* Normalized text of n tokens and their cursors: locals renamed by order of
 * appearance, comments dropped. */
static char *normalize_tokens(CXTranslationUnit tu, const CXToken *toks, const CXCursor *curs,
			      unsigned n, uint64_t *hash)
{
	struct opus_buf b = {0};
	struct local_names ln = {.n = 0};
	uint64_t h = FNV_OFFSET;

	for (unsigned i = 0; i < n; i++) {
		char *s, local[16];
		const char *t;

		if (clang_getTokenKind(toks[i]) == CXToken_Comment)
			continue;
		s = ast_string(clang_getTokenSpelling(tu, toks[i]));
		t = s;

		if (clang_getTokenKind(toks[i]) == CXToken_Identifier) {
			CXCursor ref = clang_getCursorReferenced(curs[i]);

			if (!clang_Cursor_isNull(ref) && is_local_decl(ref)) {
				snprintf(local, sizeof(local), "$%u", local_index(&ln, ref));
				t = local;
			}
		}
		opus_buf_add(&b, t, strlen(t));
		opus_buf_add(&b, " ", 1);
		free(s);
	}
	for (size_t i = 0; hash && i < b.len; i++)
		h = (h ^ (uint8_t)b.data[i]) * FNV_PRIME;
	if (hash)
		*hash = h;
	return b.data ? b.data : strdup("");
}

char *ast_normalize(CXTranslationUnit tu, CXCursor c, uint64_t *hash)
{
	CXToken *toks;
	CXCursor *curs;
	unsigned n;
	char *text = NULL;

	clang_tokenize(tu, clang_getCursorExtent(c), &toks, &n);
	curs = calloc(n ? n : 1, sizeof(*curs));
	if (curs && n)
		clang_annotateTokens(tu, toks, n, curs);
	if (curs)
		text = normalize_tokens(tu, toks, curs, n, hash);
	free(curs);
	clang_disposeTokens(tu, toks, n);
	return text;
}

/* The first of the unit's tokens at or after offset off. */
static unsigned token_at(const struct ast_unit *u, unsigned off)
{
	unsigned lo = 0, hi = u->ntoks;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (u->offs[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

char *ast_unit_normalize(const struct ast_unit *u, CXCursor c, uint64_t *hash)
{
	CXSourceRange r = clang_getCursorExtent(c);
	CXFile f1, f2;
	unsigned start, end, lo;

	clang_getFileLocation(clang_getRangeStart(r), &f1, NULL, NULL, &start);
	clang_getFileLocation(clang_getRangeEnd(r), &f2, NULL, NULL, &end);
	if (!u->toks || !f1 || !clang_File_isEqual(f1, u->main_file) ||
	    !clang_File_isEqual(f2, u->main_file) || end < start)
		return ast_normalize(u->tu, c, hash);
	lo = token_at(u, start);
	return normalize_tokens(u->tu, u->toks + lo, u->curs + lo, token_at(u, end) - lo, hash);
}

/* Tokenize and annotate the unit's own file once. Without it (an empty
 * file), each extent is tokenized on its own. */
static int annotate_main_file(struct ast_unit *u, const char *file)
{
	CXFile f = clang_getFile(u->tu, file);
	size_t size = 0;
	CXSourceRange all;

	if (!f || !clang_getFileContents(u->tu, f, &size) || !size)
		return 0;
	all = clang_getRange(clang_getLocationForOffset(u->tu, f, 0),
			     clang_getLocationForOffset(u->tu, f, (unsigned)size));
	clang_tokenize(u->tu, all, &u->toks, &u->ntoks);
	if (!u->ntoks)
		return 0;
	u->curs = calloc(u->ntoks, sizeof(*u->curs));
	u->offs = calloc(u->ntoks, sizeof(*u->offs));
	if (!u->curs || !u->offs)
		return -ENOMEM;
	clang_annotateTokens(u->tu, u->toks, u->ntoks, u->curs);
	for (unsigned i = 0; i < u->ntoks; i++)
		clang_getFileLocation(clang_getTokenLocation(u->tu, u->toks[i]), NULL, NULL, NULL,
				      &u->offs[i]);
	u->main_file = f;
	return 0;
}

/* ---- collection ---- */

static bool is_control(enum CXCursorKind k)
{
	return k == CXCursor_CompoundStmt || k == CXCursor_IfStmt || k == CXCursor_ForStmt ||
	       k == CXCursor_WhileStmt || k == CXCursor_DoStmt || k == CXCursor_SwitchStmt ||
	       k == CXCursor_CaseStmt || k == CXCursor_DefaultStmt || k == CXCursor_LabelStmt;
}

static int add_stmt(struct ast_unit *u, struct ast_func *f, CXCursor c, CXCursor next)
{
	struct ast_stmt *s;

	if (OPUS_PUSH(f->stmts, f->nstmts, f->stmts_cap))
		return -ENOMEM;
	s = &f->stmts[f->nstmts++];
	s->cur = c;
	s->text = ast_unit_normalize(u, c, NULL);
	s->next = clang_Cursor_isNull(next) ? NULL : ast_unit_normalize(u, next, NULL);
	ast_location(u, c, &s->line);
	return s->text ? 0 : -ENOMEM;
}

/* Statements doing work, from anywhere in a body (see struct ast_stmt). */
static int collect_stmts(struct ast_unit *u, struct ast_func *f, CXCursor c)
{
	struct kids k = kids_of(c);
	int ret = 0;

	for (unsigned i = 0; !ret && i < k.n; i++) {
		enum CXCursorKind kind = clang_getCursorKind(k.v[i]);
		CXCursor next = i + 1 < k.n && clang_getCursorKind(c) == CXCursor_CompoundStmt
				    ? k.v[i + 1]
				    : clang_getNullCursor();

		if (is_control(kind))
			ret = collect_stmts(u, f, k.v[i]);
		else if (clang_isStatement(kind) || clang_isExpression(kind) ||
			 kind == CXCursor_DeclStmt)
			ret = add_stmt(u, f, k.v[i], next);
	}
	return ret;
}

static char *type_layout(CXCursor c);

/* What an array holds or a pointer points to, through every level. */
static CXType element_type(CXType t)
{
	for (;;) {
		switch (t.kind) {
		case CXType_ConstantArray:
		case CXType_IncompleteArray:
		case CXType_VariableArray:
			t = clang_getCanonicalType(clang_getArrayElementType(t));
			break;
		case CXType_Pointer:
			t = clang_getCanonicalType(clang_getPointeeType(t));
			break;
		default:
			return t;
		}
	}
}

/* The canonical spelling of a type. An unnamed struct or union is spelled
 * with its file and line ("(unnamed at f.c:40:5)"): those would differ
 * between the two trees, so it is described by its members instead. */
static char *canonical_type(CXType t)
{
	CXType canon = clang_getCanonicalType(t);
	char *s = ast_string(clang_getTypeSpelling(canon)), *at, *end, *members, *out;
	CXCursor decl = clang_getTypeDeclaration(element_type(canon));
	size_t n;

	at = s ? strstr(s, " at ") : NULL;
	end = at ? strchr(at, ')') : NULL;
	if (!end)
		return s;
	/* An array of them, a pointer to one: the record's members stand in
	 * for its place; anything else unnamed loses the place alone. */
	members =
	    !clang_Cursor_isNull(decl) && clang_Cursor_isAnonymous(decl) ? type_layout(decl) : NULL;
	n = strlen(s) + strlen(members ? members : "") + 8;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%.*s{%s}%s", (int)(at - s), s, members ? members : "", end);
	free(members);
	free(s);
	return out;
}

static int add_func(struct ast_unit *u, CXCursor c, const char *file, int line)
{
	struct ast_func *f;
	struct kids k;

	if (OPUS_PUSH(u->funcs, u->nfuncs, u->funcs_cap))
		return -ENOMEM;
	f = &u->funcs[u->nfuncs++];
	memset(f, 0, sizeof(*f));
	f->cur = c;
	f->usr = ast_string(clang_getCursorUSR(c));
	f->name = ast_string(clang_getCursorSpelling(c));
	f->file = strdup(file);
	f->line = line;
	f->signature = canonical_type(clang_getCursorType(c));
	f->spelled = ast_string(clang_getTypeSpelling(clang_getCursorType(c)));
	f->is_static = clang_Cursor_getStorageClass(c) == CX_SC_Static;
	f->text = ast_unit_normalize(u, c, &f->hash);
	k = kids_of(c);
	for (unsigned i = 0; i < k.n; i++)
		if (clang_getCursorKind(k.v[i]) == CXCursor_CompoundStmt)
			return collect_stmts(u, f, k.v[i]);
	return 0;
}

static int add_var(struct ast_unit *u, CXCursor c, const char *file, int line, const char *func)
{
	CXCursor init = clang_Cursor_getVarDeclInitializer(c);
	struct ast_var *v;

	if (OPUS_PUSH(u->vars, u->nvars, u->vars_cap))
		return -ENOMEM;
	v = &u->vars[u->nvars++];
	memset(v, 0, sizeof(*v));
	v->usr = ast_string(clang_getCursorUSR(c));
	v->name = ast_string(clang_getCursorSpelling(c));
	/* A static local's USR holds its offset in the file: key it by
	 * function, name and how many of that name the function declared
	 * before (blocks may each have one), so moved lines are no change. */
	if (func && v->usr && v->name) {
		size_t n = strlen(func) + strlen(v->name) + 32, nth = 0;
		char *key = malloc(n);

		for (size_t i = 0; i + 1 < u->nvars; i++)
			nth += u->vars[i].func && u->vars[i].name &&
			       !strcmp(u->vars[i].func, func) && !strcmp(u->vars[i].name, v->name);
		if (key)
			snprintf(key, n, "static:%s@%s#%zu", func, v->name, nth);
		free(v->usr);
		v->usr = key;
	}
	v->file = strdup(file);
	v->line = line;
	v->type = canonical_type(clang_getCursorType(c));
	v->spelled = ast_string(clang_getTypeSpelling(clang_getCursorType(c)));
	v->func = func ? strdup(func) : NULL;
	if (!clang_Cursor_isNull(init))
		free(ast_unit_normalize(u, init, &v->init_hash));
	return 0;
}

static enum CXChildVisitResult layout_member(CXCursor c, CXCursor parent, CXClientData data)
{
	struct opus_buf *w = data;
	char item[1024], *name, *type;

	(void)parent;
	if (clang_getCursorKind(c) == CXCursor_FieldDecl) {
		name = ast_string(clang_getCursorSpelling(c));
		type = canonical_type(clang_getCursorType(c));
		snprintf(item, sizeof(item), "%s:%s@%lld;", name, type,
			 clang_Cursor_getOffsetOfField(c));
		opus_buf_add(w, item, strlen(item));
		free(name);
		free(type);
	} else if (clang_getCursorKind(c) == CXCursor_EnumConstantDecl) {
		name = ast_string(clang_getCursorSpelling(c));
		snprintf(item, sizeof(item), "%s=%lld;", name, clang_getEnumConstantDeclValue(c));
		opus_buf_add(w, item, strlen(item));
		free(name);
	}
	return CXChildVisit_Continue;
}

static char *type_layout(CXCursor c)
{
	struct opus_buf w = {0};
	char head[1024];
	CXType t = clang_getCursorType(c);

	if (clang_getCursorKind(c) == CXCursor_TypedefDecl) {
		CXType canon = clang_getCanonicalType(clang_getTypedefDeclUnderlyingType(c));
		CXCursor decl = clang_getTypeDeclaration(canon);
		char *under = canonical_type(canon);

		/* An unnamed struct is spelled with its line: use its members. */
		if (!clang_Cursor_isNull(decl) && clang_Cursor_isAnonymous(decl)) {
			snprintf(head, sizeof(head), "typedef unnamed size=%lld;",
				 clang_Type_getSizeOf(canon));
			opus_buf_add(&w, head, strlen(head));
			clang_visitChildren(decl, layout_member, &w);
		} else {
			snprintf(head, sizeof(head), "typedef %s size=%lld;", under,
				 clang_Type_getSizeOf(canon));
			opus_buf_add(&w, head, strlen(head));
		}
		free(under);
	} else {
		snprintf(head, sizeof(head), "size=%lld;", clang_Type_getSizeOf(t));
		opus_buf_add(&w, head, strlen(head));
		clang_visitChildren(c, layout_member, &w);
	}
	return w.data ? w.data : strdup("");
}

static int add_type(struct ast_unit *u, CXCursor c, const char *file, int line)
{
	struct ast_type *t;
	char *name = ast_string(clang_getCursorSpelling(c));

	if (!name || !*name || clang_Cursor_isAnonymous(c)) {
		free(name);
		return 0;
	}
	if (OPUS_PUSH(u->types, u->ntypes, u->types_cap)) {
		free(name);
		return -ENOMEM;
	}
	t = &u->types[u->ntypes++];
	t->usr = ast_string(clang_getCursorUSR(c));
	t->name = name;
	t->file = strdup(file);
	t->line = line;
	t->layout = type_layout(c);
	t->record =
	    clang_getCursorKind(c) == CXCursor_StructDecl ||
	    clang_getCursorKind(c) == CXCursor_UnionDecl ||
	    (clang_getCursorKind(c) == CXCursor_TypedefDecl &&
	     clang_getCanonicalType(clang_getTypedefDeclUnderlyingType(c)).kind == CXType_Record);
	return 0;
}

struct walk {
	struct ast_unit *u;
	const char *func; /* the function being walked, for static locals */
	int ret;
};

static enum CXChildVisitResult find_static_locals(CXCursor c, CXCursor parent, CXClientData data)
{
	struct walk *w = data;
	const char *file;
	int line;

	(void)parent;
	if (clang_getCursorKind(c) == CXCursor_VarDecl && clang_Cursor_hasVarDeclGlobalStorage(c) &&
	    (file = ast_location(w->u, c, &line)))
		w->ret = add_var(w->u, c, file, line, w->func);
	return w->ret ? CXChildVisit_Break : CXChildVisit_Recurse;
}

static enum CXChildVisitResult top_level(CXCursor c, CXCursor parent, CXClientData data)
{
	struct walk *w = data;
	enum CXCursorKind k = clang_getCursorKind(c);
	const char *file;
	int line;

	(void)parent;
	/* "int x;" at file scope is a tentative definition: it counts. */
	if (!(clang_isCursorDefinition(c) ||
	      (k == CXCursor_VarDecl && clang_Cursor_getStorageClass(c) != CX_SC_Extern)) ||
	    !(file = ast_location(w->u, c, &line)))
		return CXChildVisit_Continue;
	if (k == CXCursor_FunctionDecl) {
		struct walk inner = {.u = w->u};
		char *name = ast_string(clang_getCursorSpelling(c));

		w->ret = add_func(w->u, c, file, line);
		inner.func = name;
		if (!w->ret)
			clang_visitChildren(c, find_static_locals, &inner);
		w->ret = w->ret ? w->ret : inner.ret;
		free(name);
	} else if (k == CXCursor_VarDecl) {
		w->ret = add_var(w->u, c, file, line, NULL);
		/* Several declarations of one variable: keep one, with the
		 * initializer if any has it. */
		for (size_t i = 0; !w->ret && i + 1 < w->u->nvars; i++) {
			struct ast_var *v = &w->u->vars[w->u->nvars - 1], *o = &w->u->vars[i];

			if (strcmp(o->usr, v->usr))
				continue;
			if (v->init_hash)
				o->init_hash = v->init_hash;
			free(v->usr), free(v->name), free(v->file), free(v->type), free(v->spelled);
			w->u->nvars--;
			break;
		}
	} else if (k == CXCursor_StructDecl || k == CXCursor_UnionDecl || k == CXCursor_EnumDecl ||
		   k == CXCursor_TypedefDecl) {
		w->ret = add_type(w->u, c, file, line);
	}
	return w->ret ? CXChildVisit_Break : CXChildVisit_Continue;
}

static int check_diagnostics(CXTranslationUnit tu, const char *file)
{
	unsigned n = clang_getNumDiagnostics(tu);

	for (unsigned i = 0; i < n; i++) {
		CXDiagnostic d = clang_getDiagnostic(tu, i);
		enum CXDiagnosticSeverity sev = clang_getDiagnosticSeverity(d);
		CXFile f;

		clang_getSpellingLocation(clang_getDiagnosticLocation(d), &f, NULL, NULL, NULL);
		/* Driver complaints (unknown gcc flags) have no location. */
		if (sev >= CXDiagnostic_Error && f) {
			char *msg = ast_string(clang_formatDiagnostic(
			    d, CXDiagnostic_DisplaySourceLocation | CXDiagnostic_DisplayColumn));
			int ret = opus_err(-EINVAL, "cannot parse %s: %s", file, msg);

			free(msg);
			clang_disposeDiagnostic(d);
			return ret;
		}
		clang_disposeDiagnostic(d);
	}
	return 0;
}

struct reads_walk {
	struct ast_unit *u;
	const char *dir;
	int ret;
};

static void note_read(CXFile file, CXSourceLocation *stack, unsigned depth, CXClientData data)
{
	struct reads_walk *w = data;
	char *name = ast_string(clang_getFileName(file)), *path = NULL;
	struct ast_unit *u = w->u;

	(void)stack, (void)depth;
	if (!name || w->ret) {
		free(name);
		return;
	}
	if (name[0] == '/')
		path = name, name = NULL;
	else if (asprintf(&path, "%s/%s", w->dir, name) < 0)
		path = NULL;
	free(name);
	if (!path || OPUS_PUSH(u->reads, u->nreads, u->reads_cap)) {
		free(path);
		w->ret = -ENOMEM;
		return;
	}
	u->reads[u->nreads++] = path;
}

int ast_load(CXIndex idx, const char *file, char *const *args, size_t nargs, const char *dir,
	     const char *root, struct ast_unit *out)
{
	struct reads_walk rw = {.u = out, .dir = dir};
	const char **argv = calloc(nargs + 2, sizeof(*argv));
	char wd[PATH_MAX + 32];
	struct walk w = {.u = out};
	enum CXErrorCode err;
	size_t n = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(out->root, sizeof(out->root), "%s", root);
	if (!argv)
		return -ENOMEM;
	snprintf(wd, sizeof(wd), "-working-directory=%s", dir);
	argv[n++] = wd;
	for (size_t i = 0; i < nargs; i++)
		argv[n++] = args[i];
	err = clang_parseTranslationUnit2(idx, file, argv, (int)n, NULL, 0, CXTranslationUnit_None,
					  &out->tu);
	free(argv);
	if (err != CXError_Success || !out->tu)
		return opus_err(-EINVAL, "libclang cannot parse %s (error %d)", file, (int)err);
	if ((ret = check_diagnostics(out->tu, file)))
		return ret;
	clang_getInclusions(out->tu, note_read, &rw);
	if (rw.ret)
		return rw.ret;
	if ((ret = annotate_main_file(out, file)))
		return ret;
	clang_visitChildren(clang_getTranslationUnitCursor(out->tu), top_level, &w);
	return w.ret;
}

void ast_unit_free(struct ast_unit *u)
{
	if (u->toks)
		clang_disposeTokens(u->tu, u->toks, u->ntoks);
	free(u->curs);
	free(u->offs);
	for (size_t i = 0; i < u->nfuncs; i++) {
		struct ast_func *f = &u->funcs[i];

		for (size_t j = 0; j < f->nstmts; j++) {
			free(f->stmts[j].text);
			free(f->stmts[j].next);
		}
		free(f->stmts);
		free(f->usr);
		free(f->name);
		free(f->file);
		free(f->signature);
		free(f->spelled);
		free(f->text);
	}
	for (size_t i = 0; i < u->nvars; i++) {
		free(u->vars[i].usr);
		free(u->vars[i].name);
		free(u->vars[i].file);
		free(u->vars[i].type);
		free(u->vars[i].spelled);
		free(u->vars[i].func);
	}
	for (size_t i = 0; i < u->ntypes; i++) {
		free(u->types[i].usr);
		free(u->types[i].name);
		free(u->types[i].file);
		free(u->types[i].layout);
	}
	for (size_t i = 0; i < u->nfiles; i++)
		free(u->files[i].rel);
	for (size_t i = 0; i < u->nreads; i++)
		free(u->reads[i]);
	free(u->reads);
	free(u->funcs);
	free(u->vars);
	free(u->types);
	free(u->files);
	if (u->tu)
		clang_disposeTranslationUnit(u->tu);
	memset(u, 0, sizeof(*u));
}
