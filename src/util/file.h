/* Whole-file reads and small growable arrays. */
#ifndef OPUS_UTIL_FILE_H
#define OPUS_UTIL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read all of path into a malloc'd buffer (NUL-terminated, not counted in len). */
int opus_read_file(const char *path, char **buf, size_t *len);
/* The same from an open descriptor, to its end; name is for messages. */
int opus_read_fd(int fd, const char *name, char **buf, size_t *len);
int opus_write_file(const char *path, const void *buf, size_t len);
/* The same through a temporary file beside path and a rename: a reader
 * sees the old file or the whole new one, never half of it, and a symlink
 * at path is replaced, never followed. */
int opus_write_file_atomic(const char *path, const void *buf, size_t len);
/* A new temporary file beside path (tmp gets its name; mode as given),
 * created exclusively: the first half of an atomic write. An fd or -errno. */
int opus_tmp_beside(const char *path, mode_t mode, char *tmp, size_t len);
/* StrictModes, as sshd has it: path (what it is, for the message) must be
 * owned by root or by the invoking user and writable by no one else; a
 * secret also readable by no one else. -EPERM naming path otherwise. */
int opus_check_owner_mode(const char *path, const char *what, bool secret);
/* A directory only we may write in (where our locks or cached results
 * live: another user must not plant or forge them): made mode 0700 if
 * missing (with its missing parents too when parents), then required to be
 * a directory (not a link) owned by the effective uid and writable by no
 * one else. -errno, with a message naming dir as what, otherwise. */
int opus_private_dir(const char *dir, const char *what, bool parents);

/* An absolute path with "." and ".." components and doubled slashes
 * resolved lexically, in place (links are not followed: the compiler
 * walks the directories, but a rebase needs the spelling). */
void opus_normalize_path(char *path);

/* The last component of a path (a pointer into it). */
const char *opus_base_name(const char *path);

/* Make room for one more element in a malloc'd array; -ENOMEM on failure. */
int opus_grow(void *arrayp, size_t *cap, size_t count, size_t elem_size);
#define OPUS_PUSH(arr, count, cap) opus_grow(&(arr), &(cap), (count), sizeof(*(arr)))
/* qsort's order of two uint64_t. */
int opus_cmp_u64(const void *a, const void *b);
/* In n elements of size bytes each, sorted by the uint64_t each begins
 * with (opus_cmp_u64's order), the index of the first whose key is at
 * least key; n if none. */
size_t opus_lower_bound_u64(const void *base, size_t n, size_t size, uint64_t key);

#endif
