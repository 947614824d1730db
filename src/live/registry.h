/* The in-target registry: each applied patch lives in a memfd mapping named
 * opus:<id>, whose first pages hold this text record. /proc/PID/maps and
 * `opus list` show what is applied with no state file anywhere. */
#ifndef OPUS_LIVE_REGISTRY_H
#define OPUS_LIVE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "patchfile/opatch.h"
#include "proc.h"
#include "util/buf.h"

#define REGISTRY_MEMFD_PREFIX "opus:"
/* How the kernel names such a mapping in /proc/PID/maps and /proc/PID/fd. */
#define REGISTRY_PATH_PREFIX "/memfd:" REGISTRY_MEMFD_PREFIX
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
	unsigned seq;
	/* Its jumps were written (read from the process, not the record): false
	 * for a record without jumps, e.g. in a child forked while an apply
	 * was between mapping the patch and writing the jumps. */
	bool active;
	size_t written;		   /* sites that hold their jump (active: at least one) */
	bool blank;		   /* mapped, but its record never written: an apply cut short */
	uint64_t base, size;	   /* the whole memfd mapping */
	uint64_t text_lo, text_hi; /* the new code */
	struct reg_func *funcs;
	size_t nfuncs, funcs_cap;
	struct reg_site *sites;
	size_t nsites, sites_cap;
};

/* The patch id in a mapping's or descriptor's path ("/memfd:opus:<id>
 * (deleted)"), or NULL if it is not an opus registry. */
const char *registry_path_id(const char *path);
int registry_format(const struct reg_entry *e, struct opus_buf *out);
int registry_parse(const char *text, struct reg_entry *e);
void registry_entry_free(struct reg_entry *e);

struct registry {
	struct reg_entry *v; /* in application order */
	size_t n;
};

/* Every patch applied to pid, oldest first. */
int registry_read(pid_t pid, int mem_fd, const struct proc_maps *maps, struct registry *out);
void registry_free(struct registry *r);
/* The entry with this id, or NULL. */
struct reg_entry *registry_find(struct registry *r, const char *id);

#endif
