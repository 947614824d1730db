#include "analyze.h"
#include "ast.h"
#include "cache.h"
#include "fanout.h"
#include "macros.h"
#include "source/compile.h"
#include "source/workspace.h"
#include "util/err.h"
#include "util/file.h"
#include "writes.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How often the original program writes each named location. */
struct write_index {
	char **what;
	unsigned *count;
	size_t n, cap, count_cap;
};

struct unit_pair {
	struct ast_unit *old, *new;
	struct write_index idx;
	struct analysis *a;
	const struct macro_set *macros; /* redefined by the diff */
};

static unsigned index_count(const struct write_index *x, const char *what)
{
	for (size_t i = 0; i < x->n; i++)
		if (!strcmp(x->what[i], what))
			return x->count[i];
	return 0;
}

static int index_add(void *ctx, const struct an_write *w)
{
	struct write_index *x = ctx;

	if (!w->named)
		return 0;
	for (size_t i = 0; i < x->n; i++)
		if (!strcmp(x->what[i], w->what)) {
			x->count[i]++;
			return 0;
		}
	if (OPUS_PUSH(x->what, x->n, x->cap) ||
	    opus_grow(&x->count, &x->count_cap, x->n, sizeof(*x->count)))
		return -ENOMEM;
	x->count[x->n] = 1;
	x->what[x->n] = strdup(w->what);
	return x->what[x->n++] ? 0 : -ENOMEM;
}

static int build_index(struct ast_unit *u, struct write_index *x)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < u->nfuncs; i++) {
		struct taint t;

		writes_taint(u->tu, u->funcs[i].cur, &t);
		for (size_t s = 0; !ret && s < u->funcs[i].nstmts; s++)
			ret = writes_find(u, u->funcs[i].stmts[s].cur, &t, index_add, x);
	}
	return ret;
}

static void index_free(struct write_index *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->what[i]);
	free(x->what);
	free(x->count);
}

static struct ast_func *func_by_usr(struct ast_unit *u, const char *usr)
{
	for (size_t i = 0; i < u->nfuncs; i++)
		if (!strcmp(u->funcs[i].usr, usr))
			return &u->funcs[i];
	return NULL;
}

static struct ast_var *var_by_usr(struct ast_unit *u, const char *usr)
{
	for (size_t i = 0; i < u->nvars; i++)
		if (!strcmp(u->vars[i].usr, usr))
			return &u->vars[i];
	return NULL;
}

static struct ast_type *type_by_usr(struct ast_unit *u, const char *usr)
{
	for (size_t i = 0; i < u->ntypes; i++)
		if (!strcmp(u->types[i].usr, usr))
			return &u->types[i];
	return NULL;
}

/* ---- new writes ---- */

struct write_ctx {
	struct unit_pair *p;
	const struct ast_func *f;
	const struct ast_stmt *s;
};

/* The statement after a write returns an error or jumps to an error label. */
static bool error_path(const char *next, char *what, size_t len)
{
	static const char *const marks[] = {"ERR", "err", "FAIL", "fail", "INVAL", "NULL"};

	if (!next || (strncmp(next, "return ", 7) && strncmp(next, "goto ", 5)))
		return false;
	snprintf(what, len, "%.*s", (int)strcspn(next, ";"), next);
	if (strstr(next, "return - ") || strstr(next, "return ( - "))
		return true;
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if (strstr(next, marks[i]))
			return true;
	return false;
}

static int report_write(void *ctx, const struct an_write *w)
{
	struct write_ctx *c = ctx;
	unsigned existing = w->named ? index_count(&c->p->idx, w->what) : 0;
	char ret_stmt[256];

	if (error_path(c->s->next, ret_stmt, sizeof(ret_stmt)))
		return analysis_add(c->p->a, AN_INFO, "nonlocal-write", c->f->name, c->f->file,
				    w->line, "new write to %s on an error path (followed by '%s')",
				    w->what, ret_stmt);
	if (existing)
		return analysis_add(c->p->a, AN_INFO, "nonlocal-write", c->f->name, c->f->file,
				    w->line,
				    "new write to %s, which the original program already writes "
				    "(%u place%s)",
				    w->what, existing, existing == 1 ? "" : "s");
	return analysis_add(c->p->a, AN_WARNING, "nonlocal-write", c->f->name, c->f->file, w->line,
			    "new write to %s, which the original program never writes: the "
			    "running state was not built for it",
			    w->what);
}

