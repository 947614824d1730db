#include "proc.h"
#include "util/err.h"
#include "util/file.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* A number in base ending at sep, which is skipped. Strict: the kernel
 * writes no sign, prefix or padding before it. */
static bool number(char **p, int base, char sep, unsigned long long *v)
{
	char *end;

	if (!isxdigit((unsigned char)**p))
		return false;
	errno = 0;
	*v = strtoull(*p, &end, base);
	if (errno || *end != sep)
		return false;
	*p = end + 1;
	return true;
}

/* "start-end perms offset major:minor inode   path": hand-parsed (sscanf
 * costs a fleet run more than the reads do). The path is the rest of the
 * line after the padding, "" for an anonymous mapping. */
static int parse_line(char *line, struct proc_map *m)
{
	unsigned long long start, end, off, major, minor, inode;
	char *p = line, *eol = line + strcspn(line, "\n");

	*eol = '\0';
	if (!number(&p, 16, '-', &start) || !number(&p, 16, ' ', &end) || end < start ||
	    strlen(p) < 5 || p[4] != ' ')
		return -EINVAL;
	memcpy(m->perms, p, 4);
	m->perms[4] = '\0';
	p += 5;
	if (!number(&p, 16, ' ', &off) || !number(&p, 16, ':', &major) ||
	    !number(&p, 16, ' ', &minor) || !isdigit((unsigned char)*p))
		return -EINVAL;
	inode = strtoull(p, &p, 10);
	if (*p && *p != ' ')
		return -EINVAL;
	p += strspn(p, " ");
	m->start = start;
	m->end = end;
	m->offset = off;
	m->dev = makedev(major, minor);
	m->inode = inode;
	m->path = strdup(p);
	return m->path ? 0 : -ENOMEM;
}

/* id's /proc/ID/maps, for process pid. */
static int read_maps(pid_t pid, pid_t id, struct proc_maps *out)
{
	char path[64], *text;
	size_t len;
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)id);
	ret = opus_read_file(path, &text, &len);
	if (ret)
		return opus_err(ret, "process %d: cannot read its memory map (%s)", (int)pid,
				strerror(-ret));
	ret = proc_maps_parse(path, text, out);
	free(text);
	return ret;
}

int proc_maps_read(pid_t pid, struct proc_maps *out)
{
	pid_t view;
	int ret;

	/* The process's own entry first: it shows no mapping only if its main
	 * thread has exited (or it is a kernel thread), and only then is the
	 * view looked up (two more reads of /proc: apply --all reads the map
	 * of every process). */
	if ((ret = read_maps(pid, pid, out)) || out->n || (view = proc_view_id(pid)) == pid)
		return ret;
	proc_maps_free(out);
	return read_maps(pid, view, out);
}

int proc_maps_parse(const char *name, char *text, struct proc_maps *out)
{
	char *line, *next;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	for (line = text; !ret && *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (OPUS_PUSH(out->v, out->n, out->cap)) {
			ret = -ENOMEM;
			break;
		}
		ret = parse_line(line, &out->v[out->n]);
		if (!ret)
			out->n++;
		else
			ret = opus_err(ret, "%s: malformed line", name);
	}
	if (ret)
		proc_maps_free(out);
	return ret;
}

bool proc_map_is(const struct proc_map *m, const char *path)
{
	size_t n = strlen(path);

	return !strncmp(m->path, path, n) &&
	       (m->path[n] == '\0' || !strcmp(m->path + n, " (deleted)"));
}

const struct proc_map *proc_map_at(const struct proc_maps *maps, uint64_t addr)
{
	for (size_t i = 0; i < maps->n; i++)
		if (addr >= maps->v[i].start && addr < maps->v[i].end)
			return &maps->v[i];
	return NULL;
}

void proc_maps_free(struct proc_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* Numeric entries of dir: the processes of /proc or the threads of a task
 * directory. */
static int numeric_entries(const char *path, pid_t **ids, size_t *n)
{
	struct dirent *d;
	size_t cap = 0;
	DIR *dir;

	*ids = NULL;
	*n = 0;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		if (OPUS_PUSH(*ids, *n, cap)) {
			closedir(dir);
			free(*ids);
			*ids = NULL;
			*n = 0;
			return -ENOMEM;
		}
		(*ids)[(*n)++] = (pid_t)atoi(d->d_name);
	}
	closedir(dir);
	return 0;
}

int proc_pids(pid_t **pids, size_t *n)
{
	int ret = numeric_entries("/proc", pids, n);

	return ret ? opus_err(ret, "cannot list /proc (%s)", strerror(-ret)) : 0;
}

