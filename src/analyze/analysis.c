#include "analysis.h"
#include "util/buf.h"
#include "util/file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push_function(struct an_function **v, size_t *n, size_t *cap, const char *name,
			 const char *file, int line, enum an_change change)
{
	struct an_function *f;

	if (OPUS_PUSH(*v, *n, *cap))
		return -ENOMEM;
	f = &(*v)[*n];
	f->name = strdup(name);
	f->file = strdup(file);
	f->line = line;
	f->change = change;
	if (!f->name || !f->file) {
		free(f->name);
		free(f->file);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

int analysis_add_function(struct analysis *a, const char *name, const char *file,
			  enum an_change change)
{
	return push_function(&a->funcs, &a->nfuncs, &a->funcs_cap, name, file, 0, change);
}

int analysis_add_never_left(struct analysis *a, const char *name, const char *file, int line)
{
	for (size_t i = 0; i < a->nnever_left; i++)
		if (!strcmp(a->never_left[i].name, name) && !strcmp(a->never_left[i].file, file))
			return 0; /* a header's function, seen from each unit */
	return push_function(&a->never_left, &a->nnever_left, &a->never_left_cap, name, file, line,
			     AN_MODIFIED);
}

int analysis_add_caller_to_prove(struct analysis *a, const char *name, const char *file, int line)
{
	for (size_t i = 0; i < a->ncallers_to_prove; i++)
		if (!strcmp(a->callers_to_prove[i].name, name) &&
		    !strcmp(a->callers_to_prove[i].file, file))
			return 0;
	return push_function(&a->callers_to_prove, &a->ncallers_to_prove, &a->callers_to_prove_cap,
			     name, file, line, AN_MODIFIED);
}

int analysis_add(struct analysis *a, enum an_severity sev, const char *kind, const char *function,
		 const char *file, int line, const char *fmt, ...)
{
	struct an_finding *f;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (OPUS_PUSH(a->findings, a->nfindings, a->findings_cap))
		return -ENOMEM;
	f = &a->findings[a->nfindings];
	f->severity = sev;
	f->kind = strdup(kind);
	f->function = strdup(function ? function : "");
	f->file = strdup(file ? file : "");
	f->line = line;
	f->message = strdup(msg);
	if (!f->kind || !f->function || !f->file || !f->message)
		return -ENOMEM;
	a->nfindings++;
	return 0;
}

static int by_place(const void *x, const void *y)
{
	const struct an_finding *a = x, *b = y;
	int c = strcmp(a->file, b->file);

	if (!c)
		c = strcmp(a->function, b->function);
	if (!c)
		c = (a->line > b->line) - (a->line < b->line);
	if (!c)
		c = strcmp(a->kind, b->kind);
	return c ? c : strcmp(a->message, b->message);
}

static int func_order(const void *x, const void *y)
{
	const struct an_function *a = x, *b = y;
	int c = strcmp(a->file, b->file);

	return c ? c : strcmp(a->name, b->name);
}

void analysis_sort(struct analysis *a)
{
	if (a->nfindings > 1)
		qsort(a->findings, a->nfindings, sizeof(*a->findings), by_place);
	if (a->nfuncs > 1)
		qsort(a->funcs, a->nfuncs, sizeof(*a->funcs), func_order);
}

bool analysis_has_error(const struct analysis *a)
{
	for (size_t i = 0; i < a->nfindings; i++)
		if (a->findings[i].severity == AN_ERROR)
			return true;
	return false;
}

static bool left_to_proof(const struct analysis *a, const struct an_finding *f)
{
	if (strcmp(f->kind, "signature-change"))
		return false;
	for (size_t i = 0; i < a->ncallers_to_prove; i++)
		if (!strcmp(a->callers_to_prove[i].name, f->function) &&
		    !strcmp(a->callers_to_prove[i].file, f->file))
			return true;
	return false;
}

bool analysis_has_error_beyond_proof(const struct analysis *a)
{
	for (size_t i = 0; i < a->nfindings; i++)
		if (a->findings[i].severity == AN_ERROR && !left_to_proof(a, &a->findings[i]))
			return true;
	return false;
}

static void free_functions(struct an_function *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].file);
	}
	free(v);
}

void analysis_free(struct analysis *a)
{
	for (size_t i = 0; i < a->nfindings; i++) {
		free(a->findings[i].kind);
		free(a->findings[i].function);
		free(a->findings[i].file);
		free(a->findings[i].message);
	}
	free(a->findings);
	free_functions(a->funcs, a->nfuncs);
	free_functions(a->never_left, a->nnever_left);
	free_functions(a->callers_to_prove, a->ncallers_to_prove);
	memset(a, 0, sizeof(*a));
}

const char *an_change_name(enum an_change c)
{
	static const char *const names[] = {"modified", "added", "removed"};

	return names[c];
}

const char *an_severity_name(enum an_severity s)
{
	static const char *const names[] = {"info", "warning", "error"};

	return names[s];
}

char *analysis_findings_text(const struct analysis *a)
{
	struct opus_buf b = {0};

	for (size_t i = 0; i < a->nfindings; i++) {
		const struct an_finding *f = &a->findings[i];

		opus_buf_printf(&b, "%s:%d: %s: %s: %s\n", f->file, f->line,
				an_severity_name(f->severity), f->kind, f->message);
	}
	return b.data ? b.data : strdup("");
}

static char *functions_text(const struct an_function *v, size_t n)
{
	struct opus_buf b = {0};

	for (size_t i = 0; i < n; i++)
		opus_buf_printf(&b, "%s\t%s\t%d\n", v[i].name, v[i].file, v[i].line);
	return b.data ? b.data : strdup("");
}

char *analysis_never_left_text(const struct analysis *a)
{
	return functions_text(a->never_left, a->nnever_left);
}

char *analysis_callers_to_prove_text(const struct analysis *a)
{
	return functions_text(a->callers_to_prove, a->ncallers_to_prove);
}

static const char *verdict(const struct analysis *a, size_t errors)
{
	if (!errors)
		return "no errors";
	if (analysis_has_error_beyond_proof(a))
		return "unsafe to apply live";
	return "unsafe to apply live unless opus build finds no old caller in the binary";
}

/* One line a finding, grouped by function, then a verdict. */
void analysis_print(const struct analysis *a, FILE *out)
{
	size_t counts[3] = {0};

	for (size_t i = 0; i < a->nfuncs; i++)
		fprintf(out, "%s %s (%s)\n", an_change_name(a->funcs[i].change), a->funcs[i].name,
			a->funcs[i].file);
	for (size_t i = 0; i < a->nfindings; i++) {
		const struct an_finding *f = &a->findings[i];

		if (!i || strcmp(f->function, a->findings[i - 1].function))
			fprintf(out, "%s:\n", f->function[0] ? f->function : "(file scope)");
		fprintf(out, "  %s:%d: %s: %s [%s]\n", f->file, f->line,
			an_severity_name(f->severity), f->message, f->kind);
		counts[f->severity]++;
	}
	fprintf(out, "%s: %zu error(s), %zu warning(s), %zu info\n", verdict(a, counts[AN_ERROR]),
		counts[AN_ERROR], counts[AN_WARNING], counts[AN_INFO]);
}
