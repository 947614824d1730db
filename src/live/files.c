#include "files.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool is_file(const struct cached_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
	       same_time(&f->mtim, &st->st_mtim) && same_time(&f->ctim, &st->st_ctim);
}

static void describe(struct cached_file *f, const struct stat *st)
{
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtim = st->st_mtim;
	f->ctim = st->st_ctim;
}

static void file_free(struct cached_file *f)
{
	opus_symtab_free(&f->dyn);
	free(f->plts);
	opus_elf_close(&f->e);
	free(f);
}

static int file_add(struct file_cache *c, const char *path, struct cached_file **out)
{
	struct cached_file *f = calloc(1, sizeof(*f));
	struct stat st;
	int ret;

	if (!f || OPUS_PUSH(c->v, c->n, c->cap)) {
		free(f);
		return -ENOMEM;
	}
	if ((ret = opus_elf_open(path, &f->e))) {
		free(f);
		return ret;
	}
	/* What was opened, not what the path named a moment earlier. */
	if (fstat(f->e.fd, &st)) {
		ret = opus_err(-errno, "%s: %s", path, strerror(errno));
		file_free(f);
		return ret;
	}
	describe(f, &st);
	f->used = ++c->clock;
	c->v[c->n++] = f;
	*out = f;
	return 0;
}

int files_open(struct file_cache *c, const char *path, struct cached_file **out)
{
	struct stat st;

	if (stat(path, &st))
		return opus_err(-errno, "%s: %s", path, strerror(errno));
	for (size_t i = 0; i < c->n; i++)
		if (is_file(c->v[i], &st)) {
			*out = c->v[i];
			(*out)->used = ++c->clock;
			return 0;
		}
	return file_add(c, path, out);
}

int files_open_map(struct file_cache *c, pid_t pid, const struct proc_map *m, char *path,
		   size_t len, struct cached_file **out)
{
	pid_t view = proc_view_id(pid);
	int ret;

	snprintf(path, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)view, m->start, m->end);
	if ((ret = files_open(c, path, out))) {
		snprintf(path, len, "/proc/%d/root%s", (int)view, m->path);
		ret = files_open(c, path, out);
	}
	if (!ret) {
		(*out)->map_dev = m->dev;
		(*out)->map_inode = m->inode;
	}
	return ret;
}

const struct opus_symtab *files_dynsym(struct cached_file *f)
{
	if (!f->dyn_read)
		opus_symtab_load(f->e.elf, true, &f->dyn);
	f->dyn_read = true;
	return &f->dyn;
}

bool files_find_global(struct cached_file *f, const char *name, struct opus_sym *out)
{
	const struct opus_sym *s;

	if (!f->hash_read)
		f->hash_ret = opus_gnu_hash_open(f->e.elf, &f->hash);
	f->hash_read = true;
	if (!f->hash_ret)
		return opus_gnu_hash_find_global(&f->hash, name, out);
	if ((s = opus_symtab_find_global(files_dynsym(f), name)))
		*out = *s;
	return s != NULL;
}

/* Every undefined .dynsym function with a value, in one pass over the
 * table: few files have any, and none needs the table indexed. */
static void list_plts(struct cached_file *f)
{
	GElf_Shdr sh;
	Elf_Scn *scn = opus_elf_section_of_type(f->e.elf, SHT_DYNSYM, &sh);
	Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;
	size_t n = d && sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0, cap = 0;

	for (size_t i = 1; i < n; i++) {
		GElf_Sym sym;

		if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx != SHN_UNDEF || !sym.st_value ||
		    GELF_ST_TYPE(sym.st_info) != STT_FUNC || OPUS_PUSH(f->plts, f->nplts, cap) ||
		    !opus_sym_read(f->e.elf, d, sh.sh_link, NULL, i, &f->plts[f->nplts]))
			continue;
		f->nplts++;
	}
}

bool files_canonical_plt(struct cached_file *f, const char *name, uint64_t *value)
{
	if (!f->plts_read)
		list_plts(f);
	f->plts_read = true;
	for (size_t i = 0; i < f->nplts; i++)
		if (opus_sym_name_eq(f->plts[i].name, name)) {
			*value = f->plts[i].value;
			return true;
		}
	return false;
}

int files_build_id(struct cached_file *f, const uint8_t **id)
{
	if (!f->id_read)
		f->id_len = opus_elf_build_id(f->e.elf, f->id);
	f->id_read = true;
	*id = f->id;
	return f->id_len;
}

