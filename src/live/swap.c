#include "swap.h"
#include "mem.h"
#include "txn.h"
#include "util/err.h"
#include "util/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* The page's mapping, if a swap can keep it what it is: code mapped
 * privately from a file that is still there (a deleted or replaced one
 * cannot be opened again as the same file). */
static int swappable(const struct txn *t, uint64_t page, const struct proc_map **out)
{
	const struct proc_map *m = proc_map_at(&t->maps, page);

	if (!m)
		return opus_err(-ENOTSUP, "process %d: nothing is mapped at 0x%" PRIx64,
				(int)t->pid, page);
	if (strcmp(m->perms, "r-xp") || !m->inode || m->path[0] != '/')
		return opus_err(-ENOTSUP,
				"process %d: the code at 0x%" PRIx64 " is not a private read-only "
				"mapping of a file (%s %s)",
				(int)t->pid, page, m->perms, *m->path ? m->path : "anonymous");
	if (strstr(m->path, " (deleted)"))
		return opus_err(-ENOTSUP, "process %d: %s is no longer on disk", (int)t->pid,
				m->path);
	*out = m;
	return 0;
}

/* Is the file mapped at addr the one m maps (its device and inode)? */
static bool same_file(const struct txn *t, uint64_t addr, const struct proc_map *m)
{
	struct proc_maps now = {0};
	const struct proc_map *at;
	char link[96];
	struct stat st;
	bool same;

	snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
		 (int)proc_view_id(t->pid), addr, addr + SWAP_PAGE);
	if (!stat(link, &st))
		return st.st_dev == m->dev && st.st_ino == m->inode;
	if (proc_maps_read(t->pid, &now))
		return false;
	at = proc_map_at(&now, addr);
	same = at && at->dev == m->dev && at->inode == m->inode;
	proc_maps_free(&now);
	return same;
}

/* The file's page, mapped privately by the target at want (or anywhere
 * if 0), at *mapped once it is: the target opens the mapping's path
 * itself, in its own mount namespace and root, and the page must come
 * from the very file mapped at m. */
static int map_file_page(struct txn *t, const struct proc_map *m, uint64_t page, uint64_t want,
			 uint64_t *mapped)
{
	struct inject_call calls[3] = {
	    {SYS_openat, {(uint64_t)AT_FDCWD, 0, O_RDONLY | O_CLOEXEC}, {0}},
	    {SYS_mmap,
	     {want, SWAP_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | (want ? MAP_FIXED : 0), 0,
	      m->offset + (page - m->start)},
	     {[4] = 1}}, /* the descriptor openat gave */
	    {SYS_close, {0}, {[0] = 1}},
	};
	struct injector in = {0};
	long rets[3] = {0}, r;
	size_t ran = 0;
	int ret = txn_injector(t, &in);

	if (!ret)
		ret = inject_push_string(&in, m->path, &calls[0].args[1]);
	if (!ret)
		ret = txn_remote_calls(t, &in, calls, 3, rets, &ran);
	if (ran >= 1 && rets[0] >= 0 && ran < 3)
		txn_remote(t, SYS_close, (uint64_t)rets[0], 0, 0, 0, 0, 0, &r);
	if (ran >= 2 && !inject_failed(rets[1]))
		*mapped = (uint64_t)rets[1];
	if (ret)
		return ret;
	if (rets[0] < 0)
		return opus_err(-ENOTSUP, "process %d cannot open %s again: %s", (int)t->pid,
				m->path, strerror((int)-rets[0]));
	if (ran < 3 || rets[2] || (want && *mapped != want))
		return opus_err(ran < 3	  ? (int)rets[1]
				: rets[2] ? (int)rets[2]
					  : -EFAULT,
				"process %d: mapping a page of %s failed", (int)t->pid, m->path);
	if (!same_file(t, *mapped, m))
		return opus_err(-ENOTSUP,
				"process %d: %s on disk is not the file mapped at 0x%" PRIx64,
				(int)t->pid, m->path, m->start);
	return 0;
}

/* The page-to-be filled, made r-x and moved over the code page. */
static int move_in(struct txn *t, uint64_t page, const uint8_t *content, uint64_t scratch)
{
	struct inject_call calls[2] = {
	    {SYS_mprotect, {scratch, SWAP_PAGE, PROT_READ | PROT_EXEC}, {0}},
	    {SYS_mremap, {scratch, SWAP_PAGE, SWAP_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, page}, {0}},
	};
	struct injector in = {0};
	long rets[2] = {0};
	size_t ran = 0;
	int ret = mem_write(t->mem_fd, scratch, content, SWAP_PAGE);

	if (!ret)
		ret = opus_fault("building a page to swap in");
	if (!ret)
		ret = txn_injector(t, &in);
	if (!ret)
		ret = txn_remote_calls(t, &in, calls, 2, rets, &ran);
	if (!ret && (ran < 2 || rets[1] != (long)page))
		ret = opus_err(ran < 2	     ? (int)rets[0]
			       : rets[1] < 0 ? (int)rets[1]
					     : -EFAULT,
			       "process %d: %s of the new page over 0x%" PRIx64, (int)t->pid,
			       ran < 2 ? "mprotect" : "mremap", page);
	return ret;
}

int swap_code_page(struct txn *t, uint64_t page, const uint8_t content[SWAP_PAGE], uint64_t scratch)
{
	const struct proc_map *m = NULL;
	uint8_t now[SWAP_PAGE];
	uint64_t built = 0;
	long r = 0;
	int ret = swappable(t, page, &m);

	if (!ret)
		ret = map_file_page(t, m, page, scratch, &built);
	if (!ret)
		ret = move_in(t, page, content, built);
	/* Not moved: the page-to-be goes, whatever the step that failed. */
	if (ret && built)
		txn_remote(t, SYS_munmap, built, SWAP_PAGE, 0, 0, 0, 0, &r);
	if (!ret &&
	    (mem_read(t->mem_fd, page, now, sizeof(now)) || memcmp(now, content, SWAP_PAGE)))
		ret = opus_err(-EIO,
			       "process %d: the page at 0x%" PRIx64 " is not what was swapped in",
			       (int)t->pid, page);
	return ret;
}
