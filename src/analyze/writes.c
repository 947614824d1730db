#include "writes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Library functions that write through an argument, and which argument. */
static const struct {
	const char *name;
	unsigned arg;
} writers[] = {
    {"memcpy", 0},    {"memmove", 0}, {"memset", 0},  {"strcpy", 0},   {"strncpy", 0},
    {"strcat", 0},    {"strncat", 0}, {"sprintf", 0}, {"snprintf", 0}, {"vsprintf", 0},
    {"vsnprintf", 0}, {"stpcpy", 0},  {"stpncpy", 0}, {"bzero", 0},    {"explicit_bzero", 0},
    {"strlcpy", 0},   {"strlcat", 0}, {"fgets", 0},   {"fread", 0},    {"read", 1},
    {"recv", 1},      {"pread", 1},   {"memccpy", 0}, {"wmemcpy", 0},  {"wcscpy", 0},
};

static unsigned decl_offset(CXCursor d)
{
	unsigned off;

	clang_getFileLocation(clang_getCursorLocation(d), NULL, NULL, NULL, &off);
	return off;
}

static bool tainted_local(const struct taint *t, CXCursor d)
{
	unsigned off = decl_offset(d);

	for (unsigned i = 0; i < t->n; i++)
		if (t->offs[i] == off)
			return true;
	return false;
}

enum root_kind { ROOT_NONE, ROOT_LOCAL, ROOT_PARAM, ROOT_GLOBAL, ROOT_STATIC, ROOT_CALL };

static enum root_kind classify(CXCursor d)
{
	enum CXCursorKind k = clang_getCursorKind(d);

	if (k == CXCursor_ParmDecl)
		return ROOT_PARAM;
	if (k != CXCursor_VarDecl)
		return ROOT_NONE;
	if (!clang_Cursor_hasVarDeclGlobalStorage(d))
		return ROOT_LOCAL;
	return clang_getCursorKind(clang_getCursorSemanticParent(d)) == CXCursor_FunctionDecl
		   ? ROOT_STATIC
		   : ROOT_GLOBAL;
}

/* The variable an lvalue or pointer expression starts from. */
static enum root_kind root_of(CXCursor e, CXCursor *decl)
{
	for (;;) {
		enum CXCursorKind k;

		e = ast_strip(e);
		k = clang_getCursorKind(e);
		if (k == CXCursor_DeclRefExpr) {
			*decl = clang_getCursorReferenced(e);
			return classify(*decl);
		}
		if (k == CXCursor_CallExpr)
			return ROOT_CALL;
		if (k == CXCursor_MemberRefExpr || k == CXCursor_ArraySubscriptExpr ||
		    k == CXCursor_UnaryOperator || k == CXCursor_BinaryOperator)
			e = ast_child(e, 0);
		else
			return ROOT_NONE;
		if (clang_Cursor_isNull(e))
			return ROOT_NONE;
	}
}

/* Does a pointer-valued expression point at non-local memory? */
static bool points_outside(CXCursor e, const struct taint *t, char *root, size_t len)
{
	CXCursor d = clang_getNullCursor();
	enum root_kind k = root_of(e, &d);
	char *name;

	if (k == ROOT_CALL) {
		snprintf(root, len, "a returned pointer");
		return true;
	}
	if (k == ROOT_NONE || (k == ROOT_LOCAL && !tainted_local(t, d)))
		return false;
	name = ast_string(clang_getCursorSpelling(d));
	snprintf(root, len, "%s", name);
	free(name);
	return true;
}

static bool is_pointer(CXCursor e)
{
	enum CXTypeKind k = clang_getCanonicalType(clang_getCursorType(e)).kind;

	return k == CXType_Pointer;
}

