#include "registry.h"
#include "mem.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC	     "opus-registry 1\n"
#define MAX_REGISTRY (64u << 20)

const char *registry_path_id(const char *path)
{
	size_t n = strlen(REGISTRY_PATH_PREFIX);

	return strncmp(path, REGISTRY_PATH_PREFIX, n) ? NULL : path + n;
}

int registry_format(const struct reg_entry *e, struct opus_buf *b)
{
	opus_buf_add(b, MAGIC, strlen(MAGIC));
	opus_buf_printf(b, "id=%s\nseq=%u\nbuild-id=%s\ntarget=%s\ndescription=%s\n", e->id, e->seq,
			e->build_id, e->target, e->description);
	opus_buf_printf(b, "region=0x%" PRIx64 " 0x%" PRIx64 "\ntext=0x%" PRIx64 " 0x%" PRIx64 "\n",
			e->base, e->size, e->text_lo, e->text_hi);
	for (size_t i = 0; i < e->nfuncs; i++) {
		const struct reg_func *f = &e->funcs[i];

		opus_buf_printf(b,
				"func %s 0x%" PRIx64 " %" PRIu64 " 0x%" PRIx64 " %" PRIu64 " %s\n",
				f->name, f->old_addr, f->old_size, f->new_addr, f->new_size,
				f->cold ? "cold" : "replace");
	}
	for (size_t i = 0; i < e->nsites; i++) {
		char saved[2 * JUMP_SIZE + 1], jump[2 * JUMP_SIZE + 1];

		opus_hex_encode(e->sites[i].saved, JUMP_SIZE, saved);
		opus_hex_encode(e->sites[i].jump, JUMP_SIZE, jump);
		opus_buf_printf(b, "site 0x%" PRIx64 " %s %s\n", e->sites[i].addr, saved, jump);
	}
	return b->data ? 0 : -ENOMEM;
}

static int parse_func(struct reg_entry *e, const char *line)
{
	struct reg_func f = {0};
	char kind[16];

	if (sscanf(line, "func %255s 0x%" SCNx64 " %" SCNu64 " 0x%" SCNx64 " %" SCNu64 " %15s",
		   f.name, &f.old_addr, &f.old_size, &f.new_addr, &f.new_size, kind) != 6)
		return -EINVAL;
	f.cold = !strcmp(kind, "cold");
	if (OPUS_PUSH(e->funcs, e->nfuncs, e->funcs_cap))
		return -ENOMEM;
	e->funcs[e->nfuncs++] = f;
	return 0;
}

static int parse_site(struct reg_entry *e, const char *line)
{
	struct reg_site s;
	char saved[32], jump[32];

	if (sscanf(line, "site 0x%" SCNx64 " %31s %31s", &s.addr, saved, jump) != 3 ||
	    opus_hex_decode(saved, s.saved, JUMP_SIZE) != JUMP_SIZE ||
	    opus_hex_decode(jump, s.jump, JUMP_SIZE) != JUMP_SIZE)
		return -EINVAL;
	if (OPUS_PUSH(e->sites, e->nsites, e->sites_cap))
		return -ENOMEM;
	e->sites[e->nsites++] = s;
	return 0;
}

static void copy_value(char *dst, size_t len, const char *line, const char *key)
{
	snprintf(dst, len, "%.*s", (int)strcspn(line + strlen(key), "\n"), line + strlen(key));
}

int registry_parse(const char *text, struct reg_entry *e)
{
	int ret = 0;

	memset(e, 0, sizeof(*e));
	if (strncmp(text, MAGIC, strlen(MAGIC)))
		return -EINVAL;
	for (const char *l = text + strlen(MAGIC); !ret && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		if (!strncmp(l, "id=", 3))
			copy_value(e->id, sizeof(e->id), l, "id=");
		else if (!strncmp(l, "description=", 12))
			copy_value(e->description, sizeof(e->description), l, "description=");
		else if (!strncmp(l, "build-id=", 9))
			copy_value(e->build_id, sizeof(e->build_id), l, "build-id=");
		else if (!strncmp(l, "target=", 7))
			copy_value(e->target, sizeof(e->target), l, "target=");
		else if (!strncmp(l, "seq=", 4))
			e->seq = (unsigned)strtoul(l + 4, NULL, 10);
		else if (!strncmp(l, "region=", 7))
			ret = sscanf(l, "region=0x%" SCNx64 " 0x%" SCNx64, &e->base, &e->size) == 2
				  ? 0
				  : -EINVAL;
		else if (!strncmp(l, "text=", 5))
			ret = sscanf(l, "text=0x%" SCNx64 " 0x%" SCNx64, &e->text_lo,
				     &e->text_hi) == 2
				  ? 0
				  : -EINVAL;
		else if (!strncmp(l, "func ", 5))
			ret = parse_func(e, l);
		else if (!strncmp(l, "site ", 5))
			ret = parse_site(e, l);
	}
	if (!ret && !e->id[0])
		ret = -EINVAL;
	if (ret)
		registry_entry_free(e);
	return ret;
}