/* Statements of f not in old (as a multiset): the ones the patch adds. */
static int new_statements(struct unit_pair *p, const struct ast_func *old, const struct ast_func *f)
{
	bool *used = calloc(old ? old->nstmts + 1 : 1, sizeof(*used));
	struct taint t;
	int ret = 0;

	if (!used)
		return -ENOMEM;
	writes_taint(p->new->tu, f->cur, &t);
	for (size_t i = 0; !ret && i < f->nstmts; i++) {
		struct write_ctx c = {p, f, &f->stmts[i]};
		bool seen = false;

		for (size_t j = 0; old && !seen && j < old->nstmts; j++)
			if (!used[j] && !strcmp(old->stmts[j].text, f->stmts[i].text))
				seen = used[j] = true;
		if (!seen)
			ret = writes_find(p->new, f->stmts[i].cur, &t, report_write, &c);
	}
	free(used);
	return ret;
}

/* ---- functions ---- */

static bool loop_exits(CXCursor c, int depth);

struct exit_walk {
	int depth;
	bool exits;
};

static enum CXChildVisitResult find_exit(CXCursor c, CXCursor parent, CXClientData data)
{
	struct exit_walk *w = data;
	enum CXCursorKind k = clang_getCursorKind(c);

	(void)parent;
	if (k == CXCursor_ReturnStmt || k == CXCursor_GotoStmt ||
	    (k == CXCursor_BreakStmt && w->depth == 0))
		w->exits = true;
	else if (k == CXCursor_ForStmt || k == CXCursor_WhileStmt || k == CXCursor_DoStmt ||
		 k == CXCursor_SwitchStmt) {
		/* A break in there leaves that statement, not ours. */
		w->exits = loop_exits(c, w->depth + 1);
		return w->exits ? CXChildVisit_Break : CXChildVisit_Continue;
	}
	/* Into blocks and ifs: an exit is rarely the body's own statement. */
	return w->exits ? CXChildVisit_Break : CXChildVisit_Recurse;
}

static bool loop_exits(CXCursor c, int depth)
{
	struct exit_walk w = {.depth = depth};

	clang_visitChildren(c, find_exit, &w);
	return w.exits;
}

static bool constant_true(CXTranslationUnit tu, CXCursor loop)
{
	char *text = ast_normalize(tu, loop, NULL);
	bool yes =
	    text && (!strncmp(text, "for ( ; ; ) ", 12) || !strncmp(text, "while ( 1 ) ", 12) ||
		     !strncmp(text, "while ( true ) ", 15) || strstr(text, "while ( 1 ) ;"));

	free(text);
	return yes;
}

struct forever_walk {
	CXTranslationUnit tu;
	bool found;
};

static enum CXChildVisitResult find_forever(CXCursor c, CXCursor parent, CXClientData data)
{
	struct forever_walk *w = data;
	enum CXCursorKind k = clang_getCursorKind(c);

	(void)parent;
	if ((k == CXCursor_ForStmt || k == CXCursor_WhileStmt || k == CXCursor_DoStmt) &&
	    constant_true(w->tu, c) && !loop_exits(c, 0))
		w->found = true;
	return w->found ? CXChildVisit_Break : CXChildVisit_Recurse;
}

static bool never_returns(struct ast_unit *u, const struct ast_func *f)
{
	struct forever_walk w = {.tu = u->tu};

	if (!strcmp(f->name, "main"))
		return true;
	clang_visitChildren(f->cur, find_forever, &w);
	return w.found;
}

/* Functions of the new unit whose body names f: they may inline it. */
static void callers_of(struct ast_unit *u, const struct ast_func *f, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < u->nfuncs; i++) {
		const struct ast_func *g = &u->funcs[i];
		bool calls = false;

		for (size_t s = 0; !calls && s < g->nstmts; s++) {
			const char *hit = strstr(g->stmts[s].text, f->name);
			size_t n = strlen(f->name);

			calls = hit && (hit == g->stmts[s].text || hit[-1] == ' ') &&
				hit[n] == ' ' && hit[n + 1] == '(';
		}
		if (calls && g != f && used + strlen(g->name) + 3 < len)
			used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "",
						 g->name);
	}
}