/* Describe the location an lvalue names, if it is not local. */
static bool nonlocal_lvalue(CXCursor e, const struct taint *t, struct an_write *w)
{
	enum CXCursorKind k;
	char root[256];

	e = ast_strip(e);
	k = clang_getCursorKind(e);
	if (k == CXCursor_DeclRefExpr) {
		CXCursor d = clang_getCursorReferenced(e);
		enum root_kind rk = classify(d);
		char *name = ast_string(clang_getCursorSpelling(d));

		if (rk == ROOT_GLOBAL || rk == ROOT_STATIC) {
			snprintf(w->what, sizeof(w->what), "%s %s",
				 rk == ROOT_GLOBAL ? "global" : "static local", name);
			w->named = true;
		}
		free(name);
		return rk == ROOT_GLOBAL || rk == ROOT_STATIC;
	}
	if (k == CXCursor_MemberRefExpr) {
		CXCursor base = ast_child(e, 0), field = clang_getCursorReferenced(e);
		struct an_write inner = {.line = 0};
		bool outside = is_pointer(base) ? points_outside(base, t, root, sizeof(root))
						: nonlocal_lvalue(base, t, &inner);
		char *rec, *fname;

		if (!outside)
			return false;
		rec = ast_string(clang_getTypeSpelling(
		    clang_getCursorType(clang_getCursorSemanticParent(field))));
		fname = ast_string(clang_getCursorSpelling(field));
		snprintf(w->what, sizeof(w->what), "%s.%s", rec, fname);
		w->named = true;
		free(rec);
		free(fname);
		return true;
	}
	if (k == CXCursor_ArraySubscriptExpr || k == CXCursor_UnaryOperator) {
		CXCursor base = ast_child(e, 0);
		int depth = 1;

		if (clang_Cursor_isNull(base))
			return false;
		/* An element of an array variable is that variable. */
		if (!is_pointer(ast_strip(base)) || !is_pointer(base))
			return nonlocal_lvalue(ast_strip(base), t, w);
		if (!points_outside(base, t, root, sizeof(root)))
			return false;
		/* **p and p[i] are different memory: count the levels. */
		for (CXCursor b = ast_strip(base);
		     clang_getCursorKind(b) == CXCursor_UnaryOperator ||
		     clang_getCursorKind(b) == CXCursor_ArraySubscriptExpr;
		     b = ast_strip(ast_child(b, 0)))
			depth++;
		snprintf(w->what, sizeof(w->what), "memory %d level%s through %s", depth,
			 depth == 1 ? "" : "s", root);
		w->named = strcmp(root, "a returned pointer") != 0;
		return true;
	}
	return false;
}

/* A destination argument: an array lvalue, &lvalue, or a pointer. */
static bool nonlocal_dest(struct ast_unit *u, CXCursor arg, const struct taint *t,
			  struct an_write *w)
{
	char root[256], op[8];

	arg = ast_strip(arg);
	if (clang_getCursorKind(arg) == CXCursor_UnaryOperator) {
		ast_operator(u->tu, arg, op, sizeof(op));
		if (!strcmp(op, "&"))
			return nonlocal_lvalue(ast_child(arg, 0), t, w);
	}
	if (!is_pointer(arg) || clang_getCursorKind(arg) == CXCursor_DeclRefExpr ||
	    clang_getCursorKind(arg) == CXCursor_MemberRefExpr) {
		if (nonlocal_lvalue(arg, t, w) && !is_pointer(arg))
			return true;
	}
	if (!points_outside(arg, t, root, sizeof(root)))
		return false;
	snprintf(w->what, sizeof(w->what), "memory through %s", root);
	w->named = strcmp(root, "a returned pointer") != 0;
	return true;
}

struct find {
	struct ast_unit *u;
	const struct taint *t;
	write_cb cb;
	void *ctx;
	int ret;
};

