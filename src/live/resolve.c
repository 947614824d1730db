#include "resolve.h"
#include "mem.h"
#include "util/err.h"
#include "util/file.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* struct link_map and struct r_debug offsets on x86-64. */
#define R_DEBUG_MAP 8
#define LM_ADDR	    0
#define LM_NAME	    8
#define LM_NEXT	    24
#define MAX_LIBS    4096

static int add_lib(struct resolver *r, const char *name, const char *path, uint64_t bias)
{
	struct resolver_lib *l;

	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->libs[i].name, name))
			return 0;
	if (OPUS_PUSH(r->libs, r->n, r->cap))
		return -ENOMEM;
	l = &r->libs[r->n];
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->bias = bias;
	if (opus_elf_open(path, &l->e)) {
		char alt[4200];

		/* map_files needs CAP_SYS_ADMIN: try the path in the process's root. */
		snprintf(alt, sizeof(alt), "/proc/%d/root%s", (int)r->pid, name);
		if (name[0] != '/' || opus_elf_open(alt, &l->e))
			return 0; /* not a file we can read (vdso): nothing to look up */
	}
	if (opus_symtab_load(l->e.elf, true, &l->dyn)) {
		opus_elf_close(&l->e);
		return 0;
	}
	r->n++;
	return 0;
}

/* Prefer /proc/PID/map_files: it reaches a library replaced on disk. */
static void path_for(pid_t pid, const struct proc_maps *maps, const char *name, char *out,
		     size_t len)
{
	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].offset == 0 && proc_map_is(&maps->v[i], name)) {
			snprintf(out, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid,
				 maps->v[i].start, maps->v[i].end);
			return;
		}
	snprintf(out, len, "/proc/%d/root%s", (int)pid, name);
}

static int exe_object(pid_t pid, const struct proc_maps *maps, struct proc_object *exe)
{
	char link[64], target[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].offset == 0 && !strcmp(maps->v[i].path, target))
			return proc_object_at(pid, maps, i, exe);
	return -ENOENT;
}

/* The r_debug address from the executable's DT_DEBUG, 0 if not set. */
static uint64_t find_r_debug(int mem_fd, const struct proc_object *exe)
{
	Elf64_Dyn d[512];
	struct opus_elf e;
	uint64_t dyn = 0, r_debug = 0;
	size_t n, count = 0;

	if (opus_elf_open(exe->path, &e))
		return 0;
	if (!elf_getphdrnum(e.elf, &n))
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;

			if (gelf_getphdr(e.elf, (int)i, &ph) && ph.p_type == PT_DYNAMIC) {
				dyn = exe->bias + ph.p_vaddr;
				count = ph.p_memsz / sizeof(d[0]);
			}
		}
	opus_elf_close(&e);
	if (count > sizeof(d) / sizeof(d[0]))
		count = sizeof(d) / sizeof(d[0]);
	if (!dyn || !count || mem_read(mem_fd, dyn, d, count * sizeof(d[0])))
		return 0;
	for (size_t i = 0; i < count && d[i].d_tag != DT_NULL; i++)
		if (d[i].d_tag == DT_DEBUG)
			r_debug = d[i].d_un.d_ptr;
	return r_debug;
}

static int walk_link_map(struct resolver *r, int mem_fd, const struct proc_maps *maps,
			 const struct proc_object *exe, uint64_t r_debug)
{
	uint64_t lm = 0;
	int ret = 0;

	if (mem_read(mem_fd, r_debug + R_DEBUG_MAP, &lm, sizeof(lm)))
		return -EIO;
	for (int count = 0; lm && count < MAX_LIBS && !ret; count++) {
		uint64_t addr, name_ptr, next;
		char name[4096] = "", path[4200];

		if (mem_read(mem_fd, lm + LM_ADDR, &addr, 8) ||
		    mem_read(mem_fd, lm + LM_NAME, &name_ptr, 8) ||
		    mem_read(mem_fd, lm + LM_NEXT, &next, 8))
			return -EIO;
		if (name_ptr && mem_read_string(mem_fd, name_ptr, name, sizeof(name)))
			name[0] = '\0';
		if (count == 0 || !name[0])
			ret = count == 0 ? add_lib(r, exe->name, exe->path, exe->bias) : 0;
		else {
			path_for(r->pid, maps, name, path, sizeof(path));
			ret = add_lib(r, name, path, addr);
		}
		lm = next;
	}
	return ret;
}