/* How a unit refers to a function: calls, and every mention (each call
 * mentions it once; more mentions take its address: a table, a callback). */
struct refs_walk {
	const char *usr;
	unsigned calls, mentions;
};

static bool refers_to(CXCursor c, const char *usr)
{
	char *r = ast_string(clang_getCursorUSR(clang_getCursorReferenced(c)));
	bool yes = r && !strcmp(r, usr);

	free(r);
	return yes;
}

static enum CXChildVisitResult count_refs(CXCursor c, CXCursor parent, CXClientData data)
{
	struct refs_walk *w = data;
	enum CXCursorKind k = clang_getCursorKind(c);

	(void)parent;
	if (k == CXCursor_CallExpr && refers_to(c, w->usr))
		w->calls++;
	else if (k == CXCursor_DeclRefExpr && refers_to(c, w->usr))
		w->mentions++;
	return CXChildVisit_Recurse;
}

static struct refs_walk refs_in(CXCursor c, const char *usr)
{
	struct refs_walk w = {.usr = usr};

	clang_visitChildren(c, count_refs, &w);
	return w;
}

/* A static function whose address is never taken is called only from its
 * own unit. When each old caller is still in the new unit, every one is
 * compiled with the new signature and compared: those whose code changed
 * are replaced with it, and the others pass what the new code would. */
static bool callers_rebuilt(struct unit_pair *p, const struct ast_func *old,
			    const struct ast_func *f)
{
	struct refs_walk o = refs_in(clang_getTranslationUnitCursor(p->old->tu), old->usr);
	struct refs_walk n = refs_in(clang_getTranslationUnitCursor(p->new->tu), f->usr);

	if (!old->is_static || !f->is_static || o.mentions != o.calls || n.mentions != n.calls)
		return false;
	for (size_t i = 0; i < p->old->nfuncs; i++) {
		const struct ast_func *g = &p->old->funcs[i];

		if (refs_in(g->cur, old->usr).calls && !func_by_usr(p->new, g->usr))
			return false; /* a caller the new code does not have */
	}
	return true;
}

static int report_signature(struct unit_pair *p, const struct ast_func *old,
			    const struct ast_func *f)
{
	if (callers_rebuilt(p, old, f))
		return analysis_add(p->a, AN_WARNING, "signature-change", f->name, f->file, f->line,
				    "signature changed from '%s' to '%s': a static function "
				    "called only in this file, whose callers are all built "
				    "with it (those whose code changed are replaced)",
				    old->signature, f->signature);
	if (!old->is_static || !f->is_static) {
		int ret = analysis_add_caller_to_prove(p->a, f->name, f->file, f->line);

		return ret ? ret
			   : analysis_add(
				 p->a, AN_ERROR, "signature-change", f->name, f->file, f->line,
				 "signature changed from '%s' to '%s': a global function, "
				 "which callers in other units or objects of the running "
				 "program may still call with the old arguments (opus build "
				 "looks for them in the binary: none may remain outside the "
				 "functions it replaces)",
				 old->signature, f->signature);
	}
	return analysis_add(p->a, AN_ERROR, "signature-change", f->name, f->file, f->line,
			    "signature changed from '%s' to '%s': callers in the running "
			    "program (through its address, or a caller the new unit no longer "
			    "has) still pass the old arguments",
			    old->signature, f->signature);
}

