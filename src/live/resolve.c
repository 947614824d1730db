#include "resolve.h"
#include "mem.h"
#include "util/err.h"
#include "util/file.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <sys/auxv.h>
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
	if (files_open(r->files, path, &l->f)) {
		char alt[4200];

		/* map_files needs CAP_SYS_ADMIN: try the path in the process's root. */
		snprintf(alt, sizeof(alt), "/proc/%d/root%s", (int)proc_view_id(r->pid), name);
		if (name[0] != '/' || files_open(r->files, alt, &l->f))
			return 0; /* not a file we can read (vdso): nothing to look up */
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
			snprintf(out, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
				 (int)proc_view_id(pid), maps->v[i].start, maps->v[i].end);
			return;
		}
	snprintf(out, len, "/proc/%d/root%s", (int)proc_view_id(pid), name);
}

static int exe_object(struct resolver *r, const struct proc_maps *maps, struct proc_object *exe)
{
	pid_t pid = r->pid;
	char link[64], target[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)proc_view_id(pid));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].offset == 0 && !strcmp(maps->v[i].path, target))
			return files_object_at(r->files, pid, maps, i, exe);
	return -ENOENT;
}

/* The r_debug address from the executable's DT_DEBUG, 0 if not set. */
static uint64_t find_r_debug(struct resolver *r, const struct proc_object *exe)
{
	Elf64_Dyn d[512];
	struct cached_file *f;
	uint64_t dyn = 0, r_debug = 0;
	size_t n, count = 0;
	int mem_fd = r->mem_fd;

	if (files_open(r->files, exe->path, &f))
		return 0;
	if (!elf_getphdrnum(f->e.elf, &n))
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;

			if (gelf_getphdr(f->e.elf, (int)i, &ph) && ph.p_type == PT_DYNAMIC) {
				dyn = exe->bias + ph.p_vaddr;
				count = ph.p_memsz / sizeof(d[0]);
			}
		}
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
		uint64_t f[LM_NEXT / 8 + 1], addr, name_ptr, next;
		char name[4096] = "", path[4200];
		size_t before = r->n;

		/* l_addr, l_name, l_ld, l_next: one read. */
		if (mem_read(mem_fd, lm, f, sizeof(f)))
			return -EIO;
		addr = f[LM_ADDR / 8];
		name_ptr = f[LM_NAME / 8];
		next = f[LM_NEXT / 8];
		if (name_ptr && mem_read_string(mem_fd, name_ptr, name, sizeof(name)))
			name[0] = '\0';
		if (count == 0) {
			/* The first entry is the program itself. */
			ret = add_lib(r, exe->name, exe->path, exe->bias);
			if (!ret && r->n)
				r->libs[r->n - 1].main_program = true;
		} else if (name[0]) {
			path_for(r->pid, maps, name, path, sizeof(path));
			ret = add_lib(r, name, path, addr);
		}
		if (r->n > before)
			r->libs[r->n - 1].link_map = lm;
		lm = next;
	}
	return ret;
}

/* Without a link map (static or not yet started): objects in map order. */
static int walk_maps(struct resolver *r, const struct proc_maps *maps,
		     const struct proc_object *exe)
{
	for (size_t i = 0; i < maps->n; i++) {
		struct proc_object o;
		size_t before = r->n;
		int ret;

		if (maps->v[i].offset || maps->v[i].path[0] != '/' ||
		    files_object_at(r->files, r->pid, maps, i, &o))
			continue;
		ret = add_lib(r, o.name, o.path, o.bias);
		if (ret)
			return ret;
		if (r->n > before && exe && !strcmp(o.name, exe->name))
			r->libs[before].main_program = true;
	}
	return 0;
}

static void find_vdso(struct resolver *r, const struct proc_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++)
		if (!strcmp(maps->v[i].path, "[vdso]")) {
			r->vdso_lo = maps->v[i].start;
			r->vdso_hi = maps->v[i].end;
		}
}

static void resolver_start(struct resolver *r, struct file_cache *files, pid_t pid, int mem_fd,
			   const struct proc_maps *maps)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->mem_fd = mem_fd;
	r->files = files;
	find_vdso(r, maps);
}

