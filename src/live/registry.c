#include "registry.h"
#include "dispatch.h"
#include "exits.h"
#include "lock.h"
#include "mem.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC	     "opus-registry 2\n"
#define MAX_REGISTRY (64u << 20)
#define MAX_TEXT     (256u << 20)

void registry_memfd_name(const char *id, const char *nonce, char *out, size_t len)
{
	snprintf(out, len, REGISTRY_MEMFD_PREFIX "%s:%s", id, nonce);
}

bool registry_path_parse(const char *path, char id[OPATCH_ID_MAX + 1],
			 char nonce[REGISTRY_NONCE_LEN + 1])
{
	size_t n = strlen(REGISTRY_PATH_PREFIX), len;
	const char *rest = path + n, *colon;

	if (strncmp(path, REGISTRY_PATH_PREFIX, n))
		return false;
	len = strcspn(rest, " ");
	colon = memrchr(rest, ':', len);
	if (!colon || (size_t)(rest + len - colon - 1) != REGISTRY_NONCE_LEN ||
	    (size_t)(colon - rest) > OPATCH_ID_MAX)
		return false;
	snprintf(id, OPATCH_ID_MAX + 1, "%.*s", (int)(colon - rest), rest);
	snprintf(nonce, REGISTRY_NONCE_LEN + 1, "%.*s", REGISTRY_NONCE_LEN, colon + 1);
	return opatch_id_valid(id) && strspn(nonce, "0123456789abcdef") == REGISTRY_NONCE_LEN;
}