static int compare_func(struct unit_pair *p, const struct ast_func *old, const struct ast_func *f)
{
	struct analysis *a = p->a;
	bool never_left = old && never_returns(p->new, f);
	const char *macro;
	int ret;

	/* Unchanged, it may still be replaced for code it inlines. */
	if (never_left && (ret = analysis_add_never_left(a, f->name, f->file, f->line)))
		return ret;
	macro =
	    old && old->hash == f->hash && f->text ? macro_set_used_by(p->macros, f->text) : NULL;
	if (old && old->hash == f->hash && !macro)
		return 0;
	ret = analysis_add_function(a, f->name, f->file, old ? AN_MODIFIED : AN_ADDED);
	if (!ret && macro)
		ret = analysis_add(a, AN_INFO, "macro-change", f->name, f->file, f->line,
				   "its tokens are as they were, but it uses %s, whose definition "
				   "the diff changes",
				   macro);
	if (!ret && old && strcmp(old->signature, f->signature))
		ret = report_signature(p, old, f);
	if (!ret && never_left)
		ret = analysis_add(a, AN_WARNING, "never-returns", f->name, f->file, f->line,
				   "%s is entered once and never left, so the running program "
				   "never leaves its old code: the change cannot take effect live",
				   f->name);
	if (!ret && old && f->is_static) {
		char callers[512];

		callers_of(p->new, f, callers, sizeof(callers));
		if (callers[0])
			ret = analysis_add(a, AN_INFO, "inlined-into", f->name, f->file, f->line,
					   "static function: where the compiler inlined it, its "
					   "callers are replaced with it (%s)",
					   callers);
	}
	return ret ? ret : new_statements(p, old, f);
}

static int compare_funcs(struct unit_pair *p)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < p->new->nfuncs; i++)
		ret = compare_func(p, func_by_usr(p->old, p->new->funcs[i].usr), &p->new->funcs[i]);
	for (size_t i = 0; !ret && i < p->old->nfuncs; i++)
		if (!func_by_usr(p->new, p->old->funcs[i].usr))
			ret = analysis_add_function(p->a, p->old->funcs[i].name,
						    p->old->funcs[i].file, AN_REMOVED);
	return ret;
}

/* ---- variables and types ---- */

static int compare_var(struct unit_pair *p, const struct ast_var *old, const struct ast_var *v)
{
	const char *fn = v->func ? v->func : "";

	if (!old && v->func)
		return analysis_add(p->a, AN_WARNING, "static-local-added", fn, v->file, v->line,
				    "new static local %s starts from its initial value, not from "
				    "any running state",
				    v->name);
	if (!old)
		return analysis_add(p->a, AN_WARNING, "global-added", fn, v->file, v->line,
				    "new global %s starts from its initial value, not from the "
				    "running program's state",
				    v->name);
	if (strcmp(old->type, v->type))
		return analysis_add(p->a, AN_ERROR, "global-type-change", fn, v->file, v->line,
				    "%s changed type from '%s' to '%s': the running program's "
				    "storage keeps the old layout",
				    v->name, old->type, v->type);
	if (old->init_hash != v->init_hash)
		return analysis_add(p->a, AN_WARNING, "global-init-change", fn, v->file, v->line,
				    "the initializer of %s changed: the running value is not "
				    "touched",
				    v->name);
	return 0;
}

static int compare_vars(struct unit_pair *p)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < p->new->nvars; i++)
		ret = compare_var(p, var_by_usr(p->old, p->new->vars[i].usr), &p->new->vars[i]);
	for (size_t i = 0; !ret && i < p->old->nvars; i++) {
		const struct ast_var *v = &p->old->vars[i];

		if (!var_by_usr(p->new, v->usr))
			ret = analysis_add(p->a, AN_WARNING, "global-removed",
					   v->func ? v->func : "", v->file, v->line,
					   "%s is gone from the new code; the running program "
					   "keeps its storage and old code may still use it",
					   v->name);
	}
	return ret;
}