int resolver_init(struct resolver *r, struct file_cache *files, pid_t pid, int mem_fd,
		  const struct proc_maps *maps)
{
	struct proc_object exe;
	uint64_t r_debug = 0;
	bool have_exe;

	resolver_start(r, files, pid, mem_fd, maps);
	have_exe = exe_object(r, maps, &exe) == 0;
	if (have_exe)
		r_debug = find_r_debug(r, &exe);
	if (r_debug && walk_link_map(r, mem_fd, maps, &exe, r_debug) == 0 && r->n)
		return 0;
	resolver_free(r);
	resolver_start(r, files, pid, mem_fd, maps);
	return walk_maps(r, maps, have_exe ? &exe : NULL);
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

/* Is addr in l's executable code? */
static bool in_code(const struct resolver_lib *l, uint64_t addr)
{
	size_t n;

	if (elf_getphdrnum(l->f->e.elf, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(l->f->e.elf, (int)i, &ph) && ph.p_type == PT_LOAD &&
		    (ph.p_flags & PF_X) && addr >= l->bias + ph.p_vaddr &&
		    addr < l->bias + ph.p_vaddr + ph.p_memsz)
			return true;
	}
	return false;
}

/* A GOT entry of some object (GLOB_DAT, or a JUMP_SLOT already bound) that
 * the loader filled for name with an address in def's code. */
static bool got_entry(const struct resolver *r, const struct resolver_lib *o,
		      const struct resolver_lib *def, const char *name, uint64_t *addr)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(o->f->e.elf, scn))) {
		Elf_Scn *symscn;
		Elf_Data *d, *syms;
		GElf_Shdr symsh;
		GElf_Rela rela;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA ||
		    !(sh.sh_flags & SHF_ALLOC) || !(d = elf_getdata(scn, NULL)) ||
		    !(symscn = elf_getscn(o->f->e.elf, sh.sh_link)) ||
		    !gelf_getshdr(symscn, &symsh) || !(syms = elf_getdata(symscn, NULL)))
			continue;
		for (size_t i = 0; gelf_getrela(d, (int)i, &rela); i++) {
			uint32_t type = (uint32_t)GELF_R_TYPE(rela.r_info);
			const char *n;
			GElf_Sym sym;
			uint64_t slot;

			if ((type != R_X86_64_GLOB_DAT && type != R_X86_64_JUMP_SLOT) ||
			    !gelf_getsym(syms, (int)GELF_R_SYM(rela.r_info), &sym) ||
			    !(n = elf_strptr(o->f->e.elf, symsh.sh_link, sym.st_name)) ||
			    !opus_sym_name_eq(n, name) ||
			    mem_read(r->mem_fd, o->bias + rela.r_offset, &slot, 8))
				continue;
			/* Bound (a lazy slot still leads to its own PLT): to the
			 * library's code, or to the vDSO (gettimeofday, time). */
			if (in_code(def, slot) || (slot >= r->vdso_lo && slot < r->vdso_hi)) {
				*addr = slot;
				return true;
			}
		}
	}
	return false;
}

/* opus's own choice, an address in opus, as an address in the process:
 * in the same library at its bias, or in the vDSO (the same kernel image
 * in every process) at its place. Anything else is refused. */
static int translate_own(const struct resolver *r, const struct resolver_lib *l,
			 const struct own_lib *own, const char *name, uint64_t a, uint64_t *addr)
{
	uint64_t vdso = getauxval(AT_SYSINFO_EHDR);
	Dl_info info;

	if (dladdr((void *)(uintptr_t)a, &info) && info.dli_fname &&
	    !strcmp(info.dli_fname, own->name)) {
		*addr = a - own->bias + l->bias;
		return 0;
	}
	if (vdso && r->vdso_lo && a >= vdso && a - vdso < r->vdso_hi - r->vdso_lo) {
		*addr = a - vdso + r->vdso_lo;
		return 0;
	}
	return opus_err(-ENOTSUP,
			"%s in %s is an IFUNC whose implementation is outside that library and "
			"the vDSO: not supported",
			name, l->name);
}