static bool is_assignment(const char *op)
{
	static const char *const ops[] = {
	    "=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(op, ops[i]))
			return true;
	return false;
}

static void check_call(struct find *f, CXCursor c, struct an_write *w)
{
	char *name = ast_string(clang_getCursorSpelling(c));

	for (size_t i = 0; name && i < sizeof(writers) / sizeof(writers[0]); i++)
		if (!strcmp(name, writers[i].name) &&
		    (int)writers[i].arg < clang_Cursor_getNumArguments(c) &&
		    nonlocal_dest(f->u, clang_Cursor_getArgument(c, writers[i].arg), f->t, w)) {
			size_t n = strlen(w->what);

			snprintf(w->what + n, sizeof(w->what) - n, " (by %s)", name);
			f->ret = f->cb(f->ctx, w);
			break;
		}
	free(name);
}

static enum CXChildVisitResult visit(CXCursor c, CXCursor parent, CXClientData data)
{
	struct find *f = data;
	enum CXCursorKind k = clang_getCursorKind(c);
	struct an_write w = {.named = false};
	char op[8];
	const char *file;

	(void)parent;
	file = ast_location(f->u, c, &w.line);
	(void)file;
	if (k == CXCursor_BinaryOperator || k == CXCursor_CompoundAssignOperator) {
		ast_operator(f->u->tu, c, op, sizeof(op));
		if (is_assignment(op) && nonlocal_lvalue(ast_child(c, 0), f->t, &w))
			f->ret = f->cb(f->ctx, &w);
	} else if (k == CXCursor_UnaryOperator) {
		ast_operator(f->u->tu, c, op, sizeof(op));
		if ((!strcmp(op, "++") || !strcmp(op, "--")) &&
		    nonlocal_lvalue(ast_child(c, 0), f->t, &w))
			f->ret = f->cb(f->ctx, &w);
	} else if (k == CXCursor_CallExpr) {
		check_call(f, c, &w);
	}
	return f->ret ? CXChildVisit_Break : CXChildVisit_Recurse;
}

int writes_find(struct ast_unit *u, CXCursor c, const struct taint *t, write_cb cb, void *ctx)
{
	struct find f = {.u = u, .t = t, .cb = cb, .ctx = ctx};

	visit(c, clang_getNullCursor(), &f);
	if (!f.ret)
		clang_visitChildren(c, visit, &f);
	return f.ret;
}

/* ---- aliases ---- */

struct alias_walk {
	CXTranslationUnit tu;
	struct taint *t;
	bool changed;
};

static void taint_decl(struct alias_walk *a, CXCursor d)
{
	if (tainted_local(a->t, d) || a->t->n >= sizeof(a->t->offs) / sizeof(a->t->offs[0]))
		return;
	a->t->offs[a->t->n++] = decl_offset(d);
	a->changed = true;
}

/* A pointer local set from non-local memory becomes an alias of it. */
static enum CXChildVisitResult find_aliases(CXCursor c, CXCursor parent, CXClientData data)
{
	struct alias_walk *a = data;
	enum CXCursorKind k = clang_getCursorKind(c);
	char root[256], op[8];

	(void)parent;
	if (k == CXCursor_VarDecl && !clang_Cursor_hasVarDeclGlobalStorage(c) && is_pointer(c)) {
		CXCursor init = clang_Cursor_getVarDeclInitializer(c);

		if (!clang_Cursor_isNull(init) && points_outside(init, a->t, root, sizeof(root)))
			taint_decl(a, c);
	} else if (k == CXCursor_BinaryOperator) {
		CXCursor lhs = ast_strip(ast_child(c, 0)), d;

		ast_operator(a->tu, c, op, sizeof(op));
		if (!strcmp(op, "=") && clang_getCursorKind(lhs) == CXCursor_DeclRefExpr &&
		    is_pointer(lhs)) {
			d = clang_getCursorReferenced(lhs);
			if (classify(d) == ROOT_LOCAL &&
			    points_outside(ast_child(c, 1), a->t, root, sizeof(root)))
				taint_decl(a, d);
		}
	}
	return CXChildVisit_Recurse;
}

void writes_taint(CXTranslationUnit tu, CXCursor func, struct taint *t)
{
	struct alias_walk a = {.tu = tu, .t = t, .changed = true};

	t->n = 0;
	for (int pass = 0; a.changed && pass < 8; pass++) {
		a.changed = false;
		clang_visitChildren(func, find_aliases, &a);
	}
}