static bool uses(const char *type, const char *name)
{
	size_t n = strlen(name);

	/* A whole word: "conn" is not in "struct connection". */
	for (const char *p = strstr(type, name); p; p = strstr(p + 1, name))
		if ((p == type || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
		    !(isalnum((unsigned char)p[n]) || p[n] == '_'))
			return true;
	return false;
}

/* Does a variable (or, with signatures, a function signature) use it? */
static bool type_used(struct ast_unit *u, const struct ast_type *t, bool signatures)
{
	for (size_t i = 0; i < u->nvars; i++)
		if (uses(u->vars[i].type, t->name) || uses(u->vars[i].spelled, t->name))
			return true;
	for (size_t i = 0; signatures && i < u->nfuncs; i++)
		if (uses(u->funcs[i].signature, t->name) || uses(u->funcs[i].spelled, t->name))
			return true;
	return false;
}

static bool in_header(const char *file)
{
	size_t n = strlen(file);

	return n > 2 && strcmp(file + n - 2, ".c");
}

static int type_changed(struct unit_pair *p, const struct ast_type *t)
{
	if (t->record && !in_header(t->file)) {
		/* Private to this file: every function here that uses it is
		 * rebuilt, and replaced where its code changes with the layout. */
		if (type_used(p->new, t, false))
			return analysis_add(p->a, AN_ERROR, "type-change", "", t->file, t->line,
					    "the layout of %s changed: a variable of this file "
					    "holds it in the old layout",
					    t->name);
		return analysis_add(p->a, AN_WARNING, "type-change", "", t->file, t->line,
				    "the layout of %s changed: it is private to this file, whose "
				    "functions that use it are replaced with the new layout, but "
				    "instances alive when the patch is applied keep the old one",
				    t->name);
	}
	if (type_used(p->new, t, true))
		return analysis_add(p->a, AN_ERROR, "type-change", "", t->file, t->line,
				    "the layout of %s changed: live data built with the old layout "
				    "is read with the new one",
				    t->name);
	return analysis_add(p->a, AN_WARNING, "type-change", "", t->file, t->line,
			    "the layout of %s changed (no global or function signature uses it)",
			    t->name);
}

static int compare_types(struct unit_pair *p)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < p->new->ntypes; i++) {
		const struct ast_type *t = &p->new->types[i], *old = type_by_usr(p->old, t->usr);

		if (old && strcmp(old->layout, t->layout))
			ret = type_changed(p, t);
	}
	return ret;
}

/* ---- driver ---- */

static int parse_unit(CXIndex idx, const struct workspace *w, const struct cdb_entry *e,
		      bool patched, struct ast_unit *out)
{
	const char *from = patched ? w->root : NULL, *to = patched ? w->tree : NULL;
	char **argv = NULL, *file = compile_rebase(e->file, from, to);
	char *dir = compile_rebase(e->directory, from, to);
	size_t n = 0, cap = 0;
	int ret = file && dir ? compile_base_args(e, from, to, &argv, &n, &cap) : -ENOMEM;

	if (!ret)
		ret = ast_load(idx, file, argv + 1, n - 1, dir, patched ? w->tree : w->root, out);
	compile_free_args(argv, n);
	free(file);
	free(dir);
	return ret;
}

/* What the parses of unit u read, as files of the user's: the patched
 * copy's are the original's (the diff is part of the cache key), and a file
 * only the diff creates is the diff's. */
static int note_reads(const struct workspace *w, const struct ast_unit *u,
		      struct analysis_reads *reads)
{
	size_t tl = strlen(w->tree), sl = strlen(w->scratch);
	int ret = 0;

	for (size_t i = 0; !ret && i < u->nreads; i++) {
		const char *p = u->reads[i];
		char orig[PATH_MAX + 256];

		if (!strncmp(p, w->tree, tl) && p[tl] == '/') {
			snprintf(orig, sizeof(orig), "%s%s", w->root, p + tl);
			if (access(orig, F_OK) == 0)
				ret = analysis_reads_add(reads, orig);
		} else if (strncmp(p, w->scratch, sl) || p[sl] != '/') {
			ret = analysis_reads_add(reads, p);
		}
	}
	return ret;
}

static int analyze_unit(CXIndex idx, const struct workspace *w, const struct cdb_entry *e,
			const struct macro_set *macros, struct analysis *a,
			struct analysis_reads *reads)
{
	struct ast_unit old = {0}, new = {0};
	struct unit_pair p = {.old = &old, .new = &new, .a = a, .macros = macros};
	int ret = parse_unit(idx, w, e, false, &old);

	if (!ret)
		ret = parse_unit(idx, w, e, true, &new);
	if (!ret)
		ret = build_index(&old, &p.idx);
	if (!ret && reads)
		ret = note_reads(w, &old, reads);
	if (!ret && reads)
		ret = note_reads(w, &new, reads);
	if (!ret)
		ret = compare_funcs(&p);
	if (!ret)
		ret = compare_vars(&p);
	if (!ret)
		ret = compare_types(&p);
	index_free(&p.idx);
	ast_unit_free(&old);
	ast_unit_free(&new);
	return ret;
}

