#include "bind.h"
#include "util/err.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* One function as the compile has it and as the binary has it. */
struct fview {
	const struct bind_bin *bin;
	const struct obj *o;
	const char *name;
	size_t scn;		 /* its section in o */
	uint64_t start, size;	 /* where in that section */
	uint64_t addr;		 /* link-time address in the binary */
	const uint8_t *ours;	 /* size bytes of the compile */
	uint8_t *theirs;	 /* size bytes of the binary */
	uint8_t *free_to_differ; /* per byte: the linker may have rewritten it */
	const struct bind_lines *lines;
};

static unsigned field_width(uint32_t type)
{
	switch (type) {
	case R_X86_64_64:
	case R_X86_64_PC64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
		return 8;
	case R_X86_64_TLSDESC_CALL:
		return 0;
	default:
		return 4;
	}
}

/* Bytes around a relocated field that the linker may rewrite: a GOT load
 * relaxed to lea, mov-immediate or a direct call or jump (which moves the
 * displacement a byte and adds a nop), and TLS sequences relaxed to a
 * cheaper model (the general-dynamic one spans 16 bytes with its call). */
static void relax_window(uint32_t type, int64_t *before, int64_t *after)
{
	*before = 0;
	*after = field_width(type);
	switch (type) {
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		*before = 3, *after = 5;
		break;
	case R_X86_64_GOTTPOFF:
	case R_X86_64_GOTPC32_TLSDESC:
		*before = 3;
		break;
	case R_X86_64_TLSDESC_CALL:
		*after = 2;
		break;
	case R_X86_64_TLSGD:
		*before = 4, *after = 12;
		break;
	case R_X86_64_TLSLD:
		*before = 3, *after = 9;
		break;
	}
}

static void mark_relocated(struct fview *v)
{
	GElf_Rela r;

	for (size_t i = 0; obj_rela(v->o, v->scn, i, &r); i++) {
		int64_t f = (int64_t)(r.r_offset - v->start), before, after;

		if (r.r_offset < v->start || r.r_offset >= v->start + v->size)
			continue;
		relax_window((uint32_t)GELF_R_TYPE(r.r_info), &before, &after);
		for (int64_t k = f - before; k < f + after; k++)
			if (k >= 0 && (uint64_t)k < v->size)
				v->free_to_differ[k] = 1;
	}
}

static int32_t s32_at(const uint8_t *p)
{
	int32_t x;

	memcpy(&x, p, 4);
	return x;
}

/* Where the binary's instruction points, as symbol + addend (S + A) of the
 * relocation, the same sum the compile has as section offset + addend.
 * False when that cannot be read back (a GOT slot, a TLS offset). */
static bool bin_point(const struct fview *v, const GElf_Rela *r, uint64_t *out)
{
	uint64_t f = r->r_offset - v->start, p = v->addr + f, x = 0;
	uint32_t type = (uint32_t)GELF_R_TYPE(r->r_info);

	if (f + field_width(type) > v->size)
		return false;
	switch (type) {
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
		*out = p + (uint64_t)(int64_t)s32_at(v->theirs + f);
		return true;
	case R_X86_64_32:
		*out = (uint32_t)s32_at(v->theirs + f);
		return true;
	case R_X86_64_32S:
		*out = (uint64_t)(int64_t)s32_at(v->theirs + f);
		return true;
	case R_X86_64_64:
		memcpy(&x, v->theirs + f, 8);
		*out = x;
		return true;
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		if (f < 2)
			return false;
		/* Relaxed to lea or to a direct call: PC-relative to the thing. */
		if (v->theirs[f - 2] == 0x8d ||
		    (v->theirs[f - 2] == 0x67 && v->theirs[f - 1] == 0xe8)) {
			*out = p + (uint64_t)(int64_t)s32_at(v->theirs + f);
			return true;
		}
		/* Relaxed to mov $imm32 (non-PIE): the address itself. */
		if (v->theirs[f - 2] == 0xc7) {
			*out = (uint64_t)(int64_t)s32_at(v->theirs + f) + (uint64_t)r->r_addend;
			return true;
		}
		return false;
	default:
		return false;
	}
}

