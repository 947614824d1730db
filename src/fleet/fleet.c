#include "fleet.h"
#include "util/clock.h"
#include "util/elf.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A run that keeps finding new processes is a fork storm: stop somewhere. */
#define MAX_ROUNDS 64

/* ---- build-ids of mapped files ---- */

struct idcache_slot {
	uint64_t dev, inode;
	int len; /* build-id length; -errno if it has none or cannot be read */
	uint8_t id[OPUS_BUILD_ID_MAX];
	bool used;
};

static size_t slot_of(const struct idcache *c, uint64_t dev, uint64_t inode)
{
	size_t h = (size_t)((inode * 0x9e3779b97f4a7c15ull) ^ dev) & (c->cap - 1);

	while (c->v[h].used && (c->v[h].dev != dev || c->v[h].inode != inode))
		h = (h + 1) & (c->cap - 1);
	return h;
}

static int idcache_grow(struct idcache *c)
{
	struct idcache old = *c;

	c->cap = old.cap ? old.cap * 2 : 256;
	c->v = calloc(c->cap, sizeof(*c->v));
	if (!c->v) {
		*c = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.cap; i++)
		if (old.v[i].used)
			c->v[slot_of(c, old.v[i].dev, old.v[i].inode)] = old.v[i];
	free(old.v);
	return 0;
}

void idcache_free(struct idcache *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static int read_build_id(pid_t pid, const struct proc_map *m, uint8_t id[OPUS_BUILD_ID_MAX])
{
	char path[128];
	struct opus_elf e;
	int n;

	/* map_files reaches a file replaced or deleted on disk. */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
		 (int)proc_view_id(pid), m->start, m->end);
	if (opus_elf_open(path, &e))
		return -ENOENT;
	n = opus_elf_build_id(e.elf, id);
	opus_elf_close(&e);
	return n;
}

/* The cached build-id of the file behind m; its length or -errno. */
static int idcache_get(struct idcache *c, pid_t pid, const struct proc_map *m, const uint8_t **id)
{
	struct idcache_slot *s;
	size_t h;

	if (2 * (c->n + 1) > c->cap && idcache_grow(c))
		return -ENOMEM;
	h = slot_of(c, m->dev, m->inode);
	s = &c->v[h];
	if (!s->used) {
		s->len = read_build_id(pid, m, s->id);
		/* A process that exited mid-read says nothing about the file. */
		if (s->len == -ENOENT && kill(pid, 0))
			return -ESRCH;
		s->dev = m->dev;
		s->inode = m->inode;
		s->used = true;
		c->n++;
	}
	*id = s->id;
	return s->len;
}

int fleet_maps_object(struct idcache *c, pid_t pid, const uint8_t *build_id, size_t len)
{
	struct proc_maps maps;
	int ret = proc_maps_read(pid, &maps), found = 0;

	if (ret)
		return ret;
	for (size_t i = 0; i < maps.n && !found; i++) {
		const struct proc_map *m = &maps.v[i];
		const uint8_t *id;
		int n;

		if (m->offset || !m->inode || m->path[0] != '/')
			continue;
		n = idcache_get(c, pid, m, &id);
		if (n == -ENOMEM || n == -ESRCH) {
			found = n;
			break;
		}
		found = n == (int)len && !memcmp(id, build_id, len);
	}
	proc_maps_free(&maps);
	return found;
}

/* ---- outcomes ---- */

const char *fleet_state_name(enum fleet_state s)
{
	static const char *const names[] = {"patched", "already patched", "would patch", "reverted",
					    "gone",    "with its parent", "not checked", "failed"};

	return s <= FLEET_FAILED ? names[s] : "?";
}

static bool process_gone(pid_t pid)
{
	return proc_check_alive(pid) != 0;
}

