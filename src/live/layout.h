/* Places a patch's sections in the target and links them there. One memfd
 * holds, page-aligned: the registry record, the code, read-only data,
 * call stubs, GOT slots and the dispatchers of a per-thread transition
 * (dispatch.h), four pages for exit stubs (exits.h), the dispatchers'
 * table of threads not yet switched (one page, empty: every thread runs
 * the new code), all r-x in one mapping; then the writable data (rw-), if
 * the patch has any. The table is made writable by the first stop that
 * lists a thread in it. */
#ifndef OPUS_LIVE_LAYOUT_H
#define OPUS_LIVE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "patchfile/opatch.h"

#define LAYOUT_PAGE  4096
#define LAYOUT_EXITS (4 * LAYOUT_PAGE) /* 256 exit stubs (exits.h) */

struct layout {
	size_t reg_size;	    /* registry bytes at offset 0 */
	size_t text_off, text_size; /* r-x part: the code */
	size_t exits_off;	    /* r-x too, after the code: LAYOUT_EXITS of exit stubs */
	size_t data_off, data_size; /* rw- part */
	size_t table_off;	    /* the dispatchers' table: the page after the exits */
	size_t total;
	uint64_t *sec_off; /* per section: offset in the memfd */
	int64_t *stub_off; /* per symbol: offset of its far-call stub, or -1 */
	int64_t *got_off;  /* per symbol: offset of its GOT slot, or -1 */
	int64_t *gd_off;   /* per symbol: its {module, offset} pair, or -1 */
	int64_t *ld_off;   /* per symbol: its module's {module, 0} pair, or -1 */
	/* per function (opatch.funcs): offset of its dispatcher, or -1 (a cold
	 * part, or a function the patch has no copy of the old code of) */
	int64_t *dispatch_off;
	uint8_t *image; /* total bytes, the memfd's content less the registry */
};

/* A thread-local symbol's module (its sym_addr is its offset in the block). */
struct layout_tls {
	bool tls;
	uint64_t modid; /* 0: not known */
	int64_t tpoff;	/* the block's offset from the thread pointer */
	bool has_tpoff;
};

int layout_plan(struct layout *l, const struct opatch *p);
/* Does the patch reference thread-local variables? */
bool layout_uses_tls(const struct opatch *p);
/* Whether the patch's code or data makes a pointer to one of its own
 * functions (its address taken, not called): only then can a pointer the
 * kernel keeps for the process, a signal handler, lead into its code.
 * Calls and jumps do not count (opus build marks each PLT32), nor its
 * unwind tables; a reference into the middle of a function does not
 * either (a jump table), and one that may be a function's start does. */
bool layout_makes_code_pointers(const struct opatch *p);
/* Resolve relocations for a mapping at base, and write the dispatchers.
 * sym_addr holds the address of every TARGET and EXTERN symbol; the others
 * are computed here. tls (NULL if none) says where each thread-local
 * symbol's block is. */
int layout_link(struct layout *l, const struct opatch *p, uint64_t base, uint64_t *sym_addr,
		const struct layout_tls *tls);
void layout_free(struct layout *l);

#endif