/* The section of the binary holding addr, by name ("" if none). */
static const char *bin_section_at(Elf *elf, uint64_t addr)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return "";
	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, &sh) && (sh.sh_flags & SHF_ALLOC) && addr >= sh.sh_addr &&
		    addr < sh.sh_addr + sh.sh_size) {
			const char *n = elf_strptr(elf, shstrndx, sh.sh_name);

			return n ? n : "";
		}
	return "";
}

const struct opus_sym *bind_find(const struct bind_bin *bin, const struct obj *o,
				 const GElf_Sym *sym)
{
	const char *name = obj_sym_name(o, sym);
	const struct opus_sym *s = NULL;

	if (GELF_ST_BIND(sym->st_info) != STB_LOCAL) {
		s = opus_symtab_find_global(bin->syms, name);
		if (!s && opus_symtab_find_local(bin->syms, NULL, name, &s) != 1)
			s = NULL;
	} else if (opus_symtab_find_local(bin->syms, o->file, name, &s) != 1) {
		s = NULL;
	}
	return s;
}

static int differ(const struct fview *v, uint64_t f, const char *what)
{
	return opus_err(-EINVAL,
			"%s: the binary's code differs from a compile of the tree with its own "
			"flags at +0x%" PRIx64 " (%s): was the binary built from this source?",
			v->name, f, what);
}

/* Bytes of the binary at bin_loc against the compile's [lo, hi) of section
 * x, leaving out the compile's relocated fields there (jump tables). */
static bool same_piece(const struct fview *v, size_t x, uint64_t lo, uint64_t hi, uint64_t at)
{
	const struct obj_scn *s = &v->o->scns[x];
	uint8_t *buf;
	GElf_Rela r;
	bool same;

	if (!s->data || hi > s->data->d_size || hi <= lo || hi - lo > (1u << 20))
		return true; /* nothing to compare: .bss, or not ours to judge */
	buf = malloc(hi - lo);
	if (!buf || opus_elf_read_vaddr(v->bin->elf, at, buf, hi - lo)) {
		free(buf);
		return false;
	}
	for (size_t i = 0; obj_rela(v->o, x, i, &r); i++)
		if (r.r_offset >= lo && r.r_offset < hi)
			memcpy(buf + (r.r_offset - lo),
			       (const uint8_t *)s->data->d_buf + r.r_offset,
			       r.r_offset + field_width((uint32_t)GELF_R_TYPE(r.r_info)) <= hi
				   ? field_width((uint32_t)GELF_R_TYPE(r.r_info))
				   : hi - r.r_offset);
	same = !memcmp(buf, (const uint8_t *)s->data->d_buf + lo, hi - lo);
	free(buf);
	return same;
}

/* A reference into section x of the compile, at obj_point (offset + A),
 * against the binary's point: the same function or variable (by name), the
 * same literal or constant (by content). */
static int check_section_ref(const struct fview *v, uint64_t f, const GElf_Rela *r, size_t x,
			     int64_t obj_point, uint64_t point)
{
	const struct obj_scn *s = &v->o->scns[x];
	int64_t loc = obj_rela_lands(s, r, obj_point - r->r_addend), adj = loc - obj_point;
	const struct opus_sym *b;
	size_t holder;
	GElf_Sym hs;
	uint64_t lo, hi;

	if (loc < 0)
		return 0;
	holder = obj_sym_in_scn(v->o, x, loc, STT_FUNC);
	if (!holder)
		holder = obj_sym_in_scn(v->o, x, loc, STT_OBJECT);
	if (holder && obj_sym(v->o, holder, &hs) && (b = bind_find(v->bin, v->o, &hs))) {
		if (point != b->value + (uint64_t)(obj_point - (int64_t)hs.st_value))
			return differ(v, f, obj_sym_name(v->o, &hs));
		return 0;
	}
	if ((s->sh.sh_flags & (SHF_WRITE | SHF_EXECINSTR)) || !(s->sh.sh_flags & SHF_ALLOC))
		return 0; /* anonymous data: nothing to match it by */
	if ((s->sh.sh_flags & SHF_MERGE) && (s->sh.sh_flags & SHF_STRINGS)) {
		lo = (uint64_t)loc;
		hi = lo;
		while (s->data && hi < s->data->d_size && ((const char *)s->data->d_buf)[hi])
			hi++;
		hi++;
	} else if (s->sh.sh_flags & SHF_MERGE) {
		/* The whole entry the reference lands in: a pair of doubles is
		 * one 16-byte entry, which the link keeps whole but may place
		 * away from the entry that follows it in the compile. */
		uint64_t entsize = s->sh.sh_entsize ? s->sh.sh_entsize : 1;

		lo = (uint64_t)loc - (uint64_t)loc % entsize;
		hi = lo + entsize;
	} else {
		obj_piece(v->o, x, (uint64_t)loc, &lo, &hi);
	}
	if (!same_piece(v, x, lo, hi, point + (uint64_t)adj - ((uint64_t)loc - lo)))
		return differ(v, f, "a literal or constant it uses");
	return 0;
}

