#include "lock.h"
#include "proc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "opus-lock 1\n"

static char lock_dir[PATH_MAX];
static pthread_once_t lock_dir_once = PTHREAD_ONCE_INIT;

static void find_lock_dir(void)
{
	const char *env = getenv("OPUS_LOCK_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		snprintf(lock_dir, sizeof(lock_dir), "%s", env);
	else if (geteuid() == 0)
		snprintf(lock_dir, sizeof(lock_dir), "/run/opus");
	else if (xdg && *xdg)
		snprintf(lock_dir, sizeof(lock_dir), "%s/opus", xdg);
	else
		snprintf(lock_dir, sizeof(lock_dir), "/tmp/opus-%u", (unsigned)geteuid());
}

/* Found once: the workers of apply --all read it at the same time. */
const char *target_lock_dir(void)
{
	pthread_once(&lock_dir_once, find_lock_dir);
	return lock_dir;
}

static pthread_once_t swept = PTHREAD_ONCE_INIT;

/* The lock files of processes that are gone: a killed opus leaves its
 * journal for the next one, and none comes once the process has exited (or
 * its pid belongs to another process now). Taken out once per opus, each
 * under its lock, so that no file anyone holds goes. */
static void sweep_dead(void)
{
	const char *dir = target_lock_dir();
	unsigned long long start, now;
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dp;
	int pid, fd;

	if (!(dp = opendir(dir)))
		return;
	while ((d = readdir(dp))) {
		if (sscanf(d->d_name, "%d-%llu.lock", &pid, &start) != 2 || pid <= 0)
			continue;
		if (!proc_start_time(pid, &now) && now == start)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (!flock(fd, LOCK_EX | LOCK_NB))
			unlink(path);
		close(fd);
	}
	closedir(dp);
}

/* Room for one more nonce (a journal holds a few at most). */
static int grow_journal(struct target_lock *l)
{
	void *p = realloc(l->nonces, (l->n + 1) * sizeof(*l->nonces));

	if (!p)
		return -ENOMEM;
	l->nonces = p;
	return 0;
}

/* The state over the old one, padded with empty lines to its length: a
 * truncation costs a journal commit on a disk file system. */
static int write_state(struct target_lock *l)
{
	struct opus_buf b = {0};
	int ret = 0;

	opus_buf_printf(&b, MAGIC "holder %d\n", (int)getpid());
	for (size_t i = 0; i < l->n; i++)
		opus_buf_printf(&b, "begun %s\n", l->nonces[i]);
	while (b.data && b.len < l->len)
		opus_buf_printf(&b, "\n");
	if (!b.data || pwrite(l->fd, b.data, b.len, 0) != (ssize_t)b.len)
		ret = opus_err(-EIO, "%s: cannot write the journal", l->path);
	else
		l->len = b.len;
	opus_buf_free(&b);
	return ret;
}

/* What a killed opus journaled here: its nonces; and who holds it now. */
static int read_state(struct target_lock *l, int *holder)
{
	char buf[8192], *line, *save = NULL;
	ssize_t n = pread(l->fd, buf, sizeof(buf) - 1, 0);

	*holder = 0;
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	l->len = (size_t)n;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char nonce[LOCK_NONCE_LEN + 1];

		if (sscanf(line, "holder %d", holder) == 1)
			continue;
		if (sscanf(line, "begun %16s", nonce) != 1 || strlen(nonce) != LOCK_NONCE_LEN)
			continue;
		if (grow_journal(l))
			return -ENOMEM;
		memcpy(l->nonces[l->n++], nonce, sizeof(nonce));
	}
	return 0;
}

/* The path still names the file we locked: the last holder unlinks it
 * (locked) when its journal is empty, and whoever locked the unlinked
 * file must start again on a new one. */