static int resolve_own_ifunc(const struct resolver *r, const struct resolver_lib *l,
			     const char *name, uint64_t *addr)
{
	uint8_t id[OPUS_BUILD_ID_MAX];
	struct own_lib own = {.build_id = id};
	void *h, *sym;
	int n = opus_elf_build_id(l->f->e.elf, id);

	if (n > 0) {
		own.len = (size_t)n;
		dl_iterate_phdr(match_own, &own);
	}
	if (!own.name)
		return opus_err(-ENOTSUP,
				"%s in %s is an IFUNC, no GOT entry of the process holds its "
				"implementation, and opus has no copy of that library to pick it",
				name, l->name);
	h = dlopen(own.name, RTLD_LAZY | RTLD_NOLOAD);
	sym = h ? dlsym(h, name) : NULL;
	if (h)
		dlclose(h);
	if (!sym)
		return opus_err(-ENOENT, "%s: cannot resolve IFUNC in %s", name, l->name);
	return translate_own(r, l, &own, name, (uint64_t)(uintptr_t)sym, addr);
}

/* An IFUNC picks an implementation for this CPU. opus runs on the same CPU:
 * when it has the very same library loaded, its own choice is the target's.
 * Otherwise the target's own choice is in a GOT entry its loader filled. */
static int resolve_ifunc(const struct resolver *r, const struct resolver_lib *l, const char *name,
			 uint64_t *addr)
{
	for (size_t i = 0; i < r->n; i++)
		if (got_entry(r, &r->libs[i], l, name, addr))
			return 0;
	return resolve_own_ifunc(r, l, name, addr);
}

/* A non-PIE executable that takes the address of a function of a library
 * gets a canonical PLT entry for it (its .dynsym entry is undefined, with
 * a value), and the loader makes every pointer to that function that
 * address: new code's must compare equal with them. */
static bool canonical_plt(struct resolver *r, const char *name, uint64_t *addr)
{
	uint64_t value;

	for (size_t i = 0; i < r->n; i++)
		if (r->libs[i].main_program && files_canonical_plt(r->libs[i].f, name, &value)) {
			*addr = r->libs[i].bias + value;
			return true;
		}
	return false;
}

int resolver_lookup(struct resolver *r, const char *name, uint64_t *addr)
{
	if (canonical_plt(r, name, addr))
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		struct opus_sym s;

		if (!files_find_global(r->libs[i].f, name, &s))
			continue;
		if (s.type == STT_TLS)
			return opus_err(-ENOTSUP, "%s is thread-local: not supported yet", name);
		if (s.type == STT_GNU_IFUNC)
			return resolve_ifunc(r, &r->libs[i], name, addr);
		*addr = r->libs[i].bias + s.value;
		return 0;
	}
	return opus_err(-ENOENT, "process %d: symbol %s is not defined by any loaded object",
			(int)r->pid, name);
}

bool resolver_find_object(struct resolver *r, const char *name, uint64_t *addr)
{
	for (size_t i = 0; i < r->n; i++) {
		struct opus_sym s;

		if (files_find_global(r->libs[i].f, name, &s) && s.type == STT_OBJECT) {
			*addr = r->libs[i].bias + s.value;
			return true;
		}
	}
	return false;
}

int resolver_lookup_tls(struct resolver *r, const char *name, size_t *lib, uint64_t *offset)
{
	for (size_t i = 0; i < r->n; i++) {
		struct opus_sym s;

		if (!files_find_global(r->libs[i].f, name, &s))
			continue;
		if (s.type != STT_TLS)
			return opus_err(-EINVAL, "%s in %s is not thread-local", name,
					r->libs[i].name);
		*lib = i;
		*offset = s.value;
		return 0;
	}
	return opus_err(-ENOENT,
			"process %d: thread-local variable %s is not defined by any loaded object",
			(int)r->pid, name);
}

size_t resolver_find_lib(const struct resolver *r, const char *name, uint64_t bias)
{
	size_t by_bias = r->n;

	for (size_t i = 0; i < r->n; i++) {
		if (r->libs[i].bias != bias)
			continue;
		if (!strcmp(r->libs[i].name, name))
			return i;
		by_bias = i;
	}
	return by_bias;
}

bool resolver_imports(const struct resolver *r, const char *const *names, size_t n)
{
	for (size_t i = 0; i < r->n; i++)
		if (files_imports(r->libs[i].f, names, n))
			return true;
	return false;
}

void resolver_free(struct resolver *r)
{
	free(r->libs); /* their files belong to the cache */
	memset(r, 0, sizeof(*r));
}