/* What the loader puts in GOT slot slot of the binary is the compile's
 * callee name (the binary's own symbol b): a relocation naming it, or a
 * RELATIVE one whose addend is its address (an IFUNC of the binary's own is
 * found by its resolver). A slot without a relocation holds the link's own
 * value, which a GOT load reads; a PLT entry's slot always has one
 * (in_plt). */
static int check_slot(const struct fview *v, uint64_t f, uint64_t slot, const char *name,
		      const struct opus_sym *b, bool in_plt)
{
	const char *got;
	int64_t addend;
	uint64_t value;

	if (!opus_elf_dynreloc_at(v->bin->elf, slot, &got, &addend)) {
		if (got[0])
			return opus_sym_name_eq(name, got) ? 0 : differ(v, f, name);
		value = (uint64_t)addend;
	} else if (in_plt) {
		return differ(v, f, "a call through a PLT entry opus cannot read");
	} else if (opus_elf_read_vaddr(v->bin->elf, slot, &value, sizeof(value))) {
		return differ(v, f, "a GOT slot opus cannot read");
	}
	return b && value == b->value ? 0 : differ(v, f, name);
}

/* A call through the PLT leads to the function of that name: the loader's
 * relocation of the entry's GOT slot names it. */
static int check_plt_call(const struct fview *v, uint64_t f, uint64_t entry, const char *name,
			  const struct opus_sym *b)
{
	uint64_t slot;

	if (opus_elf_plt_slot(v->bin->elf, entry, &slot))
		return differ(v, f, "a call through a PLT entry opus cannot read");
	return check_slot(v, f, slot, name, b, true);
}

/* The GOT slot a load or call through the GOT that the linker left as it
 * is (mov foo@GOTPCREL(%rip), call *foo@GOTPCREL(%rip)) reads. */
static bool got_slot_of(const struct fview *v, const GElf_Rela *r, uint64_t *slot)
{
	uint64_t f = r->r_offset - v->start;
	uint32_t type = (uint32_t)GELF_R_TYPE(r->r_info);

	if ((type != R_X86_64_GOTPCREL && type != R_X86_64_GOTPCRELX &&
	     type != R_X86_64_REX_GOTPCRELX) ||
	    f < 2 || f + 4 > v->size || (v->theirs[f - 2] != 0x8b && v->theirs[f - 2] != 0xff))
		return false;
	*slot = v->addr + f + (uint64_t)(int64_t)s32_at(v->theirs + f) - (uint64_t)r->r_addend;
	return true;
}

/* What relocation r leads to in the binary is what it leads to in the
 * compile. */
static int check_referent(const struct fview *v, const GElf_Rela *r)
{
	uint64_t f = r->r_offset - v->start, point;
	const struct opus_sym *b;
	GElf_Sym sym;
	const char *name, *sec;

	if (!obj_sym(v->o, GELF_R_SYM(r->r_info), &sym))
		return 0;
	name = obj_sym_name(v->o, &sym);
	if (!bin_point(v, r, &point))
		return got_slot_of(v, r, &point)
			   ? check_slot(v, f, point, name, bind_find(v->bin, v->o, &sym), false)
			   : 0;
	if (GELF_ST_TYPE(sym.st_info) == STT_SECTION && sym.st_shndx < v->o->nscn)
		return check_section_ref(v, f, r, sym.st_shndx, r->r_addend, point);
	if (sym.st_shndx != SHN_UNDEF && GELF_ST_BIND(sym.st_info) == STB_LOCAL &&
	    sym.st_shndx < v->o->nscn)
		return check_section_ref(v, f, r, sym.st_shndx, (int64_t)sym.st_value + r->r_addend,
					 point);
	b = bind_find(v->bin, v->o, &sym);
	if (b && point == b->value + (uint64_t)r->r_addend)
		return 0;
	/* A function of another object is reached through the PLT. */
	sec = bin_section_at(v->bin->elf, point - (uint64_t)r->r_addend);
	if (!strncmp(sec, ".plt", 4) || !strcmp(sec, ".iplt"))
		return check_plt_call(v, f, point - (uint64_t)r->r_addend, name, b);
	return differ(v, f, name);
}