/* A header reached through several units reports the same thing each time. */
static void dedup(struct analysis *a)
{
	size_t out = 0;

	for (size_t i = 0; i < a->nfindings; i++) {
		struct an_finding *f = &a->findings[i], *prev = out ? &a->findings[out - 1] : NULL;

		if (prev && !strcmp(prev->file, f->file) && prev->line == f->line &&
		    !strcmp(prev->kind, f->kind) && !strcmp(prev->message, f->message) &&
		    !strcmp(prev->function, f->function)) {
			free(f->kind), free(f->function), free(f->file), free(f->message);
			continue;
		}
		a->findings[out++] = *f;
	}
	a->nfindings = out;
	out = 0;
	for (size_t i = 0; i < a->nfuncs; i++) {
		struct an_function *f = &a->funcs[i], *prev = out ? &a->funcs[out - 1] : NULL;

		if (prev && !strcmp(prev->file, f->file) && !strcmp(prev->name, f->name)) {
			free(f->name), free(f->file);
			continue;
		}
		a->funcs[out++] = *f;
	}
	a->nfuncs = out;
}

/* The files the diff patches, in the user's tree: a change to one may make
 * the diff apply otherwise, or not at all. */
static int note_patched(const struct workspace *w, struct analysis_reads *reads)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < w->files.n; i++) {
		char path[PATH_MAX + 256];

		snprintf(path, sizeof(path), "%s/%s", w->root, w->files.v[i].path);
		if (access(path, F_OK) == 0)
			ret = analysis_reads_add(reads, path);
	}
	return ret;
}

/* The units to analyse: the source is what is analysed, so a file's first
 * compile command stands for its variants. */
struct unit_list {
	const struct workspace *w;
	size_t *v, n;
	struct macro_set macros;
};

/* One unit, in a worker process of the fan-out. */
static int analyze_listed(void *ctx, size_t i, struct analysis *a, struct analysis_reads *reads)
{
	const struct unit_list *l = ctx;
	CXIndex idx = clang_createIndex(0, 0);
	int ret = idx ? analyze_unit(idx, l->w, l->w->units[l->v[i]], &l->macros, a, reads)
		      : opus_err(-ENOMEM, "libclang: cannot create an index");

	if (idx)
		clang_disposeIndex(idx);
	return ret;
}

static int analyze_units(const struct workspace *w, struct analysis *out,
			 struct analysis_reads *reads)
{
	struct unit_list l = {.w = w, .v = calloc(w->nunits + 1, sizeof(*l.v))};
	int ret;

	if (!l.v)
		return -ENOMEM;
	if ((ret = macros_changed(w, &l.macros))) {
		free(l.v);
		return ret;
	}
	for (size_t i = 0; i < w->nunits; i++)
		if (!workspace_is_variant(w, i))
			l.v[l.n++] = i;
	if (l.n == 1)
		ret = analyze_listed(&l, 0, out, reads);
	else
		ret = analysis_fanout(&(struct fanout_job){analyze_listed, &l, w->scratch}, l.n,
				      out, reads);
	macro_set_free(&l.macros);
	free(l.v);
	return ret;
}

static int analyze_tree(const struct analyze_opts *opts, struct analysis *out,
			struct analysis_reads *reads)
{
	struct workspace w;
	int ret = workspace_open(&w, opts->source, opts->diff, opts->cdb);

	if (!ret)
		ret = workspace_apply_diff(&w);
	if (!ret && reads)
		ret = note_patched(&w, reads);
	if (!ret)
		ret = analyze_units(&w, out, reads);
	workspace_close(&w, false);
	return ret;
}

int opus_analyze(const struct analyze_opts *opts, struct analysis *out)
{
	struct analysis_reads reads = {0};
	char key[ANALYSIS_KEY_LEN + 1], *version;
	bool cache;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = opus_clang_load()))
		return ret;
	version = ast_string(clang_getClangVersion());
	cache = version && !analysis_cache_key(opts, version, key);
	free(version);
	if (cache && !analysis_cache_load(key, out)) {
		out->reused = true;
		return 0;
	}
	ret = analyze_tree(opts, out, cache ? &reads : NULL);
	analysis_sort(out);
	dedup(out);
	if (!ret && cache)
		analysis_cache_store(key, out, &reads);
	analysis_reads_free(&reads);
	if (ret)
		analysis_free(out);
	return ret;
}
