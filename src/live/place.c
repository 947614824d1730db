/* Where the patch goes: a memfd mapped within reach of a rel32 jump from the
 * object it patches, and the linked image written into it. */
#include "txn.h"
#include "mem.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"
#include "util/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define REACH ((1ull << 31) - (1ull << 20)) /* a rel32 jump, with room to spare */

static bool in_reach(const struct proc_object *o, uint64_t cand, uint64_t size)
{
	uint64_t lo = cand < o->lo ? cand : o->lo;
	uint64_t hi = cand + size > o->hi ? cand + size : o->hi;

	return hi - lo <= REACH;
}

/* Words of the loaded objects' writable data within reach of the object:
 * where the program may keep a pointer to memory it has since unmapped,
 * and never follow it again. glibc's ld.so keeps one to where it mapped
 * /etc/ld.so.cache (cache_new in dl-cache.c) before unmapping it; a patch
 * placed over such a word could not be reverted, since revert refuses to
 * unmap what a word points into. A best effort: the program runs while
 * they are read, and a mapping that cannot be read is passed over. */
struct kept_words {
	uint64_t *v;
	size_t n, cap;
};

#define KEPT_READ_MAX  (1u << 20) /* bytes read at most, whatever the program maps */
#define KEPT_SPANS_MAX 64	  /* the objects' data mappings read at most */

/* An object's data: written privately, and mapped from the file just after
 * another part of it (which a data file mapped alone is not). */
static bool is_object_data(const struct proc_maps *m, size_t i)
{
	const struct proc_map *v = &m->v[i];

	return i && v->inode && !strcmp(v->perms, "rw-p") && m->v[i - 1].inode == v->inode &&
	       m->v[i - 1].dev == v->dev && m->v[i - 1].end == v->start;
}

/* The objects' data as spans, each mapping whole until KEPT_READ_MAX in
 * all; how many. */
static size_t object_data_spans(const struct txn *t, struct iovec *spans, size_t max)
{
	size_t n = 0, len = 0;

	for (size_t i = 0; i < t->maps.n && n < max && len < KEPT_READ_MAX; i++) {
		const struct proc_map *m = &t->maps.v[i];
		size_t part = m->end - m->start;

		if (!is_object_data(&t->maps, i))
			continue;
		if (part > KEPT_READ_MAX - len)
			part = KEPT_READ_MAX - len;
		spans[n++] = (struct iovec){(void *)(uintptr_t)m->start, part};
		len += part;
	}
	return n;
}

static void add_kept_words(const struct proc_object *o, const uint64_t *w, size_t n,
			   struct kept_words *k)
{
	for (size_t i = 0; i < n; i++) {
		if (w[i] < MIN_ADDR || !in_reach(o, w[i], 1) || (w[i] >= o->lo && w[i] < o->hi))
			continue;
		if (k->n == k->cap && opus_grow(&k->v, &k->cap, k->n, sizeof(*k->v)))
			return;
		k->v[k->n++] = w[i];
	}
}

/* The words of the objects' data that point near o, read in one go before
 * any thread is stopped; a span that cannot be read adds none. */
static void read_kept_words(const struct txn *t, const struct proc_object *o, struct kept_words *k)
{
	struct iovec spans[KEPT_SPANS_MAX];
	bool whole[KEPT_SPANS_MAX];
	size_t n = object_data_spans(t, spans, KEPT_SPANS_MAX), len = 0;
	uint8_t *buf, *at;

	for (size_t i = 0; i < n; i++)
		len += spans[i].iov_len;
	if (!len || !(buf = malloc(len)))
		return;
	mem_read_spans(proc_view_id(t->pid), t->mem_fd, spans, n, buf, whole);
	at = buf;
	for (size_t i = 0; i < n; at += spans[i++].iov_len)
		if (whole[i])
			add_kept_words(o, (const uint64_t *)(void *)at, spans[i].iov_len / 8, k);
	free(buf);
}

static bool holds_kept_word(const struct kept_words *k, uint64_t lo, uint64_t hi, uint64_t *word)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->v[i] >= lo && k->v[i] < hi) {
			*word = k->v[i];
			return true;
		}
	return false;
}

/* Where in the gap [g0, g1) size bytes go nearest the object, a page left
 * free at either end and over no kept word; 0 if nowhere. */
static uint64_t place_in_gap(const struct proc_object *o, uint64_t g0, uint64_t g1, uint64_t size,
			     const struct kept_words *k)
{
	const uint64_t mask = LAYOUT_PAGE - 1;
	uint64_t lo = g0 + LAYOUT_PAGE, hi = g1 - LAYOUT_PAGE, cand, word;
	bool below = g1 <= o->lo;

	while (hi > lo && hi - lo >= size) {
		cand = below ? (hi - size) & ~mask : lo;
		if (cand < lo)
			return 0;
		if (!holds_kept_word(k, cand, cand + size, &word))
			return cand;
		opus_info("not placing the patch at 0x%" PRIx64 ": the program keeps a pointer to "
			  "0x%" PRIx64,
			  cand, word);
		if (below)
			hi = word & ~mask;
		else
			lo = (word | mask) + 1;
	}
	return 0;
}