int registry_format(const struct reg_entry *e, struct opus_buf *b)
{
	char digest[2 * sizeof(e->text_sha256) + 1];

	opus_hex_encode(e->text_sha256, sizeof(e->text_sha256), digest);
	opus_buf_add(b, MAGIC, strlen(MAGIC));
	opus_buf_printf(b, "id=%s\nnonce=%s\nseq=%u\nbuild-id=%s\ntarget=%s\ndescription=%s\n",
			e->id, e->nonce, e->seq, e->build_id, e->target, e->description);
	opus_buf_printf(b, "text-sha256=%s\n", digest);
	opus_buf_printf(b, "region=0x%" PRIx64 " 0x%" PRIx64 "\ntext=0x%" PRIx64 " 0x%" PRIx64 "\n",
			e->base, e->size, e->text_lo, e->text_hi);
	if (e->exits)
		opus_buf_printf(b, "exits=0x%" PRIx64 "\n", e->exits);
	if (e->table)
		opus_buf_printf(b, "table=0x%" PRIx64 "\n", e->table);
	if (e->cfi)
		opus_buf_printf(b, "cfi=0x%" PRIx64 " %" PRIu64 "\n", e->cfi, e->cfi_size);
	opus_buf_printf(b, "code-pointers=%d\n", e->code_pointers);
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

static int parse_digest(const char *line, uint8_t out[32])
{
	char hex[80];

	copy_value(hex, sizeof(hex), line, "text-sha256=");
	return opus_hex_decode(hex, out, 32) == 32 ? 0 : -EINVAL;
}

int registry_parse(const char *text, struct reg_entry *e)
{
	int ret = 0;

	memset(e, 0, sizeof(*e));
	e->code_pointers = true;
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
		else if (!strncmp(l, "nonce=", 6))
			copy_value(e->nonce, sizeof(e->nonce), l, "nonce=");
		else if (!strncmp(l, "text-sha256=", 12))
			ret = parse_digest(l, e->text_sha256);
		else if (!strncmp(l, "region=", 7))
			ret = sscanf(l, "region=0x%" SCNx64 " 0x%" SCNx64, &e->base, &e->size) == 2
				  ? 0
				  : -EINVAL;
		else if (!strncmp(l, "text=", 5))
			ret = sscanf(l, "text=0x%" SCNx64 " 0x%" SCNx64, &e->text_lo,
				     &e->text_hi) == 2
				  ? 0
				  : -EINVAL;
		else if (!strncmp(l, "exits=", 6))
			ret = sscanf(l, "exits=0x%" SCNx64, &e->exits) == 1 ? 0 : -EINVAL;
		else if (!strncmp(l, "table=", 6))
			ret = sscanf(l, "table=0x%" SCNx64, &e->table) == 1 ? 0 : -EINVAL;
		else if (!strncmp(l, "cfi=", 4))
			ret = sscanf(l, "cfi=0x%" SCNx64 " %" SCNu64, &e->cfi, &e->cfi_size) == 2
				  ? 0
				  : -EINVAL;
		else if (!strncmp(l, "code-pointers=", 14))
			e->code_pointers = l[14] != '0';
		else if (!strncmp(l, "func ", 5))
			ret = parse_func(e, l);
		else if (!strncmp(l, "site ", 5))
			ret = parse_site(e, l);
	}
	if (!ret && (!e->id[0] || strlen(e->nonce) != REGISTRY_NONCE_LEN))
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

/* The extent of the mappings of one memfd that start at maps->v[i]. */
static uint64_t region_end(const struct proc_maps *maps, size_t i)
{
	size_t j = i + 1;

	while (j < maps->n && !strcmp(maps->v[j].path, maps->v[i].path) &&
	       maps->v[j].start == maps->v[j - 1].end)
		j++;
	return maps->v[j - 1].end;
}

/* An apply cut short between mapping the patch and writing its record
 * leaves zeros: an entry with the mapping's extent and nothing else, newest
 * of all, for apply and recover to take away. */
static void blank_entry(const struct proc_maps *maps, size_t i, const char *id, const char *nonce,
			struct reg_entry *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	snprintf(e->nonce, sizeof(e->nonce), "%s", nonce);
	e->base = maps->v[i].start;
	e->size = region_end(maps, i) - e->base;
	e->seq = UINT_MAX;
	e->blank = true;
}

static int read_record(int mem_fd, const struct proc_map *m, struct reg_entry *e)
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

/* A later patch of the stack redirects this patch's copies of the
 * functions it replaces too: its jumps, in this code, hide bytes that its
 * verified record kept. Put them back before hashing. */
static void unhide_later_jumps(const struct registry *verified, const struct reg_entry *e,
			       uint8_t *text)
{
	for (size_t r = 0; r < verified->n; r++)
		for (size_t k = 0; k < verified->v[r].nsites; k++) {
			const struct reg_site *s = &verified->v[r].sites[k];

			if (s->addr >= e->text_lo && s->addr + JUMP_SIZE <= e->text_hi)
				memcpy(text + (s->addr - e->text_lo), s->saved, JUMP_SIZE);
		}
}

/* Does the record describe this very mapping, and the code in it? Newer
 * records are verified first and vouch for the jumps they wrote here. */
static const char *verify(int mem_fd, const struct proc_maps *maps, size_t i, const char *id,
			  const char *nonce, const struct reg_entry *e,
			  const struct registry *newer)
{
	uint8_t digest[OPUS_SHA256_LEN], *text;
	uint64_t end = region_end(maps, i);
	struct exits_area stubs = exits_of(e->exits, e->table);
	int ret;

	if (strcmp(e->id, id) || strcmp(e->nonce, nonce))
		return "its record names another patch or nonce than its memfd";
	if (e->base != maps->v[i].start || e->base + e->size != end)
		return "its record describes another region than the mapping's";
	if (e->text_lo < e->base || e->text_hi > end || e->text_lo >= e->text_hi ||
	    e->text_hi - e->text_lo > MAX_TEXT)
		return "its record puts the code outside the mapping";
	if (e->exits &&
	    (e->exits < e->text_hi || e->exits % EXITS_PAGE || e->exits + stubs.size > end ||
	     stubs.size % EXITS_PAGE || stubs.size > EXITS_SIZE))
		return "its record puts its exit stubs outside the mapping";
	if (e->table && (e->table < e->text_hi || e->table + DISPATCH_TABLE_SIZE > end ||
			 e->table % DISPATCH_TABLE_SIZE))
		return "its record puts its dispatchers' table outside the mapping";
	if (e->cfi &&
	    (e->cfi < e->text_lo || e->cfi > e->text_hi || e->cfi_size > e->text_hi - e->cfi))
		return "its record puts its unwind tables outside its code";
	for (size_t k = 0; k < e->nsites; k++) {
		int32_t rel;
		uint64_t to;

		memcpy(&rel, e->sites[k].jump + 1, 4);
		to = e->sites[k].addr + JUMP_SIZE + (uint64_t)(int64_t)rel;
		if (e->sites[k].jump[0] != 0xe9 || to < e->text_lo || to >= e->text_hi)
			return "its record has jumps that do not lead into its code";
	}
	if (!(text = malloc(e->text_hi - e->text_lo)))
		return "out of memory";
	ret = mem_read(mem_fd, e->text_lo, text, e->text_hi - e->text_lo);
	if (!ret) {
		unhide_later_jumps(newer, e, text);
		opus_sha256(text, e->text_hi - e->text_lo, digest);
	}
	free(text);
	if (ret || memcmp(digest, e->text_sha256, sizeof(digest)))
		return "its code is not what its record says";
	return NULL;
}

static int add_foreign(struct registry *r, const struct proc_map *m, const char *why)
{
	struct reg_foreign *f = realloc(r->foreign, (r->nforeign + 1) * sizeof(*f));

	if (!f)
		return -ENOMEM;
	r->foreign = f;
	f = &r->foreign[r->nforeign++];
	f->start = m->start;
	snprintf(f->name, sizeof(f->name), "%s", m->path);
	snprintf(f->why, sizeof(f->why), "%s", why);
	return 0;
}

/* An opus-named mapping, its record read but not yet verified. */
struct candidate {
	size_t map;
	char id[OPATCH_ID_MAX + 1], nonce[REGISTRY_NONCE_LEN + 1];
	int read; /* 0, -ENOMSG (blank), or why the record did not parse */
	struct reg_entry e;
};

static int read_candidate(int mem_fd, const struct proc_maps *maps, size_t i, struct candidate *c)
{
	memset(c, 0, sizeof(*c));
	c->map = i;
	if (!registry_path_parse(maps->v[i].path, c->id, c->nonce))
		return -EINVAL;
	c->read = read_record(mem_fd, &maps->v[i], &c->e);
	return c->read == -ENOMEM ? -ENOMEM : 0;
}

/* Newest first: each is verified with the newer ones already trusted. */
static int by_seq_desc(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	unsigned sx = x->read == -ENOMSG ? UINT_MAX : x->e.seq;
	unsigned sy = y->read == -ENOMSG ? UINT_MAX : y->e.seq;

	return (sx < sy) - (sx > sy);
}

/* A candidate becomes an entry when it verifies (or is a blank the
 * journal vouches for), foreign otherwise. */
static int settle(pid_t pid, int mem_fd, const struct proc_maps *maps,
		  const struct target_lock *journal, struct candidate *c, struct registry *out,
		  size_t *cap)
{
	const struct proc_map *m = &maps->v[c->map];
	const char *why = NULL;

	if (c->read == -ENOMSG) {
		if (!journal || !target_journal_has(journal, c->nonce))
			return add_foreign(out, m, "no record, and no opus began it");
		if (OPUS_PUSH(out->v, out->n, *cap))
			return -ENOMEM;
		blank_entry(maps, c->map, c->id, c->nonce, &out->v[out->n++]);
		return 0;
	}
	why = c->read ? "its record does not parse"
		      : verify(mem_fd, maps, c->map, c->id, c->nonce, &c->e, out);
	if (why) {
		opus_info("process %d: mapping at 0x%" PRIx64 " is not opus's: %s", (int)pid,
			  m->start, why);
		return add_foreign(out, m, why);
	}
	if (OPUS_PUSH(out->v, out->n, *cap))
		return -ENOMEM;
	out->v[out->n++] = c->e;
	memset(&c->e, 0, sizeof(c->e)); /* ownership moves to out */
	return 0;
}

static int by_seq(const void *a, const void *b)
{
	const struct reg_entry *x = a, *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* What an address held at some layer of the stack. */
struct layer_bytes {
	uint64_t addr;
	uint8_t b[JUMP_SIZE];
};

static struct layer_bytes *bytes_at(struct layer_bytes **v, size_t *n, uint64_t addr, int mem_fd)
{
	struct layer_bytes *p;

	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].addr == addr)
			return &(*v)[i];
	if (!(p = realloc(*v, (*n + 1) * sizeof(**v))))
		return NULL;
	*v = p;
	p = &(*v)[(*n)++];
	p->addr = addr;
	if (mem_read(mem_fd, addr, p->b, JUMP_SIZE))
		memset(p->b, 0, JUMP_SIZE);
	return p;
}