static void settle(struct fleet_result *r, int ret, enum fleet_state ok)
{
	if (!ret) {
		r->state = ok;
		return;
	}
	r->err = ret;
	snprintf(r->msg, sizeof(r->msg), "%s", opus_errmsg());
	if (ret == -EALREADY)
		r->state = FLEET_ALREADY;
	/* A vfork child caught before its exec (posix_spawn's, for one): no
	 * target of its own, and no failure of the run. */
	else if (ret == -EXDEV)
		r->state = FLEET_WITH_PARENT;
	else if (process_gone(r->pid))
		r->state = FLEET_GONE;
	else
		r->state = FLEET_FAILED;
}

void fleet_apply_one(const struct opatch *p, pid_t pid, const struct live_opts *o,
		     struct fleet_result *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->patch, sizeof(r->patch), "%s", p->id);
	r->pid = pid;
	proc_comm(pid, r->comm);
	settle(r, live_apply(pid, p, o, &r->st), FLEET_PATCHED);
}

static void revert_one(const char *id, pid_t pid, const struct live_opts *o, struct fleet_result *r)
{
	char reverted[OPATCH_ID_MAX + 1];

	memset(r, 0, sizeof(*r));
	snprintf(r->patch, sizeof(r->patch), "%s", id);
	r->pid = pid;
	proc_comm(pid, r->comm);
	settle(r, live_revert(pid, id, o, &r->st, reverted), FLEET_REVERTED);
}

static void already_one(const struct opatch *p, pid_t pid, struct fleet_result *r)
{
	struct registry reg;

	memset(r, 0, sizeof(*r));
	snprintf(r->patch, sizeof(r->patch), "%s", p->id);
	r->pid = pid;
	proc_comm(pid, r->comm);
	if (live_list(pid, &reg)) {
		settle(r, -ESRCH, FLEET_WOULD);
		return;
	}
	const struct reg_entry *e = registry_find(&reg, p->id);

	r->state = e && e->active ? FLEET_ALREADY : FLEET_WOULD;
	registry_free(&reg);
}

/* ---- a pool of workers, one process each at a time ---- */

struct pool {
	const struct fleet_opts *o;
	const struct opatch *p; /* apply */
	const char *id;		/* revert */
	const pid_t *pids;
	size_t n, next;
	struct fleet_summary *s;
	pthread_mutex_t lock;
};

static void pool_work(struct pool *pl, const struct live_opts *lo, pid_t pid)
{
	struct fleet_result r;

	if (pl->id)
		revert_one(pl->id, pid, lo, &r);
	else if (pl->o->dry_run)
		already_one(pl->p, pid, &r);
	else
		fleet_apply_one(pl->p, pid, lo, &r);
	pthread_mutex_lock(&pl->lock);
	pl->s->count[r.state]++;
	if (pl->o->report)
		pl->o->report(&r, pl->o->ctx);
	pthread_mutex_unlock(&pl->lock);
}

/* Each worker keeps the files it read (libc, the patched object) for its
 * next process: a fleet maps the same few files. */
static void *pool_worker(void *arg)
{
	struct pool *pl = arg;
	struct file_cache files = {0};
	struct live_opts lo = pl->o->live;

	lo.files = &files;
	for (;;) {
		size_t i;

		pthread_mutex_lock(&pl->lock);
		i = pl->next++;
		pthread_mutex_unlock(&pl->lock);
		if (i >= pl->n)
			break;
		pool_work(pl, &lo, pl->pids[i]);
	}
	file_cache_free(&files);
	return NULL;
}

/* A worker on a thread of its own, which exits when the run is done. */
static void *pool_thread(void *arg)
{
	live_thread_exits_when_done();
	return pool_worker(arg);
}

static unsigned pool_jobs(const struct fleet_opts *o, size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t jobs = o->jobs ? o->jobs : (size_t)(cpus > 0 ? cpus : 1);

	return (unsigned)(jobs < n ? jobs : n);
}

static void pool_run(struct pool *pl)
{
	unsigned jobs = pool_jobs(pl->o, pl->n), started = 0;
	pthread_t *th = calloc(jobs, sizeof(*th));

	pthread_mutex_init(&pl->lock, NULL);
	pl->next = 0;
	/* Each worker traces its own processes: ptrace ties a tracee to the
	 * thread that seized it, so one process never changes hands. */
	for (unsigned i = 0; th && i + 1 < jobs; i++)
		if (!pthread_create(&th[i], NULL, pool_thread, pl))
			started++;
	pool_worker(pl);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&pl->lock);
	free(th);
}