/* The free gaps nearest the object, below it first: above a [heap] is where
 * brk grows, so that gap is never used. Candidates are written to out. */
static size_t find_holes(const struct proc_maps *m, const struct proc_object *o, uint64_t size,
			 const struct kept_words *k, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i <= m->n && n < max; i++) {
		uint64_t g0 = i ? m->v[i - 1].end : MIN_ADDR;
		uint64_t g1 = i < m->n ? m->v[i].start : 0x7ffffffff000ull, cand;

		if (g0 < MIN_ADDR)
			g0 = MIN_ADDR;
		if (g1 <= g0 || g1 - g0 < size + 2 * LAYOUT_PAGE)
			continue;
		if (i && !strcmp(m->v[i - 1].path, "[heap]"))
			continue;
		cand = place_in_gap(o, g0, g1, size, k);
		if (cand && in_reach(o, cand, size))
			out[n++] = cand;
	}
	/* Nearest first. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			uint64_t dj = out[j] < o->lo ? o->lo - out[j] : out[j] - o->hi;
			uint64_t dk = out[j - 1] < o->lo ? o->lo - out[j - 1] : out[j - 1] - o->hi;
			uint64_t tmp = out[j];

			if (dj >= dk)
				break;
			out[j] = out[j - 1];
			out[j - 1] = tmp;
		}
	return n;
}

static int map_region(struct txn *t, int fd, uint64_t base, const struct layout *l)
{
	/* One mapping where there could be four (record r--, code r-x, table
	 * and data rw-): each saves a syscall run through ptrace, two round
	 * trips to the target (30 of 600 us per process in apply --all, 100
	 * us with two workers on two CPUs). Nothing ever jumps into the record
	 * or the table, and the target cannot write them; the table is made
	 * writable when a stop first lists a thread (transition.c). */
	const struct {
		size_t off, len;
		int prot;
	} parts[] = {
	    {0, l->data_off, PROT_READ | PROT_EXEC}, /* record, code, exits, table */
	    {l->data_off, l->data_size, PROT_READ | PROT_WRITE},
	};
	long r;
	int ret;

	t->base = base;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		uint64_t want = base + parts[i].off;

		if (!parts[i].len)
			continue;
		r = -1;
		ret = txn_remote(t, SYS_mmap, want, parts[i].len, (uint64_t)parts[i].prot,
				 MAP_PRIVATE | MAP_FIXED_NOREPLACE, (uint64_t)fd, parts[i].off, &r);
		/* Mapped, even if a later step of the call failed: record it so
		 * the rollback takes it out. */
		if (r == (long)want) {
			t->size = parts[i].off + parts[i].len;
			t->mapped = true;
		}
		if (!ret && r == (long)want)
			continue;
		/* A kernel without MAP_FIXED_NOREPLACE may place it elsewhere. */
		if (!ret && r > 0)
			txn_remote(t, SYS_munmap, (uint64_t)r, parts[i].len, 0, 0, 0, 0, &r);
		txn_unmap(t); /* only the parts mapped so far */
		if (ret)
			return ret;
		if (r == -EEXIST || r > 0)
			return -EEXIST;
		/* The kernel said no (a memory limit, a policy): say what. */
		return opus_err(
		    (int)r, "process %d: mapping %zu bytes of patch at 0x%" PRIx64 " failed: %s",
		    (int)t->pid, parts[i].len, want, strerror((int)-r));
	}
	t->stubs_unused = true;
	return 0;
}

/* The patch's code comes in a memfd, which takes a descriptor of the
 * target's own for as long as the mapping is made. */
static int no_fd_to_spare(pid_t pid)
{
	struct rlimit lim;

	if (prlimit(pid, RLIMIT_NOFILE, NULL, &lim))
		lim.rlim_cur = RLIM_INFINITY;
	return opus_err(-EMFILE,
			"process %d has no file descriptor to spare for the patch's memfd: it "
			"is at its limit of open files (RLIMIT_NOFILE %llu); raise it (prlimit "
			"--pid %d --nofile=...) or let it close some, and apply again",
			(int)pid, (unsigned long long)lim.rlim_cur, (int)pid);
}

/* memfd_create in the target, reopened by opus through /proc/PID/fd. Its
 * nonce is journaled first: a killed opus's memfd is told from any other. */
