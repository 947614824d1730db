/* Target memory through /proc/PID/mem: bulk reads and writes that also
 * reach read-only text (the kernel breaks copy-on-write for the tracer). */
#ifndef OPUS_LIVE_MEM_H
#define OPUS_LIVE_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int mem_open(pid_t pid);
int mem_read(int fd, uint64_t addr, void *buf, size_t len);
/* A NUL-terminated string of at most size - 1 bytes into buf. */
int mem_read_string(int fd, uint64_t addr, char *buf, size_t size);
int mem_write(int fd, uint64_t addr, const void *buf, size_t len);

#endif