/* Which jumps are in: walking the stack from the newest record down, an
 * address holds what the process has now; a record whose jump is there
 * wrote it, and below it the address held what that record saved. A record
 * that never wrote its jump changed nothing, whatever its place. */
static void mark_active(struct registry *r, int mem_fd)
{
	struct layer_bytes *now = NULL;
	size_t n = 0;

	for (size_t i = r->n; i-- > 0;) {
		struct reg_entry *e = &r->v[i];

		e->written = 0;
		for (size_t k = 0; k < e->nsites; k++) {
			struct layer_bytes *at = bytes_at(&now, &n, e->sites[k].addr, mem_fd);

			if (at && !memcmp(at->b, e->sites[k].jump, JUMP_SIZE)) {
				memcpy(at->b, e->sites[k].saved, JUMP_SIZE);
				e->written++;
			}
		}
		e->active = e->written > 0;
	}
	free(now);
}

/* A record whose jumps were never written, that no opus is applying: a
 * child forked in the middle of an apply, or a forgery. Nothing leads into
 * it; opus leaves it alone, and says so. */
static int set_aside_inactive(struct registry *r, const struct proc_maps *maps,
			      const struct target_lock *journal)
{
	size_t kept = 0;
	int ret = 0;

	for (size_t i = 0; i < r->n; i++) {
		struct reg_entry *e = &r->v[i];
		const struct proc_map *m = NULL;

		if (e->active || e->blank || (journal && target_journal_has(journal, e->nonce))) {
			r->v[kept++] = *e;
			continue;
		}
		for (size_t k = 0; k < maps->n && !m; k++)
			if (maps->v[k].start == e->base)
				m = &maps->v[k];
		if (m && !ret)
			ret = add_foreign(r, m,
					  "a record whose jumps were never written, that no opus "
					  "is applying (a child forked during an apply?)");
		registry_entry_free(e);
	}
	r->n = kept;
	return ret;
}