static int create_memfd(struct txn *t, const char *id, size_t size, long *fd)
{
	struct injector in = {0};
	char name[OPATCH_ID_MAX + 64], path[64];
	uint64_t args[6] = {0, MFD_CLOEXEC_}, name_addr;
	int ret = target_journal_begin(&t->lock, t->entry.nonce);

	registry_memfd_name(id, t->entry.nonce, name, sizeof(name));
	if (ret || (ret = txn_injector(t, &in)) ||
	    (ret = inject_push_string(&in, name, &name_addr)))
		return ret;
	args[0] = name_addr;
	if ((ret = inject_syscall(&in, SYS_memfd_create, args, fd)))
		return ret;
	if (*fd >= 0 && (ret = opus_fault("memfd_create")))
		return ret;
	if (*fd == -EMFILE)
		return no_fd_to_spare(t->pid);
	if (*fd < 0)
		return opus_err((int)*fd, "process %d: memfd_create failed: %s", (int)t->pid,
				strerror((int)-*fd));
	snprintf(path, sizeof(path), "/proc/%d/fd/%ld", (int)proc_view_id(t->pid), *fd);
	t->memfd = open(path, O_RDWR | O_CLOEXEC);
	if (t->memfd < 0 || ftruncate(t->memfd, (off_t)size) < 0)
		return opus_err(-errno, "process %d: cannot open its memfd: %s", (int)t->pid,
				strerror(errno));
	return 0;
}

int place_patch(struct txn *t, const struct proc_object *obj, const struct opatch *p,
		const struct layout *l)
{
	struct kept_words kept = {0};
	uint64_t cands[64];
	size_t n;
	long fd = -1, r;
	int ret;

	read_kept_words(t, obj, &kept);
	n = find_holes(&t->maps, obj, l->total, &kept, cands, 64);
	free(kept.v);
	ret = create_memfd(t, p->id, l->total, &fd);

	for (size_t i = 0; !ret && i < n; i++) {
		ret = map_region(t, (int)fd, cands[i], l);
		if (ret == -EEXIST)
			ret = i + 1 < n ? 0 : -EEXIST;
		else
			break;
	}
	/* The target must not keep the memfd open: a failed close fails the
	 * apply (and is tried once more, for the rollback's sake). */
	if (fd >= 0 && txn_remote(t, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, &r)) {
		int err = opus_err_wrap(-EIO, "process %d: closing its memfd", (int)t->pid);

		t->memfd_closed = !txn_remote(t, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, &r);
		if (!ret)
			ret = err;
	} else {
		t->memfd_closed = true;
	}
	if (!ret && !n)
		ret = -ENOSPC;
	if (ret == -ENOSPC || ret == -EEXIST)
		return opus_err(-ENOSPC, "process %d: no free address range within 2 GiB of %s",
				(int)t->pid, obj->name);
	return ret;
}

/* len bytes at off of the patch's memfd: 0, or why not (a short write,
 * which a memfd should never make, says so rather than a stale errno). */
static int write_at(const struct txn *t, const uint8_t *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(t->memfd, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	return opus_err(-EIO, "process %d: cannot write the patch image: %s", (int)t->pid,
			n < 0 ? strerror(errno) : "short write");
}

/* The record's first byte is written last, on its own: until it is, the
 * record reads as blank, and a blank the journal vouches for is an apply
 * cut short that recover takes out. A write cut short (opus killed between
 * two pages of it) must never leave a record with code that is not all
 * there: recover would take that for a mapping that is not opus's, and
 * leave it. */
static int write_record_last(struct txn *t, const struct layout *l, bool body)
{
	/* The exit stubs' pages are written into the process when used: left
	 * out of the memfd, which reads them as zeros, they take no memory. */
	size_t code = l->exits_off - l->reg_size, rest = l->exits_off + LAYOUT_EXITS;
	int ret;

	if ((body && (ret = write_at(t, l->image + l->reg_size, code, (off_t)l->reg_size))) ||
	    (body && (ret = write_at(t, l->image + rest, l->total - rest, (off_t)rest))) ||
	    (body && (ret = opus_fault("writing the image, before its registry record"))) ||
	    (ret = write_at(t, l->image + 1, l->reg_size - 1, 1)) ||
	    (ret = opus_fault("writing the registry record, before its first byte")) ||
	    (ret = write_at(t, l->image, 1, 0)))
		return ret;
	return opus_fault("writing the image and its registry record");
}

static int format_record(struct txn *t, struct layout *l)
{
	struct opus_buf reg = {0};
	int ret = registry_format(&t->entry, &reg);

	if (!ret && reg.len >= l->reg_size)
		ret = opus_err(-E2BIG, "registry record too large");
	if (!ret) {
		memset(l->image, 0, l->reg_size);
		memcpy(l->image, reg.data, reg.len);
	}
	opus_buf_free(&reg);
	return ret;
}

int place_write_image(struct txn *t, struct layout *l)
{
	int ret = format_record(t, l);

	return ret ? ret : write_record_last(t, l, true);
}

/* Blank first, then as the first write: a record either whole, old or
 * new, or blank (taken out by recover). */
int place_rewrite_record(struct txn *t, struct layout *l)
{
	int ret = format_record(t, l);

	if (!ret)
		ret = write_at(t, (const uint8_t[]){0}, 1, 0);
	if (!ret)
		ret = opus_fault("blanking the registry record to write it again");
	if (!ret)
		ret = write_record_last(t, l, false);
	return ret;
}