/* The binary's function covering addr; *delta is addr's offset in it. */
static const struct opus_sym *bin_func_at(const struct bind_bin *bin, uint64_t addr,
					  uint64_t *delta)
{
	const struct opus_sym *s = opus_symtab_func_at(bin->syms, addr);

	if (s)
		*delta = addr - s->value;
	return s;
}

/* Does a rel32 field at f (a call, jmp, jcc or RIP-relative lea that the
 * assembler resolved inside the unit's .text, with no relocation) lead to
 * the same function, at the same offset, on both sides? The unit's layout
 * shifts when an earlier fix changed a function's size. */
static bool same_branch_target(const struct fview *v, uint64_t f)
{
	const uint8_t *o = v->ours;
	uint64_t bd, od;
	int64_t to;
	size_t fn;
	GElf_Sym fs;
	const struct opus_sym *b;

	if (f < 2 || f + 4 > v->size || v->free_to_differ[f] || v->free_to_differ[f + 3])
		return false;
	if (!(o[f - 1] == 0xe8 || o[f - 1] == 0xe9 ||
	      (o[f - 2] == 0x0f && (o[f - 1] & 0xf0) == 0x80) ||
	      (o[f - 2] == 0x8d && (o[f - 1] & 0xc7) == 0x05)))
		return false;
	to = (int64_t)(v->start + f + 4) + s32_at(o + f);
	if (to < 0 || !(fn = obj_sym_in_scn(v->o, v->scn, to, STT_FUNC)) || !obj_sym(v->o, fn, &fs))
		return false;
	od = (uint64_t)to - fs.st_value;
	b = bin_func_at(v->bin, v->addr + f + 4 + (uint64_t)(int64_t)s32_at(v->theirs + f), &bd);
	return b && bd == od && opus_sym_name_eq(b->name, obj_sym_name(v->o, &fs));
}

/* Is the 32-bit field at f the binary's line number, moved by the earlier
 * patches' hunks to the compile's? */
static bool same_line_moved(const struct fview *v, uint64_t f)
{
	int line = s32_at(v->theirs + f);

	if (!v->lines || f + 4 > v->size || line <= 0 || v->free_to_differ[f] ||
	    v->free_to_differ[f + 3])
		return false;
	for (size_t i = 0; i < v->lines->n; i++)
		if (v->lines->steps[i] && !diff_file_map_line(v->lines->steps[i], line, &line))
			return false;
	return line == s32_at(v->ours + f);
}

/* Bytes outside relocated fields match, but for branches inside .text and
 * the line numbers earlier patches moved. */
static int compare_bytes(const struct fview *v)
{
	for (uint64_t i = 0; i < v->size; i++) {
		bool moved = false;

		if (v->free_to_differ[i] || v->ours[i] == v->theirs[i])
			continue;
		for (uint64_t f = i >= 3 ? i - 3 : 0; f <= i && !moved; f++)
			if (same_branch_target(v, f) || same_line_moved(v, f)) {
				moved = true;
				i = f + 3;
			}
		if (!moved)
			return differ(v, i, "an instruction or constant");
	}
	return 0;
}

static int compare(struct fview *v)
{
	GElf_Rela r;
	int ret;

	mark_relocated(v);
	if ((ret = compare_bytes(v)))
		return ret;
	for (size_t i = 0; !ret && obj_rela(v->o, v->scn, i, &r); i++)
		if (r.r_offset >= v->start && r.r_offset < v->start + v->size)
			ret = check_referent(v, &r);
	return ret;
}

