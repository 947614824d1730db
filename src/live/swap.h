/* Changing a page of a process's code while its other threads run it
 * (issue 15): the new page is built beside the old one and moved over it
 * with mremap, so no CPU ever runs from a page being written. A thread
 * that fetches from the page meanwhile waits for the mmap lock and runs
 * from the new one; every instruction it sees is the old page's or the
 * new page's, never a mix (docs/reliability.md, "A way without int3").
 * So only whole instructions may change: a thread preempted inside a
 * replaced instruction would resume in the middle of its replacement.
 * Deciding that is the caller's (insn.h).
 *
 * The new page is the same file's page, mapped privately by the target
 * (an injected openat of the mapping's path, checked to be the mapped file
 * by its device and inode), so /proc/PID/maps, and every tool that reads
 * it, still names the binary at that address. */
#ifndef OPUS_LIVE_SWAP_H
#define OPUS_LIVE_SWAP_H

#include <stdint.h>

#define SWAP_PAGE 4096

struct txn;

/* Replace the code page at page (page-aligned, in t->maps) with content,
 * in one injected mremap, with one thread stopped to run the syscalls and
 * the others running (in two resumes of it where t->batch_stub is set).
 * scratch: a page of the caller's to build the new one at (replaced, then
 * left unmapped), or 0 for anywhere. 0 when done;
 * -ENOTSUP with the reason (not a private file mapping, its file not the
 * one mapped) when the page cannot be swapped this way, the process
 * unchanged; another -errno on failure, the page unchanged unless the
 * mremap itself ran. */
int swap_code_page(struct txn *t, uint64_t page, const uint8_t content[SWAP_PAGE],
		   uint64_t scratch);

#endif
