/* The ELF files mapped into processes, each opened and indexed once per
 * cache: a run over many processes (apply --all, the daemon) reads libc's
 * symbols once, not once per process. A file is known by what stat says
 * of it now (device, inode, size, modification and change times): a file
 * replaced or rewritten on disk is another file. A cache serves one thread
 * (libelf handles are not shared between threads); its owner frees it. */
#ifndef OPUS_LIVE_FILES_H
#define OPUS_LIVE_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "proc.h"
#include "util/elf.h"

#define FILES_MEMO 4

struct cached_file {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uint64_t map_dev, map_inode; /* as a memory map last showed it (0: never) */
	struct opus_elf e;
	struct opus_symtab dyn; /* .dynsym, read on first use */
	bool dyn_read;
	struct opus_gnu_hash hash; /* .gnu.hash, opened on first use */
	int hash_ret;		   /* 0, or -ENOENT: none, look in dyn */
	bool hash_read;
	struct opus_sym *plts; /* canonical PLT entries, listed on first use */
	size_t nplts;
	bool plts_read;
	int id_len; /* build-id length, or -errno; read on first use */
	uint8_t id[OPUS_BUILD_ID_MAX];
	bool id_read;
	/* Byte patterns looked for in the file (the injector's gadgets). */
	struct {
		const void *pat;
		uint64_t from, len;
		int64_t at; /* file offset, -1: not there */
	} memo[FILES_MEMO];
	unsigned nmemo;
	const char *const *imports_asked; /* the last names files_imports was asked */
	bool imports;
	uint64_t used; /* the cache's clock when last opened */
};

struct file_cache {
	struct cached_file **v;
	size_t n, cap;
	uint64_t clock;
};

/* The ELF file at path, opened now or earlier. */
int files_open(struct file_cache *c, const char *path, struct cached_file **out);
/* The file behind mapping m (path gets the name used): through
 * /proc/PID/map_files, which reaches a file replaced or deleted on disk,
 * else through the process's root. */
int files_open_map(struct file_cache *c, pid_t pid, const struct proc_map *m, char *path,
		   size_t len, struct cached_file **out);
/* Its .dynsym (empty when it has none). */
const struct opus_symtab *files_dynsym(struct cached_file *f);
/* What opus_symtab_find_global finds in its .dynsym, into *out: looked up
 * through .gnu.hash where the file has one, without loading the table. */
bool files_find_global(struct cached_file *f, const char *name, struct opus_sym *out);
/* The canonical PLT entry of function name, which every pointer to it in
 * the process takes: an undefined .dynsym function with a value (an
 * executable that takes its address without the GOT); false if none. */
bool files_canonical_plt(struct cached_file *f, const char *name, uint64_t *value);
/* Its build-id's length, or -ENOENT; *id points into f. */
int files_build_id(struct cached_file *f, const uint8_t **id);
/* The file offset of the first n bytes equal to pat in [from, from + len)
 * of the file, or -ENOENT. pat must outlive the cache (a static pattern). */
int64_t files_find_bytes(struct cached_file *f, const void *pat, size_t n, uint64_t from,
			 uint64_t len);
/* Does the file import one of names (see opus_elf_imports)? names must
 * outlive the cache (a static list): the answer is kept. */
bool files_imports(struct cached_file *f, const char *const *names, size_t n);
void file_cache_free(struct file_cache *c);
/* Close all but the keep files opened last: call between two processes
 * (a file still in use would be freed). A fleet of programs that share a
 * library but not an executable must not run opus out of descriptors. */
void file_cache_trim(struct file_cache *c, size_t keep);

/* Load bias and span of the object mapped from maps->v[m] (offset 0). */
int files_object_at(struct file_cache *c, pid_t pid, const struct proc_maps *maps, size_t m,
		    struct proc_object *out);
/* The object whose build-id matches; -ENOENT if none is mapped. */
int files_find_object(struct file_cache *c, pid_t pid, const struct proc_maps *maps,
		      const uint8_t *build_id, size_t build_id_len, struct proc_object *out);

#endif