int bind_check_func(const struct bind_bin *bin, const struct obj *base, size_t fsym,
		    const struct opus_sym *b, const struct bind_lines *lines)
{
	struct fview v = {.bin = bin, .o = base, .lines = lines};
	const Elf_Data *d;
	GElf_Sym fs;
	int ret;

	if (!obj_sym(base, fsym, &fs) || fs.st_shndx >= base->nscn)
		return opus_err(-EINVAL, "%s: bad function symbol", base->path);
	v.name = obj_sym_name(base, &fs);
	v.scn = fs.st_shndx;
	v.start = fs.st_value;
	v.size = fs.st_size;
	v.addr = b->value;
	d = base->scns[v.scn].data;
	if (fs.st_size != b->size)
		return opus_err(-EINVAL,
				"%s: %" PRIu64 " bytes in the binary, %" PRIu64
				" in a compile of the "
				"tree with its own flags: was the binary built from this source?",
				v.name, b->size, (uint64_t)fs.st_size);
	if (!d || v.start + v.size > d->d_size)
		return opus_err(-EINVAL, "%s: %s has no code for it", v.name, base->path);
	v.ours = (const uint8_t *)d->d_buf + v.start;
	v.theirs = malloc(v.size + 1);
	v.free_to_differ = calloc(v.size + 1, 1);
	if (!v.theirs || !v.free_to_differ)
		ret = -ENOMEM;
	else if (opus_elf_read_vaddr(bin->elf, v.addr, v.theirs, v.size))
		ret = opus_err(-EINVAL, "%s: the binary has no code at 0x%" PRIx64, v.name, v.addr);
	else
		ret = compare(&v);
	free(v.theirs);
	free(v.free_to_differ);
	return ret;
}

int bind_check_object(const struct obj *base, size_t osym, const struct opus_sym *b)
{
	GElf_Sym s;

	if (!obj_sym(base, osym, &s) || s.st_size == b->size)
		return 0;
	return opus_err(-EINVAL,
			"%s: %" PRIu64 " bytes in the binary, %" PRIu64 " in a compile of the tree "
			"with its own flags: was the binary built from this source?",
			obj_sym_name(base, &s), b->size, (uint64_t)s.st_size);
}

/* A branch is PC32 in a compile and PLT32 in a patch: the same thing. */
static uint32_t rela_kind(uint32_t type)
{
	return type == R_X86_64_PC32 ? R_X86_64_PLT32 : type;
}

int bind_check_patched(const struct obj *orig, size_t fsym, const struct opatch *earlier,
		       const struct opatch_func *f)
{
	const struct opatch_sym *ns = &earlier->syms[f->new_sym];
	const struct opatch_section *sec = &earlier->sections[ns->section];
	const Elf_Data *d;
	size_t n = 0;
	GElf_Sym fs;
	GElf_Rela r;

	if (!obj_sym(orig, fsym, &fs) || fs.st_shndx >= orig->nscn ||
	    !(d = orig->scns[fs.st_shndx].data) || fs.st_value + fs.st_size > d->d_size)
		return opus_err(-EINVAL, "%s: bad function symbol", orig->path);
	if (fs.st_size != ns->size || !sec->data || ns->value + ns->size > sec->size ||
	    memcmp((const uint8_t *)d->d_buf + fs.st_value, sec->data + ns->value, ns->size))
		goto differs;
	for (size_t i = 0; obj_rela(orig, fs.st_shndx, i, &r); i++) {
		uint64_t at = r.r_offset - fs.st_value + ns->value;
		bool found = false;

		if (r.r_offset < fs.st_value || r.r_offset >= fs.st_value + fs.st_size)
			continue;
		n++;
		for (size_t k = 0; k < sec->nrelas && !found; k++)
			found = sec->relas[k].offset == at &&
				rela_kind(sec->relas[k].type) ==
				    rela_kind((uint32_t)GELF_R_TYPE(r.r_info));
		if (!found)
			goto differs;
	}
	for (size_t k = 0; k < sec->nrelas; k++)
		n -= sec->relas[k].offset >= ns->value &&
		     sec->relas[k].offset < ns->value + ns->size;
	if (!n)
		return 0;
differs:
	return opus_err(-EINVAL,
			"%s: the tree's code is not what patch %s put there: build on a tree with "
			"the earlier patches' diffs applied, in order",
			f->name, earlier->id);
}