int proc_comm(pid_t pid, char comm[PROC_COMM_MAX])
{
	char path[64], *text;
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	ret = opus_read_file(path, &text, &len);
	if (ret) {
		snprintf(comm, PROC_COMM_MAX, "?");
		return ret;
	}
	text[strcspn(text, "\n")] = '\0';
	snprintf(comm, PROC_COMM_MAX, "%s", text);
	free(text);
	return 0;
}

int proc_tids(pid_t pid, pid_t **tids, size_t *n)
{
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	ret = numeric_entries(path, tids, n);
	if (ret)
		return opus_err(ret, "process %d: %s", (int)pid,
				ret == -ENOENT ? "no such process" : strerror(-ret));
	return 0;
}

int proc_each_fd(pid_t pid, int (*fn)(void *ctx, int fd, const char *target), void *ctx)
{
	char dir[64], link[384], target[256];
	struct dirent *d;
	DIR *dh;
	int ret = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)proc_view_id(pid));
	if (!(dh = opendir(dir)))
		return opus_err(-errno, "process %d: %s: %s", (int)pid, dir, strerror(errno));
	while (!ret && (d = readdir(dh))) {
		ssize_t n;

		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, d->d_name);
		if ((n = readlink(link, target, sizeof(target) - 1)) <= 0)
			continue;
		target[n] = '\0';
		ret = fn(ctx, atoi(d->d_name), target);
	}
	closedir(dh);
	return ret;
}

/* /proc/ID/NAME in one read into buf, without allocating (it is read
 * while threads are held): false if it cannot be read. */
static bool read_small(pid_t id, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)id, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Field n (1-based, as proc(5) counts) of /proc/ID/stat; 0 if unread. */
static uint64_t stat_field(pid_t id, int n)
{
	char buf[1024], *p;
	unsigned long long v = 0;

	/* The name before ")" may hold spaces. */
	if (!read_small(id, "stat", buf, sizeof(buf)) || !(p = strrchr(buf, ')')))
		return 0;
	for (int field = 2; field < n && p; field++)
		p = strchr(p + 1, ' ');
	return p && sscanf(p + 1, "%llu", &v) == 1 ? v : 0;
}

uint64_t proc_start_stack(pid_t pid)
{
	return stat_field(proc_view_id(pid), 28);
}

#define PF_IO_WORKER 0x10 /* linux/sched.h: the task is an io_uring worker */

bool proc_thread_io_worker(pid_t tid, const struct user_regs_struct *regs)
{
	/* The kernel zeroes an io thread's stack and instruction pointers
	 * for debuggers to see (x86's copy_thread); only such a thread
	 * pays for the read of its flags. */
	return !regs->rip && !regs->rsp && stat_field(tid, 9) & PF_IO_WORKER;
}