/* The first mapping of each memfd named as opus's. */
static bool opus_named_start(const struct proc_maps *maps, size_t i)
{
	const struct proc_map *m = &maps->v[i];

	return !m->offset &&
	       !strncmp(m->path, REGISTRY_PATH_PREFIX, strlen(REGISTRY_PATH_PREFIX)) &&
	       !(i && !strcmp(maps->v[i - 1].path, m->path) && maps->v[i - 1].end == m->start);
}

int registry_read(pid_t pid, int mem_fd, const struct proc_maps *maps,
		  const struct target_lock *journal, struct registry *out)
{
	struct candidate *cands = calloc(maps->n + 1, sizeof(*cands));
	size_t n = 0, cap = 0;
	int ret = cands ? 0 : -ENOMEM;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; !ret && i < maps->n; i++) {
		if (!opus_named_start(maps, i))
			continue;
		ret = read_candidate(mem_fd, maps, i, &cands[n]);
		if (ret == -EINVAL)
			ret = add_foreign(out, &maps->v[i], "not named as opus names its memfds");
		else if (!ret)
			n++;
	}
	qsort(cands, n, sizeof(*cands), by_seq_desc);
	for (size_t i = 0; !ret && i < n; i++)
		ret = settle(pid, mem_fd, maps, journal, &cands[i], out, &cap);
	for (size_t i = 0; i < n; i++)
		registry_entry_free(&cands[i].e);
	free(cands);
	if (ret) {
		registry_free(out);
		return opus_err(ret, "process %d: reading the opus registry", (int)pid);
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), by_seq);
	mark_active(out, mem_fd);
	return set_aside_inactive(out, maps, journal);
}

void registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		registry_entry_free(&r->v[i]);
	free(r->v);
	free(r->foreign);
	memset(r, 0, sizeof(*r));
}

struct reg_entry *registry_find(struct registry *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].id, id))
			return &r->v[i];
	return NULL;
}
