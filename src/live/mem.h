/* Target memory through /proc/PID/mem: bulk reads and writes that also
 * reach read-only text (the kernel breaks copy-on-write for the tracer). */
#ifndef OPUS_LIVE_MEM_H
#define OPUS_LIVE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

int mem_open(pid_t pid);
int mem_read(int fd, uint64_t addr, void *buf, size_t len);
/* A NUL-terminated string of at most size - 1 bytes into buf. */
int mem_read_string(int fd, uint64_t addr, char *buf, size_t size);
/* Spans of the process (view_pid: the pid it has in opus's view) read
 * into buf in a row, each at its place whether or not it could be read:
 * one process_vm_readv per IOV_MAX spans, and where opus may not use it
 * (a container's filter) or it stopped short, a read of fd, the memory
 * file, for each span left. whole[i] says if span i was read whole; how
 * many were. A failed read is not an error here: it sets no message. */
size_t mem_read_spans(pid_t view_pid, int fd, const struct iovec *spans, size_t n, void *buf,
		      bool *whole);
int mem_write(int fd, uint64_t addr, const void *buf, size_t len);

#endif