/* ---- scans ---- */

/* Process ids in ascending order (a scan meets them so: /proc lists them
 * in that order), looked up by bisection: a scan asks about each of
 * thousands of processes. */
struct pidset {
	pid_t *v;
	size_t n, cap;
};

/* The index of the first member not below pid. */
static size_t pidset_at(const struct pidset *s, pid_t pid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool pidset_has(const struct pidset *s, pid_t pid)
{
	size_t at = pidset_at(s, pid);

	return at < s->n && s->v[at] == pid;
}

static int pidset_add(struct pidset *s, pid_t pid)
{
	size_t at = pidset_at(s, pid);

	if (at < s->n && s->v[at] == pid)
		return 0;
	if (OPUS_PUSH(s->v, s->n, s->cap))
		return -ENOMEM;
	memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof(*s->v));
	s->v[at] = pid;
	s->n++;
	return 0;
}

/* A process opus may not look into. It may map the object, so it is
 * listed, never skipped. Another user's process, opus not root: a failure
 * of the run, which root (or that user) can redo. One the kernel keeps
 * even from root or from its own user (more capabilities than opus has, a
 * security module, a sandbox's init): not checked, and no failure, or a
 * rollout would fail for ever on a process no opus can reach. */
static bool not_permitted(int ret)
{
	return ret == -EACCES || ret == -EPERM;
}

static bool another_users(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return geteuid() != 0 && !stat(path, &st) && st.st_uid != geteuid();
}

static void report_not_permitted(const struct fleet_opts *o, const char *patch, pid_t pid,
				 struct fleet_summary *s)
{
	struct fleet_result r = {.pid = pid, .err = -EPERM};

	snprintf(r.patch, sizeof(r.patch), "%s", patch);
	proc_comm(pid, r.comm);
	r.state = another_users(pid) ? FLEET_FAILED : FLEET_UNCHECKED;
	snprintf(r.msg, sizeof(r.msg), "not permitted to read its memory map (%s)",
		 r.state == FLEET_FAILED
		     ? "another user's process: run opus as root or as that user"
		     : "the kernel refuses it to opus: a process with capabilities opus lacks, or "
		       "a security module");
	s->count[r.state]++;
	if (o->report)
		o->report(&r, o->ctx);
}

static void report_all_not_permitted(const struct fleet_opts *o, const char *patch,
				     const struct pidset *denied, struct fleet_summary *s)
{
	for (size_t i = 0; i < denied->n; i++)
		if (!process_gone(denied->v[i]))
			report_not_permitted(o, patch, denied->v[i], s);
}

/* Processes not in seen that map p's object; each is added to seen. Those
 * opus may not look into go to denied, those o->skip names nowhere. */
static int scan_object(struct idcache *c, const struct opatch *p, const struct fleet_opts *o,
		       struct pidset *seen, struct pidset *out, struct pidset *denied)
{
	pid_t *pids, self = getpid();
	size_t n;
	int ret = proc_pids(&pids, &n);

	out->n = 0;
	for (size_t i = 0; !ret && i < n; i++) {
		int maps;

		if (pids[i] == self || pidset_has(seen, pids[i]))
			continue;
		if (o->skip && o->skip(p->id, pids[i], o->ctx)) {
			ret = pidset_add(seen, pids[i]);
			continue;
		}
		maps = fleet_maps_object(c, pids[i], p->build_id, p->build_id_len);
		if (maps == -ENOMEM)
			ret = maps;
		else if (maps == 1)
			ret = pidset_add(seen, pids[i]) ?: pidset_add(out, pids[i]);
		else if (not_permitted(maps))
			ret = pidset_add(seen, pids[i]) ?: pidset_add(denied, pids[i]);
	}
	free(pids);
	return ret;
}