int proc_task_dir(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

long proc_thread_count(int dir)
{
	struct stat st;

	/* proc_task_getattr adds the group's thread count to the two links
	 * of any directory, at every stat. */
	if (dir < 0 || fstat(dir, &st) < 0 || st.st_nlink < 2)
		return -1;
	return (long)st.st_nlink - 2;
}

static __thread struct {
	pid_t pid, view; /* pid 0: nothing pinned */
} pinned;

/* The view as /proc shows it now. */
static int look_up_view(pid_t pid, pid_t *view)
{
	char path[64];
	pid_t *tids;
	size_t n;
	int ret;

	*view = pid;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (access(path, F_OK))
		return opus_err(-ESRCH, "process %d: no such process", (int)pid);
	if (!proc_thread_dead(pid))
		return 0;
	/* Its main thread called pthread_exit: the others carry it on. */
	if ((ret = proc_tids(pid, &tids, &n)))
		return ret;
	ret = opus_err(-ESRCH, "process %d: is a zombie", (int)pid);
	for (size_t i = 0; i < n && ret; i++)
		if (tids[i] != pid && !proc_thread_dead(tids[i])) {
			*view = tids[i];
			ret = 0;
		}
	free(tids);
	return ret;
}

int proc_view(pid_t pid, pid_t *view)
{
	if (pinned.pid && pinned.pid == pid) {
		*view = pinned.view;
		return 0;
	}
	return look_up_view(pid, view);
}

int proc_view_pin(pid_t pid)
{
	pid_t view;
	int ret;

	proc_view_unpin();
	if ((ret = look_up_view(pid, &view)))
		return ret;
	pinned.pid = pid;
	pinned.view = view;
	return 0;
}

void proc_view_unpin(void)
{
	pinned.pid = 0;
}

pid_t proc_view_id(pid_t pid)
{
	pid_t view = pid;

	return proc_view(pid, &view) ? pid : view;
}

int proc_check_alive(pid_t pid)
{
	pid_t view;

	return look_up_view(pid, &view);
}

int proc_status_u64(pid_t pid, const char *key, int base, uint64_t *out)
{
	char path[64], *text, *line;
	size_t len, klen = strlen(key);
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((ret = opus_read_file(path, &text, &len)))
		return ret;
	ret = -ENODATA;
	for (line = text; line && ret; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			*out = strtoull(line + klen + 1, NULL, base);
			ret = 0;
		}
	free(text);
	return ret;
}

/* The TracerPid of /proc/PID/status, 0 if none or unreadable. */
static pid_t tracer_of(pid_t pid)
{
	uint64_t tracer;

	return proc_status_u64(pid, "TracerPid", 10, &tracer) ? 0 : (pid_t)tracer;
}

/* Whether any thread of process pid waits for its vfork child. */
static bool waits_for_vfork_child(pid_t pid)
{
	pid_t *tids;
	size_t n;
	bool waits = false;

	if (proc_tids(pid, &tids, &n))
		return false;
	for (size_t i = 0; i < n && !waits; i++)
		waits = proc_thread_in_vfork(tids[i]);
	free(tids);
	return waits;
}

/* A process whose memory its parent shares (a vfork child before its
 * exec, a clone with CLONE_VM): its parent's threads run that memory's
 * code, and opus stops only the process it patches. kcmp says; without
 * it, a parent waiting for a vfork child does. */
static int check_memory_not_shared(pid_t pid, pid_t view, pid_t ppid)
{
	long same = ppid > 1 ? syscall(SYS_kcmp, view, ppid, KCMP_VM, 0, 0) : 1;

	if (same < 0)
		same = !waits_for_vfork_child(ppid);
	if (same != 0)
		return 0;
	return opus_err(-EXDEV,
			"process %d shares its memory with its parent, process %d (a vfork child "
			"that has not called exec yet, or a clone with CLONE_VM); opus patches "
			"the parent, once no other process shares its memory",
			(int)pid, (int)ppid);
}

int proc_children_open(int task_dir, pid_t tid)
{
	char name[32];

	snprintf(name, sizeof(name), "%d/children", (int)tid);
	return task_dir < 0 ? -1 : openat(task_dir, name, O_RDONLY | O_CLOEXEC);
}

/* The children of thread tid of process view, read from fd (opened by
 * proc_children_open) or, if -1, by path: false if unreadable. */
static bool read_children(pid_t view, pid_t tid, int fd, char *buf, size_t size)
{
	char name[64];
	ssize_t n;

	if (fd < 0) {
		snprintf(name, sizeof(name), "task/%d/children", (int)tid);
		return read_small(view, name, buf, size);
	}
	if ((n = pread(fd, buf, size - 1, 0)) < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* A child of thread tid of process view that shares the process's memory
 * without being one of its threads (a clone with CLONE_VM alone); 0 if
 * none. kcmp says; where it cannot, none is assumed, as before it was
 * looked for. */
static pid_t vm_child_of(pid_t view, pid_t tid, int fd)
{
	char buf[16384], *p, *end;

	if (!read_children(view, tid, fd, buf, sizeof(buf)))
		return 0;
	for (p = buf;; p = end) {
		long child = strtol(p, &end, 10);

		if (end == p)
			return 0;
		if (child > 0 && syscall(SYS_kcmp, view, (pid_t)child, KCMP_VM, 0, 0) == 0)
			return (pid_t)child;
	}
}

int proc_check_vm_child(pid_t pid, pid_t tid, int children_fd)
{
	pid_t child = vm_child_of(proc_view_id(pid), tid, children_fd);

	if (!child)
		return 0;
	/* Not -EXDEV: that says the process is the child, covered by
	 * patching its parent (apply --all counts it so). */
	return opus_err(-ECHILD,
			"process %d shares its memory with process %d, a child cloned with "
			"CLONE_VM that is not one of its threads: that child runs the code opus "
			"would replace and is not stopped with the process; not supported",
			(int)pid, (int)child);
}

bool proc_has_vm_child(pid_t pid)
{
	pid_t view = proc_view_id(pid), *tids = NULL;
	size_t n = 0;
	bool found = false;

	if (proc_tids(view, &tids, &n))
		return false;
	for (size_t i = 0; i < n && !found; i++)
		found = vm_child_of(view, tids[i], -1) && !proc_thread_in_vfork(tids[i]);
	free(tids);
	return found;
}

/* Thread tid's child cloned with CLONE_VM alone. A vfork child is waited
 * for: its parent sleeps until it execs, and the stop waits for that. But
 * a parent still on its way into that sleep is "running" in
 * /proc/TID/syscall, and its child already shares its memory: the expat
 * suite's spawning server was refused so in CI. Such a child is looked at
 * again for up to 10 ms: a vfork child execs or its parent sleeps by then,
 * a CLONE_VM child stays. */
static int check_thread_children(pid_t pid, pid_t tid)
{
	int ret = 0;

	for (int i = 0; i < 10; i++) {
		if (i)
			nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
		if (proc_thread_in_vfork(tid) || !(ret = proc_check_vm_child(pid, tid, -1)))
			return 0;
	}
	return ret;
}

static int check_children(pid_t pid, pid_t view)
{
	pid_t *tids = NULL;
	size_t n = 0;
	int ret = proc_tids(view, &tids, &n);

	for (size_t i = 0; !ret && i < n; i++)
		ret = check_thread_children(pid, tids[i]);
	free(tids);
	return ret;
}

int proc_check_patchable(pid_t pid)
{
	char path[64], *text, *state, comm[PROC_COMM_MAX];
	size_t len;
	pid_t tracer, view;
	int ret = proc_view(pid, &view);

	if (ret)
		return ret;
	if ((tracer = tracer_of(view)) && tracer != getpid()) {
		proc_comm(tracer, comm);
		return opus_err(-EBUSY,
				"process %d is traced by %s (pid %d); opus cannot attach while "
				"another debugger is",
				(int)pid, comm, (int)tracer);
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)view);
	if (opus_read_file(path, &text, &len))
		return opus_err(-ESRCH, "process %d: no such process", (int)pid);
	state = strrchr(text, ')');
	/* Patching needs the process to run a little (injected syscalls); a
	 * stopped process is left stopped and untouched. */
	ret = state && state[1] == ' ' && state[2] == 'T'
		  ? opus_err(-EAGAIN,
			     "process %d is stopped (SIGSTOP or job control); opus leaves it as it "
			     "is: continue it (kill -CONT %d) and run opus again",
			     (int)pid, (int)pid)
		  : 0;
	if (!ret && state)
		ret = check_memory_not_shared(pid, view, (pid_t)strtol(state + 4, NULL, 10));
	free(text);
	if (!ret)
		ret = check_children(pid, view);
	return ret;
}

int proc_start_time(pid_t pid, unsigned long long *start)
{
	char path[64], *text, *p;
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((ret = opus_read_file(path, &text, &len)))
		return ret;
	p = strrchr(text, ')');
	ret = p && sscanf(p + 2,
			  "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			  "%*d %*d %llu",
			  start) == 1
		  ? 0
		  : -EINVAL;
	free(text);
	return ret;
}

bool proc_thread_in_vfork(pid_t tid)
{
	char buf[256];
	unsigned long long arg0 = 0;
	long nr;

	/* "running", or the number of the call it sleeps in and its
	 * arguments in hex. */
	if (!read_small(tid, "syscall", buf, sizeof(buf)) ||
	    sscanf(buf, "%ld 0x%llx", &nr, &arg0) < 1)
		return false;
	/* clone3's flags are behind a pointer: any sleep in it counts, at
	 * worst a stop is tried again for nothing. */
	return nr == SYS_vfork || nr == SYS_clone3 || (nr == SYS_clone && (arg0 & CLONE_VFORK));
}

char proc_thread_state(pid_t tid)
{
	char buf[512], *p;

	/* After the name, which may hold ") ": "NAME) S ...". */
	if (!read_small(tid, "stat", buf, sizeof(buf)) || !(p = strrchr(buf, ')')) || !p[1])
		return 0;
	return p[2];
}

uint64_t proc_thread_cpu_ns(pid_t tid)
{
	char buf[128];
	unsigned long long ns;

	/* schedstat's first field counts nanoseconds; stat's utime and
	 * stime count clock ticks of 10 ms. */
	if (read_small(tid, "schedstat", buf, sizeof(buf)) && sscanf(buf, "%llu", &ns) == 1)
		return ns;
	return (stat_field(tid, 14) + stat_field(tid, 15)) * (uint64_t)(1e9 / sysconf(_SC_CLK_TCK));
}

void proc_thread_wchan(pid_t tid, char *buf, size_t size)
{
	if (!read_small(tid, "wchan", buf, size) || !strcmp(buf, "0"))
		*buf = '\0';
}

bool proc_thread_dead(pid_t tid)
{
	char state = proc_thread_state(tid);

	return !state || state == 'Z' || state == 'X';
}
