/* Lookups by name through an object's .gnu.hash, as the dynamic loader
 * makes them: a bloom filter, one bucket, and a chain of the hashes of the
 * symbols in that bucket, so that a lookup reads a few symbols, not the
 * whole .dynsym. Loading and indexing every library's .dynsym to find one
 * name in libc was a tenth of an apply's CPU on nginx.
 *
 * The section comes from a file on disk that opus did not write: every
 * count and index is checked against the sizes libelf reports before it
 * is used, and the words are copied out (the section need not be aligned
 * in the file). */
#include "elf.h"

#include <errno.h>
#include <string.h>

static uint32_t word32(const Elf_Data *d, uint64_t at)
{
	uint32_t v;

	memcpy(&v, (const char *)d->d_buf + at, sizeof(v));
	return v;
}

static uint64_t word64(const Elf_Data *d, uint64_t at)
{
	uint64_t v;

	memcpy(&v, (const char *)d->d_buf + at, sizeof(v));
	return v;
}

/* The symbol table the hash section links to, and its versions. */
static int open_symbols(Elf *elf, const GElf_Shdr *hshdr, struct opus_gnu_hash *h)
{
	GElf_Shdr sshdr, vshdr;
	Elf_Scn *syms = elf_getscn(elf, hshdr->sh_link);
	Elf_Scn *vers = opus_elf_section_of_type(elf, SHT_GNU_versym, &vshdr);

	if (!syms || !gelf_getshdr(syms, &sshdr) || sshdr.sh_type != SHT_DYNSYM ||
	    !sshdr.sh_entsize || !(h->syms = elf_getdata(syms, NULL)))
		return -ENOENT;
	h->nsyms = sshdr.sh_size / sshdr.sh_entsize;
	h->strtab = sshdr.sh_link;
	h->versyms = vers ? elf_getdata(vers, NULL) : NULL;
	return 0;
}

int opus_gnu_hash_open(Elf *elf, struct opus_gnu_hash *h)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = opus_elf_section_of_type(elf, SHT_GNU_HASH, &shdr);
	const char *ident = elf_getident(elf, NULL);
	uint64_t fixed;

	memset(h, 0, sizeof(*h));
	h->elf = elf;
	/* The raw bytes, read as words of this (little-endian, 64-bit) host. */
	if (!scn || !ident || ident[EI_CLASS] != ELFCLASS64 || ident[EI_DATA] != ELFDATA2LSB ||
	    !(h->table = elf_rawdata(scn, NULL)) || h->table->d_size < 16)
		return -ENOENT;
	h->nbuckets = word32(h->table, 0);
	h->symoffset = word32(h->table, 4);
	h->bloom_size = word32(h->table, 8);
	h->bloom_shift = word32(h->table, 12);
	fixed = 16 + (uint64_t)h->bloom_size * 8 + (uint64_t)h->nbuckets * 4;
	if (!h->nbuckets || !h->bloom_size || fixed > h->table->d_size)
		return -ENOENT;
	h->chain_at = fixed;
	h->nchain = (h->table->d_size - fixed) / 4;
	return open_symbols(elf, &shdr, h);
}

static uint32_t gnu_hash(const char *name)
{
	uint32_t v = 5381;

	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		v = v * 33 + *c;
	return v;
}

/* Can the bloom filter rule name out? */
static bool ruled_out(const struct opus_gnu_hash *h, uint32_t v)
{
	uint64_t word = word64(h->table, 16 + (uint64_t)((v / 64) % h->bloom_size) * 8);
	uint64_t mask = (1ull << (v % 64)) | (1ull << ((v >> (h->bloom_shift % 32)) % 64));

	return (word & mask) != mask;
}

bool opus_gnu_hash_find_global(const struct opus_gnu_hash *h, const char *name,
			       struct opus_sym *out)
{
	uint32_t v = gnu_hash(name), i;
	bool weak = false;

	if (ruled_out(h, v))
		return false;
	i = word32(h->table, 16 + (uint64_t)h->bloom_size * 8 + (uint64_t)(v % h->nbuckets) * 4);
	/* The chain holds the bucket's symbols in table order, each hash with
	 * its low bit set on the last: the same first global, else first
	 * weak, that opus_symtab_find_global returns. */
	for (; i >= h->symoffset && i - h->symoffset < h->nchain && i < h->nsyms; i++) {
		uint32_t ch = word32(h->table, h->chain_at + (uint64_t)(i - h->symoffset) * 4);
		struct opus_sym s;

		if ((ch | 1) == (v | 1) &&
		    opus_sym_read(h->elf, h->syms, h->strtab, h->versyms, i, &s) &&
		    !strcmp(s.name, name) && s.shndx != SHN_UNDEF && !s.hidden) {
			if (s.bind == STB_GLOBAL || s.bind == STB_GNU_UNIQUE) {
				*out = s;
				return true;
			}
			if (s.bind == STB_WEAK && !weak) {
				*out = s;
				weak = true;
			}
		}
		if (ch & 1)
			break;
	}
	return weak;
}
