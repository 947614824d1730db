/* Writes to state that outlives a call: globals, static locals, and memory
 * reached through pointer parameters, globals or local aliases of them
 * (multi-level pointers, struct fields, array elements, ++/--, compound
 * assignment, and library calls that write through a destination). */
#ifndef OPUS_ANALYZE_WRITES_H
#define OPUS_ANALYZE_WRITES_H

#include "ast.h"

struct an_write {
	char what[512]; /* "global counter", "struct conn.state", "memory through buf" */
	bool named;	/* a global, static local or struct field: comparable across code */
	int line;
};

/* Local variables of a function that alias non-local memory. */
struct taint {
	unsigned offs[512];
	unsigned n;
};

void writes_taint(CXTranslationUnit tu, CXCursor func, struct taint *t);

typedef int (*write_cb)(void *ctx, const struct an_write *w);
/* Calls cb for each non-local write in the statement at c. */
int writes_find(struct ast_unit *u, CXCursor c, const struct taint *t, write_cb cb, void *ctx);

#endif