static bool still_linked(const struct target_lock *l)
{
	struct stat a, b;

	return !fstat(l->fd, &a) && !stat(l->path, &b) && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* 0 locked, -EAGAIN to try again (the file went away), or an error. */
static int lock_file(struct target_lock *l, uint64_t deadline)
{
	int holder;

	l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return opus_err(-errno, "%s: %s", l->path, strerror(errno));
	while (flock(l->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK || opus_now_ns() >= deadline) {
			read_state(l, &holder);
			l->n = 0;
			close(l->fd); /* not ours to unlink */
			l->fd = -1;
			free(l->nonces);
			l->nonces = NULL;
			return opus_err(-EBUSY,
					"process %d: another opus (pid %d) is acting on it; try "
					"again when it is done",
					(int)l->pid, holder);
		}
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	if (still_linked(l))
		return 0;
	close(l->fd);
	l->fd = -1;
	return -EAGAIN;
}

int target_lock(pid_t pid, double timeout_s, struct target_lock *l)
{
	uint64_t deadline = opus_now_ns() + (uint64_t)(timeout_s * 1e9);
	unsigned long long start;
	const char *dir = target_lock_dir();
	int ret, holder;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->pid = pid;
	if ((ret = proc_start_time(pid, &start)))
		return opus_err(-ESRCH, "process %d: no such process", (int)pid);
	if ((ret = opus_private_dir(dir, "lock directory", false)))
		return ret;
	/* Once per opus, whichever of apply --all's workers comes first. */
	pthread_once(&swept, sweep_dead);
	snprintf(l->path, sizeof(l->path), "%s/%d-%llu.lock", dir, (int)pid, start);
	while ((ret = lock_file(l, deadline)) == -EAGAIN)
		;
	if (ret)
		return ret;
	if ((ret = read_state(l, &holder)) || (ret = write_state(l))) {
		target_unlock(l);
		return ret;
	}
	return 0;
}

void target_unlock(struct target_lock *l)
{
	/* A file with nothing journaled goes, unlinked while still locked:
	 * one waiting on it finds it unlinked and starts again (lock_file).
	 * One with a journal stays for the next opus to recover from. */
	if (l->fd >= 0) {
		if (!l->n)
			unlink(l->path);
		close(l->fd);
	}
	free(l->nonces);
	l->nonces = NULL;
	l->n = 0;
	l->fd = -1;
}

int target_journal_begin(struct target_lock *l, char nonce[LOCK_NONCE_LEN + 1])
{
	uint8_t raw[LOCK_NONCE_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return opus_err(-EIO, "getrandom: %s", strerror(errno));
	opus_hex_encode(raw, sizeof(raw), nonce);
	if (grow_journal(l))
		return -ENOMEM;
	memcpy(l->nonces[l->n++], nonce, LOCK_NONCE_LEN + 1);
	return write_state(l);
}

int target_journal_add(struct target_lock *l, const char *nonce)
{
	if (target_journal_has(l, nonce))
		return 0;
	if (strlen(nonce) != LOCK_NONCE_LEN || grow_journal(l))
		return -EINVAL;
	memcpy(l->nonces[l->n++], nonce, LOCK_NONCE_LEN + 1);
	return write_state(l);
}

int target_journal_end(struct target_lock *l, const char *nonce)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->nonces[i], nonce)) {
			memmove(l->nonces[i], l->nonces[i + 1],
				(l->n - i - 1) * sizeof(*l->nonces));
			l->n--;
			return write_state(l);
		}
	return 0;
}

bool target_journal_has(const struct target_lock *l, const char *nonce)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strncmp(l->nonces[i], nonce, LOCK_NONCE_LEN))
			return true;
	return false;
}

int target_journal_clear(struct target_lock *l)
{
	if (!l->n)
		return 0;
	l->n = 0;
	return write_state(l);
}

int target_journal_peek(pid_t pid, struct target_lock *l)
{
	unsigned long long start;
	int holder, ret;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->pid = pid;
	if ((ret = proc_start_time(pid, &start)))
		return ret;
	snprintf(l->path, sizeof(l->path), "%s/%d-%llu.lock", target_lock_dir(), (int)pid, start);
	l->fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (l->fd < 0)
		return errno == ENOENT ? 0 : -errno;
	ret = read_state(l, &holder);
	close(l->fd);
	l->fd = -1;
	return ret;
}
