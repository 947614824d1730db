/* The result of `opus analyze`: changed functions and safety findings. */
#ifndef OPUS_ANALYZE_ANALYSIS_H
#define OPUS_ANALYZE_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum an_change { AN_MODIFIED, AN_ADDED, AN_REMOVED };
enum an_severity { AN_INFO, AN_WARNING, AN_ERROR };

struct an_function {
	char *name;
	char *file;
	int line; /* where it starts; 0 when not kept */
	enum an_change change;
};

struct an_finding {
	enum an_severity severity;
	char *kind; /* signature-change, type-change, global-added, ... */
	char *function;
	char *file;
	int line;
	char *message;
};

struct analysis {
	struct an_function *funcs;
	size_t nfuncs, funcs_cap;
	struct an_finding *findings;
	size_t nfindings, findings_cap;
	/* Functions of the running program (in the old and the new tree) that
	 * are entered once and never left: a patch that replaces one of them
	 * for code it inlines cannot take effect (opus build warns). */
	struct an_function *never_left;
	size_t nnever_left, never_left_cap;
	/* Global functions whose signature changed: an error from the source
	 * alone, since callers in units the diff leaves alone, or in other
	 * objects, would pass the old arguments. opus build lifts it when the
	 * binary shows that no such caller exists (mkpatch/callers.c). */
	struct an_function *callers_to_prove;
	size_t ncallers_to_prove, callers_to_prove_cap;
	bool reused; /* kept from an earlier run (analyze/cache.h) */
};

int analysis_add_function(struct analysis *a, const char *name, const char *file,
			  enum an_change change);
int analysis_add_never_left(struct analysis *a, const char *name, const char *file, int line);
int analysis_add_caller_to_prove(struct analysis *a, const char *name, const char *file, int line);
int analysis_add(struct analysis *a, enum an_severity sev, const char *kind, const char *function,
		 const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Order by file, function, line, kind: stable output for people and tests. */
void analysis_sort(struct analysis *a);
bool analysis_has_error(const struct analysis *a);
/* An error other than those opus build may lift by the binary's proof. */
bool analysis_has_error_beyond_proof(const struct analysis *a);
void analysis_free(struct analysis *a);
const char *an_change_name(enum an_change c);
const char *an_severity_name(enum an_severity s);
/* The report `opus analyze` prints, and `opus build` with it: each changed
 * function, the findings grouped by function, then a verdict. */
void analysis_print(const struct analysis *a, FILE *out);
/* "file:line: severity: kind: message" lines, for the patch file's meta. */
char *analysis_findings_text(const struct analysis *a);
/* "name<TAB>file<TAB>line" lines, one a never-left function, for opus
 * build. */
char *analysis_never_left_text(const struct analysis *a);
/* The same lines, one a function whose callers the binary must prove. */
char *analysis_callers_to_prove_text(const struct analysis *a);

#endif
