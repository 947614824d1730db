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

/* The target opens the mapping's path itself (in its own mount
 * namespace); the descriptor must lead to the very file mapped there. */
static int open_in_target(struct txn *t, struct injector *in, const struct proc_map *m, long *fd)
{
	char link[64];
	struct stat st;
	uint64_t path;
	long r;
	int ret = inject_push_string(in, m->path, &path);

	if (!ret)
		ret = inject_syscall(in, SYS_openat,
				     (uint64_t[6]){(uint64_t)AT_FDCWD, path, O_RDONLY | O_CLOEXEC},
				     fd);
	if (ret)
		return ret;
	if (*fd < 0)
		return opus_err(-ENOTSUP, "process %d cannot open %s again: %s", (int)t->pid,
				m->path, strerror((int)-*fd));
	snprintf(link, sizeof(link), "/proc/%d/fd/%ld", (int)proc_view_id(t->pid), *fd);
	if (!stat(link, &st) && st.st_dev == m->dev && st.st_ino == m->inode)
		return 0;
	inject_syscall(in, SYS_close, (uint64_t[6]){(uint64_t)*fd}, &r);
	return opus_err(-ENOTSUP, "process %d: %s on disk is not the file mapped at 0x%" PRIx64,
			(int)t->pid, m->path, m->start);
}

/* The file's page, mapped privately at scratch (or anywhere), holding
 * content, r-x: the page-to-be. */
static int build_page(struct txn *t, struct injector *in, const struct proc_map *m, uint64_t page,
		      const uint8_t *content, uint64_t *scratch)
{
	uint64_t off = m->offset + (page - m->start);
	long fd, addr, r = 0;
	int ret = open_in_target(t, in, m, &fd);

	if (ret)
		return ret;
	ret = inject_syscall(in, SYS_mmap,
			     (uint64_t[6]){*scratch, SWAP_PAGE, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | (*scratch ? MAP_FIXED : 0), (uint64_t)fd,
					   off},
			     &addr);
	if (!inject_syscall(in, SYS_close, (uint64_t[6]){(uint64_t)fd}, &r) && r && !ret)
		ret = opus_err((int)r, "process %d: closing %s", (int)t->pid, m->path);
	if (ret)
		return ret;
	if (addr < 0 || (*scratch && (uint64_t)addr != *scratch))
		return opus_err(addr < 0 ? (int)addr : -EFAULT,
				"process %d: mapping a page of %s failed", (int)t->pid, m->path);
	*scratch = (uint64_t)addr;
	ret = mem_write(t->mem_fd, *scratch, content, SWAP_PAGE);
	if (!ret)
		ret = inject_syscall(in, SYS_mprotect,
				     (uint64_t[6]){*scratch, SWAP_PAGE, PROT_READ | PROT_EXEC}, &r);
	if (!ret && r)
		ret = opus_err((int)r, "process %d: mprotect of the new page", (int)t->pid);
	return ret;
}

int swap_code_page(struct txn *t, uint64_t page, const uint8_t content[SWAP_PAGE], uint64_t scratch)
{
	const struct proc_map *m = NULL;
	struct injector in = {0};
	uint8_t now[SWAP_PAGE];
	long r = 0;
	int ret = swappable(t, page, &m);

	if (!ret)
		ret = txn_injector(t, &in);
	if (!ret)
		ret = build_page(t, &in, m, page, content, &scratch);
	if (!ret)
		ret = opus_fault("building a page to swap in");
	if (!ret)
		ret = inject_syscall(&in, SYS_mremap,
				     (uint64_t[6]){scratch, SWAP_PAGE, SWAP_PAGE,
						   MREMAP_MAYMOVE | MREMAP_FIXED, page},
				     &r);
	if (!ret && r != (long)page)
		ret = opus_err(r < 0 ? (int)r : -EFAULT, "process %d: mremap over 0x%" PRIx64,
			       (int)t->pid, page);
	/* Not moved: the page-to-be goes, whatever the step that failed. */
	if (ret && scratch && in.t)
		inject_syscall(&in, SYS_munmap, (uint64_t[6]){scratch, SWAP_PAGE}, &r);
	if (!ret &&
	    (mem_read(t->mem_fd, page, now, sizeof(now)) || memcmp(now, content, SWAP_PAGE)))
		ret = opus_err(-EIO,
			       "process %d: the page at 0x%" PRIx64 " is not what was swapped in",
			       (int)t->pid, page);
	return ret;
}
