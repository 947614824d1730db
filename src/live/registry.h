/* The in-target registry: each applied patch lives in a memfd mapping named
 * opus-livepatch:<id>:<nonce>, whose first pages hold this text record.
 * /proc/PID/maps and `opus list` show what is applied with no state file
 * anywhere. A name proves nothing (any program may make such a memfd, and
 * a hostile one may forge a record): a mapping counts as opus's only when
 * its record verifies against the mapping itself (its extent, its nonce,
 * the digest of its code, jumps that lead into that code), or, blank, when
 * the journal of the process's lock says opus began it. */
#ifndef OPUS_LIVE_REGISTRY_H
#define OPUS_LIVE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "patchfile/opatch.h"
#include "proc.h"
#include "util/buf.h"

#define REGISTRY_MEMFD_PREFIX "opus-livepatch:"
/* How the kernel names such a mapping in /proc/PID/maps and /proc/PID/fd. */
#define REGISTRY_PATH_PREFIX "/memfd:" REGISTRY_MEMFD_PREFIX
#define REGISTRY_NONCE_LEN   16
#define JUMP_SIZE	     5

/* A place where a jump was written, with the bytes it replaced. */
struct reg_site {
	uint64_t addr;
	uint8_t saved[JUMP_SIZE];
	uint8_t jump[JUMP_SIZE];
};

struct reg_func {
	char name[256];
	uint64_t old_addr, old_size; /* absolute, in the process */
	uint64_t new_addr, new_size;
	bool cold;
};

struct reg_entry {
	char id[OPATCH_ID_MAX + 1];
	char description[256];
	char build_id[2 * OPUS_BUILD_ID_MAX + 1];
	char target[256];
	char nonce[REGISTRY_NONCE_LEN + 1]; /* of its memfd's name */
	unsigned seq;
	/* Its jumps were written (read from the process, not the record): false
	 * for a record without jumps, e.g. in a child forked while an apply
	 * was between mapping the patch and writing the jumps. */
	bool active;
	size_t written;		   /* sites that hold their jump (active: at least one) */
	bool blank;		   /* mapped, but its record never written: an apply cut short */
	uint64_t base, size;	   /* the whole memfd mapping */
	uint64_t text_lo, text_hi; /* the new code */
	uint8_t text_sha256[32];   /* of [text_lo, text_hi) as mapped */
	uint64_t exits;		   /* its page of exit stubs (exits.h); 0 in older records */
	uint64_t table;		   /* its dispatchers' table (dispatch.h); 0 unless per-thread */
	uint64_t cfi, cfi_size;	   /* its code's unwind tables (.eh_frame) in the code; 0: none */
	/* Its code or data may make a pointer to a function of its own
	 * (layout_makes_code_pointers): true in records that do not say. */
	bool code_pointers;
	struct reg_func *funcs;
	size_t nfuncs, funcs_cap;
	struct reg_site *sites;
	size_t nsites, sites_cap;
};

/* The memfd name of a patch: REGISTRY_MEMFD_PREFIX "<id>:<nonce>". */
void registry_memfd_name(const char *id, const char *nonce, char *out, size_t len);
/* A mapping's or descriptor's path ("/memfd:opus-livepatch:<id>:<nonce>
 * (deleted)"): its id and nonce; false if it is not named that way. */
bool registry_path_parse(const char *path, char id[OPATCH_ID_MAX + 1],
			 char nonce[REGISTRY_NONCE_LEN + 1]);
int registry_format(const struct reg_entry *e, struct opus_buf *out);
int registry_parse(const char *text, struct reg_entry *e);
void registry_entry_free(struct reg_entry *e);

/* A mapping named as opus names its own, that opus cannot vouch for: a
 * program's own memfd, a forged or damaged record. Never acted on. */
struct reg_foreign {
	uint64_t start;
	char name[256];
	char why[160];
};

struct registry {
	struct reg_entry *v; /* in application order */
	size_t n;
	struct reg_foreign *foreign;
	size_t nforeign;
};

struct target_lock;

/* Every patch applied to pid whose record verifies, oldest first, and the
 * blank mappings journal says opus began (journal NULL: none); what else
 * is named as opus's goes to foreign. */
int registry_read(pid_t pid, int mem_fd, const struct proc_maps *maps,
		  const struct target_lock *journal, struct registry *out);
void registry_free(struct registry *r);
/* The entry with this id, or NULL. */
struct reg_entry *registry_find(struct registry *r, const char *id);

#endif
