/* /proc/PID views: memory maps, threads, status. (The objects behind the
 * mappings are files.h's.) */
#ifndef OPUS_LIVE_PROC_H
#define OPUS_LIVE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct proc_map {
	uint64_t start, end, offset;
	char perms[5];
	uint64_t dev, inode; /* of the mapped file; 0 for anonymous mappings */
	char *path;	     /* "" for anonymous mappings */
};

struct proc_maps {
	struct proc_map *v;
	size_t n, cap;
};

int proc_maps_read(pid_t pid, struct proc_maps *out);
/* The same over a maps text (NUL-terminated; lines are cut in place). */
int proc_maps_parse(const char *name, char *text, struct proc_maps *out);
/* Whether m maps the file at path, also once it was deleted or replaced
 * (the kernel then appends " (deleted)"). */
bool proc_map_is(const struct proc_map *m, const char *path);
void proc_maps_free(struct proc_maps *m);
/* The mapping holding addr, or NULL. */
const struct proc_map *proc_map_at(const struct proc_maps *maps, uint64_t addr);

/* A loaded ELF object (executable or shared library) in the process, as
 * files_object_at finds it. */
struct proc_object {
	char path[4096]; /* readable path to the file, via /proc/PID/map_files */
	char name[4096]; /* the mapped path as the process sees it */
	uint64_t bias;	 /* load address minus link-time address */
	uint64_t lo, hi; /* address span of its mappings */
};

#define PROC_COMM_MAX 16

/* Every process id in /proc; a malloc'd array. */
int proc_pids(pid_t **pids, size_t *n);
/* The process's command name ("?" when it cannot be read). */
int proc_comm(pid_t pid, char comm[PROC_COMM_MAX]);
/* Thread ids of pid; a malloc'd array. */
int proc_tids(pid_t pid, pid_t **tids, size_t *n);
/* Calls fn with each of pid's open descriptors and what it leads to (its
 * /proc link: a path, "anon_inode:[eventpoll]", "socket:[N]"); one closed
 * meanwhile is left out. Stops at fn's first non-zero return, which it
 * returns; -errno with a message if the directory cannot be read. */
int proc_each_fd(pid_t pid, int (*fn)(void *ctx, int fd, const char *target), void *ctx);
/* Where the kernel started the main thread's stack (the address of argc,
 * /proc/PID/stat's startstack): its frames are all below. 0 if unknown. */
uint64_t proc_start_stack(pid_t pid);
/* The open directory /proc/PID/task, for proc_thread_count; -errno. */
int proc_task_dir(pid_t pid);
/* How many threads the kernel counts in the process whose task directory
 * is dir (one fstat: the directory has two links more than that); -1 if
 * it cannot say. Dead threads not yet reaped count. */
long proc_thread_count(int dir);
/* The id through which the process's memory, maps, descriptors and
 * executable are seen in /proc: pid itself, or, when its main thread has
 * exited (a zombie) while others run on, a live thread's. -ESRCH with a
 * message when no thread of it lives. */
int proc_view(pid_t pid, pid_t *view);
/* The same, or pid itself if none lives (what then fails says so). */
pid_t proc_view_id(pid_t pid);
/* Fix pid's view for this thread until proc_view_unpin: a transaction asks
 * for it some twenty times, and each answer costs two /proc lookups. Should
 * the main thread exit meanwhile, what is read through it fails, as any
 * read fails when a process exits under opus. */
int proc_view_pin(pid_t pid);
void proc_view_unpin(void);
/* Fails with a clear message if pid does not exist or no thread of it lives. */
int proc_check_alive(pid_t pid);
/* The number after "key:" in /proc/PID/status, read in base (16 for the
 * signal masks); -ENODATA when the kernel shows no such line. */
int proc_status_u64(pid_t pid, const char *key, int base, uint64_t *out);
/* The state letter /proc/TID/stat shows (R, S, D, t, Z...); 0 if unread. */
char proc_thread_state(pid_t tid);
/* The kernel function the thread sleeps in (/proc/TID/wchan); "" if none. */
void proc_thread_wchan(pid_t tid, char *buf, size_t size);
/* The CPU time the thread has run, in ns (10 ms steps where the kernel
 * keeps no schedstat). */
uint64_t proc_thread_cpu_ns(pid_t tid);
/* A thread (any tid) that exited: gone from /proc, or a zombie. */
bool proc_thread_dead(pid_t tid);
/* Is the stopped thread tid, whose registers are regs, one of io_uring's
 * workers (iou-wrk, iou-sqp)? It shows in the thread group and stops like
 * any thread, but runs only in the kernel: no code of the program is on
 * its stack, which it has none of, and its other registers are a stale
 * copy of the thread that made it. */
bool proc_thread_io_worker(pid_t tid, const struct user_regs_struct *regs);
/* A thread (any tid) blocked in vfork, or in a clone that may carry
 * CLONE_VFORK: it sleeps until its child execs or exits, and no ptrace
 * stop reaches it before then. */
bool proc_thread_in_vfork(pid_t tid);
/* Alive, not stopped, not traced by another debugger; else a clear error:
 * -EXDEV for a process whose memory its parent shares (a vfork child
 * before its exec), which patching its parent covers; -ECHILD for one
 * that shares its memory with a child (proc_check_vm_child). */
int proc_check_patchable(pid_t pid);
/* -ECHILD with a message if a child of thread tid of pid shares its
 * memory without being one of its threads (clone with CLONE_VM alone): it
 * would run the replaced code unstopped. tid must not be in vfork, whose
 * child shares the memory until it execs, and is waited for.
 * children_fd: the thread's children file from proc_children_open, or -1. */
int proc_check_vm_child(pid_t pid, pid_t tid, int children_fd);
/* Whether a thread of pid, not in vfork, has a child that shares its
 * memory (proc_check_vm_child's case), looked for with the process
 * running: a hint to stop and check, never the check itself. */
bool proc_has_vm_child(pid_t pid);
/* /proc/PID/task/TID/children opened in task_dir (proc_task_dir), or -1. */
int proc_children_open(int task_dir, pid_t tid);

/* Field 22 of /proc/PID/stat: when the process started (clock ticks since
 * boot). With the pid it names one process for good. */
int proc_start_time(pid_t pid, unsigned long long *start);

#endif