/* Without a link map (static or not yet started): objects in map order. */
static int walk_maps(struct resolver *r, const struct proc_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++) {
		struct proc_object o;
		int ret;

		if (maps->v[i].offset || maps->v[i].path[0] != '/' ||
		    proc_object_at(r->pid, maps, i, &o))
			continue;
		ret = add_lib(r, o.name, o.path, o.bias);
		if (ret)
			return ret;
	}
	return 0;
}

int resolver_init(struct resolver *r, pid_t pid, int mem_fd, const struct proc_maps *maps)
{
	struct proc_object exe;
	uint64_t r_debug = 0;

	memset(r, 0, sizeof(*r));
	r->pid = pid;
	if (exe_object(pid, maps, &exe) == 0)
		r_debug = find_r_debug(mem_fd, &exe);
	if (r_debug && walk_link_map(r, mem_fd, maps, &exe, r_debug) == 0 && r->n)
		return 0;
	resolver_free(r);
	r->pid = pid;
	return walk_maps(r, maps);
}

struct own_lib {
	const uint8_t *build_id;
	size_t len;
	const char *name;
	uint64_t bias;
};

static int match_own(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct own_lib *want = arg;
	uint8_t id[OPUS_BUILD_ID_MAX];
	struct opus_elf e;
	int n;

	(void)size;
	if (!info->dlpi_name || !info->dlpi_name[0] || opus_elf_open(info->dlpi_name, &e))
		return 0;
	n = opus_elf_build_id(e.elf, id);
	opus_elf_close(&e);
	if (n != (int)want->len || memcmp(id, want->build_id, want->len))
		return 0;
	want->name = info->dlpi_name;
	want->bias = info->dlpi_addr;
	return 1;
}

/* An IFUNC picks an implementation for this CPU. opus runs on the same CPU:
 * when it has the very same library loaded, its own choice is the target's. */
static int resolve_ifunc(const struct resolver_lib *l, const char *name, uint64_t *addr)
{
	uint8_t id[OPUS_BUILD_ID_MAX];
	struct own_lib own = {.build_id = id};
	void *h, *sym;
	int n = opus_elf_build_id(l->e.elf, id);

	if (n > 0) {
		own.len = (size_t)n;
		dl_iterate_phdr(match_own, &own);
	}
	if (!own.name)
		return opus_err(-ENOTSUP,
				"%s in %s is an IFUNC and opus has no copy of that "
				"library to pick its implementation",
				name, l->name);
	h = dlopen(own.name, RTLD_LAZY | RTLD_NOLOAD);
	sym = h ? dlsym(h, name) : NULL;
	if (h)
		dlclose(h);
	if (!sym)
		return opus_err(-ENOENT, "%s: cannot resolve IFUNC in %s", name, l->name);
	*addr = (uint64_t)(uintptr_t)sym - own.bias + l->bias;
	return 0;
}

int resolver_lookup(struct resolver *r, const char *name, uint64_t *addr)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct opus_sym *s = opus_symtab_find_global(&r->libs[i].dyn, name);

		if (!s)
			continue;
		if (s->type == STT_TLS)
			return opus_err(-ENOTSUP, "%s is thread-local: not supported yet", name);
		if (s->type == STT_GNU_IFUNC)
			return resolve_ifunc(&r->libs[i], name, addr);
		*addr = r->libs[i].bias + s->value;
		return 0;
	}
	return opus_err(-ENOENT, "process %d: symbol %s is not defined by any loaded object",
			(int)r->pid, name);
}

void resolver_free(struct resolver *r)
{
	for (size_t i = 0; i < r->n; i++) {
		opus_symtab_free(&r->libs[i].dyn);
		opus_elf_close(&r->libs[i].e);
	}
	free(r->libs);
	memset(r, 0, sizeof(*r));
}