void registry_entry_free(struct reg_entry *e)
{
	free(e->funcs);
	free(e->sites);
	memset(e, 0, sizeof(*e));
}

/* An apply cut short between mapping the patch and writing its record
 * leaves zeros: an entry with the mapping's extent and nothing else, newest
 * of all, for apply and recover to take away. */
static int blank_entry(const struct proc_maps *maps, size_t i, struct reg_entry *e)
{
	const struct proc_map *m = &maps->v[i];
	const char *name = registry_path_id(m->path);
	size_t j = i + 1;

	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%.*s", (int)strcspn(name, " "), name);
	while (j < maps->n && !strcmp(maps->v[j].path, m->path) &&
	       maps->v[j].start == maps->v[j - 1].end)
		j++;
	e->base = m->start;
	e->size = maps->v[j - 1].end - m->start;
	e->seq = UINT_MAX;
	e->blank = true;
	return 0;
}

static int read_entry(int mem_fd, const struct proc_map *m, struct reg_entry *e)
{
	size_t len = m->end - m->start < MAX_REGISTRY ? m->end - m->start : MAX_REGISTRY;
	char *text = malloc(len + 1);
	int ret;

	if (!text)
		return -ENOMEM;
	ret = mem_read(mem_fd, m->start, text, len);
	text[len] = '\0';
	if (!ret && text[0] == '\0')
		ret = -ENOMSG;
	else if (!ret)
		ret = registry_parse(text, e);
	free(text);
	return ret;
}

static int by_seq(const void *a, const void *b)
{
	const struct reg_entry *x = a, *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* A site shows its jump, or a later patch's site at the same address
 * saved that jump before overwriting it (stacking). */
static bool site_written(const struct registry *r, size_t i, const struct reg_site *s, int mem_fd)
{
	uint8_t now[JUMP_SIZE];

	for (size_t j = i + 1; j < r->n; j++)
		for (size_t k = 0; k < r->v[j].nsites; k++)
			if (r->v[j].sites[k].addr == s->addr)
				return !memcmp(r->v[j].sites[k].saved, s->jump, JUMP_SIZE);
	return !mem_read(mem_fd, s->addr, now, JUMP_SIZE) && !memcmp(now, s->jump, JUMP_SIZE);
}

static void mark_active(struct registry *r, int mem_fd)
{
	for (size_t i = 0; i < r->n; i++) {
		struct reg_entry *e = &r->v[i];

		e->written = 0;
		for (size_t k = 0; k < e->nsites; k++)
			e->written += site_written(r, i, &e->sites[k], mem_fd);
		e->active = e->written > 0;
	}
}

int registry_read(pid_t pid, int mem_fd, const struct proc_maps *maps, struct registry *out)
{
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < maps->n; i++) {
		const struct proc_map *m = &maps->v[i];
		int ret;

		if (m->offset || !registry_path_id(m->path))
			continue;
		if (OPUS_PUSH(out->v, out->n, cap)) {
			registry_free(out);
			return -ENOMEM;
		}
		ret = read_entry(mem_fd, m, &out->v[out->n]);
		if (ret == -ENOMSG)
			ret = blank_entry(maps, i, &out->v[out->n]);
		if (ret) {
			registry_free(out);
			return opus_err(ret, "process %d: unreadable opus registry at 0x%" PRIx64,
					(int)pid, m->start);
		}
		out->n++;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), by_seq);
	mark_active(out, mem_fd);
	return 0;
}

void registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		registry_entry_free(&r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

struct reg_entry *registry_find(struct registry *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].id, id))
			return &r->v[i];
	return NULL;
}
