/* Resolves names in a running process the way its dynamic linker would:
 * the link_map chain in order, default symbol versions, and IFUNCs bound to
 * the implementation this CPU gets, never to their resolver. */
#ifndef OPUS_LIVE_RESOLVE_H
#define OPUS_LIVE_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "files.h"
#include "proc.h"

struct resolver_lib {
	char name[4096];
	uint64_t bias;
	uint64_t link_map; /* its struct link_map in the process; 0 if not known */
	bool main_program;
	/* Its file, in the cache: its .dynsym is read on the first lookup
	 * that reaches it (most patches look up few names, and indexing every
	 * library costs milliseconds) and then kept for the next process. */
	struct cached_file *f;
};

struct resolver {
	pid_t pid;
	int mem_fd;
	struct file_cache *files;
	uint64_t vdso_lo, vdso_hi; /* the process's vDSO: some IFUNCs choose code there */
	struct resolver_lib *libs;
	size_t n, cap;
};

/* The objects of the process in link-map order, their files opened
 * through files (which must outlive r). */
int resolver_init(struct resolver *r, struct file_cache *files, pid_t pid, int mem_fd,
		  const struct proc_maps *maps);
/* Address of name in the process; -ENOENT with a message naming it. */
int resolver_lookup(struct resolver *r, const char *name, uint64_t *addr);
/* Address of variable name, if a loaded object defines one: for what opus
 * may do without (no message when none does). */
bool resolver_find_object(struct resolver *r, const char *name, uint64_t *addr);
/* The object defining thread-local variable name (an index into libs), and
 * the variable's offset in that object's block. */
int resolver_lookup_tls(struct resolver *r, const char *name, size_t *lib, uint64_t *offset);
/* The index of the object loaded at bias (named name), or r->n. */
size_t resolver_find_lib(const struct resolver *r, const char *name, uint64_t bias);
/* Does any loaded object import one of names (undefined in its .dynsym)?
 * names must be a static list: each file's answer is kept in the cache. */
bool resolver_imports(const struct resolver *r, const char *const *names, size_t n);
void resolver_free(struct resolver *r);

#endif