int64_t files_find_bytes(struct cached_file *f, const void *pat, size_t n, uint64_t from,
			 uint64_t len)
{
	const char *image, *hit = NULL;
	size_t size;

	for (unsigned i = 0; i < f->nmemo; i++)
		if (f->memo[i].pat == pat && f->memo[i].from == from && f->memo[i].len == len)
			return f->memo[i].at;
	image = elf_rawfile(f->e.elf, &size);
	if (image && from < size)
		hit = memmem(image + from, size - from < len ? size - from : len, pat, n);
	if (f->nmemo < FILES_MEMO)
		f->memo[f->nmemo++] = (typeof(f->memo[0])){pat, from, len, hit ? hit - image : -1};
	return hit ? hit - image : -ENOENT;
}

bool files_imports(struct cached_file *f, const char *const *names, size_t n)
{
	if (f->imports_asked != names) {
		f->imports = opus_elf_imports(f->e.elf, names, n);
		f->imports_asked = names;
	}
	return f->imports;
}

void file_cache_trim(struct file_cache *c, size_t keep)
{
	while (c->n > keep) {
		size_t oldest = 0;

		for (size_t i = 1; i < c->n; i++)
			if (c->v[i]->used < c->v[oldest]->used)
				oldest = i;
		file_free(c->v[oldest]);
		c->v[oldest] = c->v[--c->n];
	}
}

void file_cache_free(struct file_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		file_free(c->v[i]);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* Link-time address of the first PT_LOAD: what maps at file offset 0. */
static int first_load_vaddr(Elf *elf, uint64_t *vaddr)
{
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
			*vaddr = ph.p_vaddr - (ph.p_offset & ~(ph.p_align ? ph.p_align - 1 : 0));
			return 0;
		}
	}
	return -EINVAL;
}

int files_object_at(struct file_cache *c, pid_t pid, const struct proc_maps *maps, size_t m,
		    struct proc_object *out)
{
	const struct proc_map *pm = &maps->v[m];
	struct cached_file *f;
	uint64_t vaddr;
	int ret;

	snprintf(out->name, sizeof(out->name), "%s", pm->path);
	ret = files_open_map(c, pid, pm, out->path, sizeof(out->path), &f);
	if (!ret)
		ret = first_load_vaddr(f->e.elf, &vaddr);
	if (ret)
		return ret;
	out->bias = pm->start - vaddr;
	out->lo = pm->start;
	out->hi = pm->end;
	for (size_t i = m + 1; i < maps->n; i++) {
		const struct proc_map *q = &maps->v[i];

		/* Later mappings of the same file, and the anonymous .bss tail. */
		if (strcmp(q->path, pm->path) && !(q->path[0] == '\0' && q->start == out->hi))
			break;
		out->hi = q->end;
	}
	return 0;
}

/* Does f, opened before, have the build-id wanted? */
static bool has_id(struct cached_file *f, const uint8_t *build_id, size_t len)
{
	const uint8_t *id;

	return files_build_id(f, &id) == (int)len && !memcmp(id, build_id, len);
}

/* The mapping a file known to have the build-id was last seen mapped as:
 * in a run over many processes, the one to try first. */
static size_t likely_mapping(const struct file_cache *c, const struct proc_maps *maps,
			     const uint8_t *build_id, size_t len)
{
	for (size_t k = 0; k < c->n; k++) {
		struct cached_file *f = c->v[k];

		if (!f->map_inode || !f->id_read || f->id_len != (int)len ||
		    memcmp(f->id, build_id, len))
			continue;
		for (size_t i = 0; i < maps->n; i++)
			if (!maps->v[i].offset && maps->v[i].inode == f->map_inode &&
			    maps->v[i].dev == f->map_dev)
				return i;
	}
	return maps->n;
}

int files_find_object(struct file_cache *c, pid_t pid, const struct proc_maps *maps,
		      const uint8_t *build_id, size_t build_id_len, struct proc_object *out)
{
	size_t first = likely_mapping(c, maps, build_id, build_id_len);

	for (size_t k = 0; k <= maps->n; k++) {
		/* The likely one, then every mapping in order. */
		size_t i = k == 0 ? first : k - 1;
		const struct proc_map *m = &maps->v[i];
		struct cached_file *f;
		char path[4200];

		if (i >= maps->n || (k && i == first) || m->offset != 0 || m->path[0] != '/' ||
		    files_open_map(c, pid, m, path, sizeof(path), &f))
			continue;
		if (has_id(f, build_id, build_id_len))
			return files_object_at(c, pid, maps, i, out);
	}
	return -ENOENT;
}