int fleet_apply(const struct opatch *p, const struct fleet_opts *o, struct fleet_summary *s)
{
	struct pidset seen = {0}, fresh = {0}, denied = {0};
	struct idcache cache = {0};
	uint64_t t0 = opus_now_ns();
	int ret = 0;

	memset(s, 0, sizeof(*s));
	/* Processes started while the first ones were being patched show up
	 * in the next round; a round that finds none ends the run. */
	for (unsigned round = 0; !ret && round < MAX_ROUNDS; round++) {
		ret = scan_object(&cache, p, o, &seen, &fresh, &denied);
		if (ret || !fresh.n)
			break;
		struct pool pl = {.o = o, .p = p, .pids = fresh.v, .n = fresh.n, .s = s};

		pool_run(&pl);
	}
	if (!ret)
		report_all_not_permitted(o, p->id, &denied, s);
	free(seen.v);
	free(fresh.v);
	free(denied.v);
	idcache_free(&cache);
	s->total_ns = opus_now_ns() - t0;
	return ret;
}

/* Whether the memory map shows a mapping named as patch id's (any patch
 * when id is NULL): a candidate, which live_list then verifies. */
static bool maps_have_patch(const struct proc_maps *maps, const char *id)
{
	char have[OPATCH_ID_MAX + 1], nonce[REGISTRY_NONCE_LEN + 1];

	for (size_t i = 0; i < maps->n; i++)
		if (!maps->v[i].offset && registry_path_parse(maps->v[i].path, have, nonce) &&
		    (!id || !strcmp(have, id)))
			return true;
	return false;
}

/* Processes whose memory map holds patch id (any patch when id is NULL);
 * those opus may not look into go to denied (NULL: ignored). */
static int scan_patched(const char *id, struct pidset *out, struct pidset *denied)
{
	pid_t *pids, self = getpid();
	size_t n;
	int ret = proc_pids(&pids, &n);

	for (size_t i = 0; !ret && i < n; i++) {
		struct proc_maps maps;
		int r;

		if (pids[i] == self)
			continue;
		if ((r = proc_maps_read(pids[i], &maps))) {
			if (denied && not_permitted(r))
				ret = pidset_add(denied, pids[i]);
			continue;
		}
		if (maps_have_patch(&maps, id))
			ret = pidset_add(out, pids[i]);
		proc_maps_free(&maps);
	}
	free(pids);
	return ret;
}

int fleet_revert(const char *id, const struct fleet_opts *o, struct fleet_summary *s)
{
	struct pidset found = {0}, denied = {0};
	uint64_t t0 = opus_now_ns();
	int ret;

	memset(s, 0, sizeof(*s));
	ret = scan_patched(id, &found, &denied);
	if (!ret && found.n) {
		struct pool pl = {.o = o, .id = id, .pids = found.v, .n = found.n, .s = s};

		pool_run(&pl);
	}
	if (!ret)
		report_all_not_permitted(o, id, &denied, s);
	free(found.v);
	free(denied.v);
	s->total_ns = opus_now_ns() - t0;
	return ret;
}

int fleet_list(struct fleet_proc **out, size_t *n)
{
	struct pidset found = {0};
	size_t cap = 0;
	int ret = scan_patched(NULL, &found, NULL);

	*out = NULL;
	*n = 0;
	for (size_t i = 0; !ret && i < found.n; i++) {
		struct fleet_proc fp = {.pid = found.v[i]};

		/* A process that exits meanwhile is simply not listed. */
		if (live_list(fp.pid, &fp.reg) || !fp.reg.n) {
			registry_free(&fp.reg);
			continue;
		}
		proc_comm(fp.pid, fp.comm);
		if (OPUS_PUSH(*out, *n, cap)) {
			registry_free(&fp.reg);
			ret = -ENOMEM;
			break;
		}
		(*out)[(*n)++] = fp;
	}
	free(found.v);
	if (ret) {
		fleet_list_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return ret;
}

void fleet_list_free(struct fleet_proc *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		registry_free(&v[i].reg);
	free(v);
}
