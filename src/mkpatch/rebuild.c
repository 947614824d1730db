#include "rebuild.h"
#include "util/buf.h"
#include "util/elf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The build-id note differs between the two by definition. */
static bool compared(const GElf_Shdr *sh, const char *name)
{
	return (sh->sh_flags & SHF_ALLOC) && strcmp(name, ".note.gnu.build-id");
}

/* The first offset at which a and b differ, and how many bytes do. */
static size_t count_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *first)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i] && !count++)
			*first = i;
	return count;
}

static void compare_section(Elf_Scn *rs, const GElf_Shdr *r, Elf_Scn *is, const GElf_Shdr *in,
			    const char *name, struct opus_buf *out)
{
	Elf_Data *rd, *id;
	size_t first = 0, n;

	if (r->sh_addr != in->sh_addr || r->sh_size != in->sh_size || r->sh_type != in->sh_type) {
		opus_buf_printf(out,
				"%s: at 0x%" PRIx64 ", %" PRIu64
				" bytes in the rebuild; at 0x%" PRIx64 ", %" PRIu64
				" bytes installed\n",
				name, (uint64_t)r->sh_addr, (uint64_t)r->sh_size,
				(uint64_t)in->sh_addr, (uint64_t)in->sh_size);
		return;
	}
	if (r->sh_type == SHT_NOBITS)
		return;
	rd = elf_rawdata(rs, NULL);
	id = elf_rawdata(is, NULL);
	if (!rd || !id || rd->d_size != r->sh_size || id->d_size != in->sh_size) {
		opus_buf_printf(out, "%s: cannot be read\n", name);
		return;
	}
	n = count_diff(rd->d_buf, id->d_buf, rd->d_size, &first);
	if (n)
		opus_buf_printf(out, "%s: %zu of %zu bytes differ, the first at 0x%" PRIx64 "\n",
				name, n, rd->d_size, (uint64_t)r->sh_addr + first);
}

static void compare_sections(Elf *re, Elf *inst, struct opus_buf *out)
{
	size_t shstrndx, ishstrndx;
	Elf_Scn *scn = NULL;
	GElf_Shdr r, in;

	if (elf_getshdrstrndx(re, &shstrndx) || elf_getshdrstrndx(inst, &ishstrndx)) {
		opus_buf_printf(out, "no section headers\n");
		return;
	}
	while ((scn = elf_nextscn(re, scn))) {
		const char *name =
		    gelf_getshdr(scn, &r) ? elf_strptr(re, shstrndx, r.sh_name) : NULL;
		Elf_Scn *is;

		if (!name || !compared(&r, name))
			continue;
		if (!(is = opus_elf_section(inst, name, &in)))
			opus_buf_printf(out, "%s: only in the rebuild\n", name);
		else
			compare_section(scn, &r, is, &in, name, out);
	}
	while ((scn = elf_nextscn(inst, scn))) {
		const char *name =
		    gelf_getshdr(scn, &in) ? elf_strptr(inst, ishstrndx, in.sh_name) : NULL;

		if (name && compared(&in, name) && !opus_elf_section(re, name, &r))
			opus_buf_printf(out, "%s: only installed\n", name);
	}
}

#define LOADS_MAX 16

/* The loadable segments, in order; how many (at most LOADS_MAX + 1). */
static size_t load_segments(Elf *elf, GElf_Phdr *v)
{
	size_t n = 0, phnum;

	if (elf_getphdrnum(elf, &phnum))
		return 0;
	for (size_t i = 0; i < phnum && n <= LOADS_MAX; i++)
		if (gelf_getphdr(elf, (int)i, &v[n]) && v[n].p_type == PT_LOAD)
			n++;
	return n;
}

/* The loadable segments and entry point, as the loader sees them. */
static void compare_segments(Elf *re, Elf *inst, struct opus_buf *out)
{
	GElf_Phdr a[LOADS_MAX + 1], b[LOADS_MAX + 1];
	size_t na = load_segments(re, a), nb = load_segments(inst, b);
	GElf_Ehdr rh, ih;
	bool same = na == nb && na > 0;

	if (!gelf_getehdr(re, &rh) || !gelf_getehdr(inst, &ih))
		opus_buf_printf(out, "ELF header: cannot be read\n");
	else if (rh.e_type != ih.e_type || rh.e_machine != ih.e_machine)
		opus_buf_printf(out, "ELF header: another file type or machine\n");
	else if (rh.e_entry != ih.e_entry)
		opus_buf_printf(out,
				"ELF header: entry point 0x%" PRIx64 " in the rebuild, 0x%" PRIx64
				" installed\n",
				(uint64_t)rh.e_entry, (uint64_t)ih.e_entry);
	for (size_t i = 0; same && i < na; i++)
		same = a[i].p_vaddr == b[i].p_vaddr && a[i].p_memsz == b[i].p_memsz &&
		       a[i].p_flags == b[i].p_flags;
	if (!same)
		opus_buf_printf(out,
				"loadable segments: %zu in the rebuild, %zu installed, not "
				"laid out alike\n",
				na, nb);
}

int rebuild_compare(Elf *rebuilt, Elf *installed, char **diffs)
{
	struct opus_buf out = {0};

	compare_segments(rebuilt, installed, &out);
	compare_sections(rebuilt, installed, &out);
	*diffs = out.data;
	if (!out.len)
		return 0;
	return out.data ? -EINVAL : -ENOMEM;
}
