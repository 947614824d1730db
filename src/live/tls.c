#include "tls.h"
#include "mem.h"
#include "util/err.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* glibc's thread control block starts at the thread pointer: tcb, dtv,
 * self. The dtv pointer is one entry into its array: dtv[-1] holds the
 * length, dtv[m] module m's {block, to_free}. */
#define TCB_DTV		8
#define DTV_ENTRY	16
#define DTV_MAX		4096
#define DTV_UNALLOCATED ((uint64_t)-1)

static bool tls_segment(Elf *elf, GElf_Phdr *out)
{
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (gelf_getphdr(elf, (int)i, out) && out->p_type == PT_TLS)
			return true;
	return false;
}

/* The loader places the executable's block (module 1) right below the
 * thread pointer, rounded to its alignment (glibc's _dl_determine_tlsoffset,
 * and the static linker's local-exec offsets, agree on this). */
static int64_t main_block_offset(const GElf_Phdr *tls)
{
	uint64_t align = tls->p_align ? tls->p_align : 1;
	uint64_t first = (-(tls->p_vaddr & (align - 1))) & (align - 1);
	uint64_t off = ((tls->p_memsz - first + align - 1) & ~(align - 1)) + first;

	return -(int64_t)off;
}

/* The first object in lookup order that defines the TLS variable name. */
static size_t defining_object(const struct tls_object *objs, size_t nobjs, const char *name,
			      uint64_t *value)
{
	for (size_t i = 0; i < nobjs; i++) {
		const struct opus_sym *s = opus_symtab_find_global(objs[i].dyn, name);

		if (s && s->type == STT_TLS) {
			*value = s->value;
			return i;
		}
	}
	return nobjs;
}

/* What one dynamic relocation of object o says about objs[which]. */
static void learn_from(int mem_fd, const struct tls_object *objs, size_t nobjs, size_t o,
		       size_t which, const GElf_Rela *r, Elf_Data *syms, size_t strtab,
		       struct tls_module *out)
{
	uint32_t type = (uint32_t)GELF_R_TYPE(r->r_info);
	size_t symidx = GELF_R_SYM(r->r_info), module = o;
	uint64_t slot, value = 0;
	GElf_Sym sym;

	if (type != R_X86_64_DTPMOD64 && type != R_X86_64_TPOFF64)
		return;
	if (symidx && (!syms || !gelf_getsym(syms, (int)symidx, &sym)))
		return;
	if (symidx && sym.st_shndx == SHN_UNDEF) {
		const char *name = elf_strptr(objs[o].elf, strtab, sym.st_name);

		module = name ? defining_object(objs, nobjs, name, &value) : nobjs;
	} else if (symidx) {
		value = sym.st_value;
	}
	if (module != which || mem_read(mem_fd, objs[o].bias + r->r_offset, &slot, 8))
		return;
	if (type == R_X86_64_DTPMOD64 && slot) {
		out->modid = slot;
	} else if (type == R_X86_64_TPOFF64) {
		out->tpoff = (int64_t)(slot - value - (uint64_t)r->r_addend);
		out->has_tpoff = true;
	}
}

/* Every dynamic relocation of every object that is about objs[which]. */
static void learn_from_relocations(int mem_fd, const struct tls_object *objs, size_t nobjs,
				   size_t which, struct tls_module *out)
{
	for (size_t o = 0; o < nobjs; o++) {
		Elf_Scn *scn = NULL;
		GElf_Shdr sh, symsh;

		while ((scn = elf_nextscn(objs[o].elf, scn))) {
			Elf_Data *d, *syms = NULL;
			Elf_Scn *symscn;
			GElf_Rela r;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA ||
			    !(sh.sh_flags & SHF_ALLOC) || !(d = elf_getdata(scn, NULL)))
				continue;
			symscn = elf_getscn(objs[o].elf, sh.sh_link);
			if (symscn && gelf_getshdr(symscn, &symsh))
				syms = elf_getdata(symscn, NULL);
			for (size_t i = 0; gelf_getrela(d, (int)i, &r); i++)
				learn_from(mem_fd, objs, nobjs, o, which, &r, syms,
					   syms ? symsh.sh_link : 0, out);
		}
	}
}

/* The thread's dynamic thread vector must agree; it also names the module
 * of a block whose offset alone is known. */
static int check_dtv(int mem_fd, const char *name, uint64_t fs_base, struct tls_module *m)
{
	uint64_t dtv, len, block;

	if (mem_read(mem_fd, fs_base + TCB_DTV, &dtv, 8) ||
	    mem_read(mem_fd, dtv - DTV_ENTRY, &len, 8))
		return opus_err(-EINVAL, "%s: cannot read the thread's TLS vector", name);
	if (!m->modid && m->has_tpoff)
		for (uint64_t i = 1; i <= len && i < DTV_MAX && !m->modid; i++)
			if (!mem_read(mem_fd, dtv + i * DTV_ENTRY, &block, 8) &&
			    block == fs_base + (uint64_t)m->tpoff)
				m->modid = i;
	if (!m->modid || !m->has_tpoff)
		return 0;
	if (m->modid > len || mem_read(mem_fd, dtv + m->modid * DTV_ENTRY, &block, 8))
		return opus_err(-EINVAL, "%s: module %" PRIu64 " is not in the thread's TLS vector",
				name, m->modid);
	if (block != DTV_UNALLOCATED && block != fs_base + (uint64_t)m->tpoff)
		return opus_err(-EINVAL,
				"%s: its TLS block is at 0x%" PRIx64 " by the thread's vector, at "
				"0x%" PRIx64 " by the loader's rule: refusing to guess",
				name, block, fs_base + (uint64_t)m->tpoff);
	return 0;
}

int tls_locate(int mem_fd, const struct tls_object *objs, size_t nobjs, size_t which,
	       uint64_t fs_base, struct tls_module *out)
{
	const struct tls_object *o = &objs[which];
	GElf_Phdr tls;

	memset(out, 0, sizeof(*out));
	if (!tls_segment(o->elf, &tls))
		return opus_err(-ENOENT, "%s has no thread-local storage", o->name);
	if (o->main_program) {
		out->modid = 1;
		out->tpoff = main_block_offset(&tls);
		out->has_tpoff = true;
	}
	learn_from_relocations(mem_fd, objs, nobjs, which, out);
	return check_dtv(mem_fd, o->name, fs_base, out);
}
