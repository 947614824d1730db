/* Where a loaded object's thread-local variables are, as the target's own
 * TLS machinery placed them: the module id __tls_get_addr takes, and, for
 * a block allocated at start-up, its offset from the thread pointer. Every
 * fact comes from the target: the loader's rule for the executable (module
 * 1, block just below the thread pointer), and the GOT entries the loader
 * filled for the object's variables (DTPMOD64, TPOFF64); and every fact is
 * checked against a thread's dynamic thread vector. What cannot be
 * established is refused by the caller, never guessed. */
#ifndef OPUS_LIVE_TLS_H
#define OPUS_LIVE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/elf.h"

/* A loaded object, in the process's lookup order. */
struct tls_object {
	const char *name;
	Elf *elf;
	const struct opus_symtab *dyn; /* its .dynsym, as the resolver read it */
	uint64_t bias;
	bool main_program;
};

struct tls_module {
	uint64_t modid; /* 0: not known */
	int64_t tpoff;	/* its block's offset from the thread pointer */
	bool has_tpoff;
};

/* Locate the TLS of objs[which], with fs_base a stopped thread's thread
 * pointer. 0, or -ENOENT/-EINVAL with a message naming the object. */
int tls_locate(int mem_fd, const struct tls_object *objs, size_t nobjs, size_t which,
	       uint64_t fs_base, struct tls_module *out);

#endif
