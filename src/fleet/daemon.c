#include "daemon.h"
#include "patchfile/trust.h"
#include "patchfile/store.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/file.h"
#include "watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS 1000000ull
/* A new process is looked at again and again while its dynamic linker maps
 * libraries (a millisecond or two): every millisecond (the wait's grain)
 * for the first 8 ms, then twice as late each time. */
#define RECHECK_NS	 (1 * MS)
#define FAST_RECHECKS_NS (8 * MS)
#define MAX_RECHECK_NS	 (256 * MS)
#define WATCH_NS	 (5000 * MS)

struct stored {
	struct opstore_entry e;
	struct opatch p;
};

struct watched {
	pid_t pid;
	uint64_t seen_ns, next_ns, interval_ns;
	bool *done; /* per stored patch: applied or found there */
	struct fleet_result last_failure;
};

/* A process the daemon gave up on for one patch: each try stopped it past
 * --max-pause, and would again at every sweep. Named by pid and start
 * time, so that a new process with the same pid is tried. */
struct given_up {
	pid_t pid;
	unsigned long long start;
	char patch[OPATCH_ID_MAX + 1];
};

struct daemon {
	const struct daemon_opts *o;
	struct stored *patches;
	size_t npatches;
	struct timespec store_mtime;
	struct watched *w;
	size_t nw, wcap;
	struct idcache cache;
	struct file_cache files; /* libraries read for earlier processes */
	uint64_t next_sweep_ns;
	struct given_up *gu;
	size_t ngu, gucap;
};

static void say(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct daemon *d, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->o->log)
		d->o->log(msg, d->o->ctx);
}

static void report(struct daemon *d, const struct fleet_result *r)
{
	if (d->o->report)
		d->o->report(r, d->o->ctx);
}

/* ---- the store ---- */

static void patches_free(struct daemon *d)
{
	for (size_t i = 0; i < d->npatches; i++)
		opatch_free(&d->patches[i].p);
	free(d->patches);
	d->patches = NULL;
	d->npatches = 0;
}

static bool store_changed(struct daemon *d)
{
	struct stat st;

	if (stat(d->o->store, &st))
		memset(&st, 0, sizeof(st));
	if (st.st_mtim.tv_sec == d->store_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == d->store_mtime.tv_nsec)
		return false;
	d->store_mtime = st.st_mtim;
	return true;
}

/* Rereads the store; a file that does not read as a patch is skipped with
 * a message, never applied. */
static int load_store(struct daemon *d)
{
	struct opstore_entry *v;
	size_t n;
	int ret = opstore_list(d->o->store, &v, &n);

	if (ret)
		return ret;
	patches_free(d);
	d->patches = calloc(n ? n : 1, sizeof(*d->patches));
	if (!d->patches) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct stored *s = &d->patches[d->npatches];

		s->e = v[i];
		if (optrust_read(v[i].path, d->o->trusted, &s->p)) {
			say(d, "skipping %s: %s", v[i].path, opus_errmsg());
			continue;
		}
		d->npatches++;
	}
	free(v);
	say(d, "store %s: %zu patch(es)", d->o->store, d->npatches);
	return 0;
}

/* ---- processes given up on ---- */

static bool gave_up_on(struct daemon *d, const char *patch, pid_t pid)
{
	unsigned long long start;

	for (size_t i = 0; i < d->ngu; i++)
		if (d->gu[i].pid == pid && !strcmp(d->gu[i].patch, patch))
			return !proc_start_time(pid, &start) && start == d->gu[i].start;
	return false;
}

static bool skip_given_up(const char *patch, pid_t pid, void *ctx)
{
	return gave_up_on(ctx, patch, pid);
}

/* r failed because the pause would pass --max-pause: said once, and the
 * process is not tried again for that patch while it runs. */
static void give_up(struct daemon *d, const struct fleet_result *r)
{
	struct given_up *g;

	if (OPUS_PUSH(d->gu, d->ngu, d->gucap))
		return;
	g = &d->gu[d->ngu];
	if (proc_start_time(r->pid, &g->start))
		return;
	g->pid = r->pid;
	snprintf(g->patch, sizeof(g->patch), "%s", r->patch);
	d->ngu++;
	say(d,
	    "gave up on %d (%s) for %s: it cannot be patched within --max-pause; not tried "
	    "again while it runs",
	    (int)r->pid, r->comm, r->patch);
}

/* Forget the processes that have gone (or whose pid is another's now). */
static void prune_given_up(struct daemon *d)
{
	unsigned long long start;

	for (size_t i = 0; i < d->ngu;)
		if (proc_start_time(d->gu[i].pid, &start) || start != d->gu[i].start)
			d->gu[i] = d->gu[--d->ngu];
		else
			i++;
}

static bool past_max_pause(const struct fleet_result *r)
{
	return r->state == FLEET_FAILED && r->err == -ETIME;
}

/* ---- the tracing thread ---- */

/* Every apply traces from a thread of its own, which exits when done. A
 * target thread no stop reaches (a kernel copy into a userfaultfd page, a
 * hung NFS read) cannot be let go; the daemon, which outlives its applies,
 * used to wait for that thread's stop, forever if need be, patching no
 * new process meanwhile. As the tracing thread exits, the kernel lets go
 * of it instead, and drops the interrupt opus left pending. */
struct traced_call {
	void (*fn)(void *arg);
	void *arg;
};

static void *tracing_thread(void *arg)
{
	const struct traced_call *c = arg;

	live_thread_exits_when_done();
	c->fn(c->arg);
	return NULL;
}

static void trace_on_own_thread(void (*fn)(void *arg), void *arg)
{
	struct traced_call c = {fn, arg};
	pthread_t th;

	if (pthread_create(&th, NULL, tracing_thread, &c)) {
		fn(arg); /* patient, as the daemon's own thread must be */
		return;
	}
	pthread_join(th, NULL);
}

/* ---- sweeps ---- */

/* A sweep finds mostly processes patched long ago: say only what changed. */
static void sweep_report(const struct fleet_result *r, void *ctx)
{
	struct daemon *d = ctx;

	if (r->state == FLEET_PATCHED || r->state == FLEET_FAILED)
		report(d, r);
	if (past_max_pause(r))
		give_up(d, r);
}

/* Every process, every patch, in install order. */
static void sweep_all(void *arg)
{
	struct daemon *d = arg;
	struct fleet_opts fo = {
	    .live = d->o->live, .report = sweep_report, .skip = skip_given_up, .ctx = d};

	for (size_t i = 0; i < d->npatches; i++) {
		struct fleet_summary s;

		if (fleet_apply(&d->patches[i].p, &fo, &s))
			say(d, "sweep for %s: %s", d->patches[i].p.id, opus_errmsg());
	}
}

static void sweep(struct daemon *d)
{
	trace_on_own_thread(sweep_all, d);
	/* Inode numbers are reused once a file is gone: forget them now and
	 * then. (A stale entry could only make us miss a process: apply
	 * checks the build-id of what is mapped itself.) */
	idcache_free(&d->cache);
	prune_given_up(d);
	/* Nor keep deleted files (an upgraded library) open for long. */
	file_cache_free(&d->files);
	d->next_sweep_ns = opus_now_ns() + (uint64_t)d->o->sweep_ms * MS;
}

/* ---- new processes ---- */

static void unwatch(struct daemon *d, size_t i)
{
	free(d->w[i].done);
	d->w[i] = d->w[--d->nw];
}

static void watch_pid(struct daemon *d, pid_t pid, uint64_t now)
{
	struct watched *w = NULL;

	if (pid == getpid())
		return;
	for (size_t i = 0; i < d->nw && !w; i++)
		if (d->w[i].pid == pid)
			w = &d->w[i];
	if (!w) {
		if (OPUS_PUSH(d->w, d->nw, d->wcap))
			return;
		w = &d->w[d->nw++];
		memset(w, 0, sizeof(*w));
		w->pid = pid;
	}
	/* An exec starts over: a new image maps new objects. */
	free(w->done);
	w->done = calloc(d->npatches ? d->npatches : 1, sizeof(*w->done));
	w->seen_ns = now;
	w->next_ns = now;
	w->interval_ns = RECHECK_NS;
	w->last_failure.state = FLEET_GONE;
}

struct one_apply {
	const struct opatch *p;
	pid_t pid;
	const struct live_opts *lo;
	struct fleet_result r;
};

static void apply_one(void *arg)
{
	struct one_apply *a = arg;

	fleet_apply_one(a->p, a->pid, a->lo, &a->r);
}

/* Looks at one watched process; false once there is no reason to look again. */
static bool check(struct daemon *d, struct watched *w)
{
	struct live_opts lo = d->o->live;

	lo.files = &d->files;
	for (size_t i = 0; i < d->npatches; i++) {
		const struct opatch *p = &d->patches[i].p;
		struct one_apply a = {.p = p, .pid = w->pid, .lo = &lo};
		struct fleet_result *r = &a.r;
		int maps;

		if (!w->done || w->done[i])
			continue;
		if (gave_up_on(d, p->id, w->pid)) {
			w->done[i] = true;
			continue;
		}
		maps = fleet_maps_object(&d->cache, w->pid, p->build_id, p->build_id_len);
		if (maps < 0)
			return false; /* gone, or not ours to read */
		if (!maps)
			continue;
		trace_on_own_thread(apply_one, &a);
		r->since_seen_ns = opus_now_ns() - w->seen_ns;
		if (r->state == FLEET_GONE)
			return false;
		if (past_max_pause(r)) {
			report(d, r);
			give_up(d, r);
			w->done[i] = true;
			continue;
		}
		if (r->state == FLEET_FAILED) {
			/* Often the dynamic linker is not done yet: try again. */
			w->last_failure = *r;
			continue;
		}
		w->done[i] = true;
		if (r->state == FLEET_PATCHED)
			report(d, r);
	}
	return true;
}

static void check_due(struct daemon *d)
{
	uint64_t now = opus_now_ns();

	for (size_t i = 0; i < d->nw;) {
		struct watched *w = &d->w[i];

		if (w->next_ns > now) {
			i++;
			continue;
		}
		if (!check(d, w) || now - w->seen_ns > WATCH_NS) {
			if (now - w->seen_ns > WATCH_NS && w->last_failure.state == FLEET_FAILED)
				report(d, &w->last_failure);
			unwatch(d, i);
			continue;
		}
		w->next_ns = now + w->interval_ns;
		if (now - w->seen_ns >= FAST_RECHECKS_NS)
			w->interval_ns = w->interval_ns * 2 < MAX_RECHECK_NS ? w->interval_ns * 2
									     : MAX_RECHECK_NS;
		i++;
	}
}

static int next_timeout_ms(const struct daemon *d)
{
	uint64_t now = opus_now_ns(), next = d->next_sweep_ns;

	for (size_t i = 0; i < d->nw; i++)
		if (d->w[i].next_ns < next)
			next = d->w[i].next_ns;
	if (next <= now)
		return 0;
	return next - now > 1000 * MS ? 1000 : (int)((next - now + MS - 1) / MS);
}

static void reload_if_changed(struct daemon *d)
{
	bool asked = d->o->reload && *d->o->reload;

	if (asked)
		*d->o->reload = 0;
	if (!store_changed(d) && !asked)
		return;
	if (load_store(d)) {
		say(d, "cannot read the store: %s", opus_errmsg());
		return;
	}
	for (size_t i = 0; i < d->nw; i++)
		watch_pid(d, d->w[i].pid, d->w[i].seen_ns);
	sweep(d);
}

int daemon_run(const struct daemon_opts *o)
{
	/* No store was seen yet: the first look always loads it. */
	struct daemon d = {.o = o, .store_mtime.tv_nsec = -1};
	struct watch w;
	pid_t *fresh = NULL;
	size_t nfresh = 0, cap = 0;
	int ret = watch_open(&w, o->no_netlink, o->poll_ms);

	if (ret)
		return ret;
	if (w.nl_fd >= 0)
		say(&d, "watching new processes through the netlink process connector");
	else
		say(&d, "polling /proc every %u ms for new processes (%s)", w.poll_ms,
		    w.why_polling);
	while (!*o->stop) {
		reload_if_changed(&d);
		if (opus_now_ns() >= d.next_sweep_ns)
			sweep(&d);
		nfresh = 0;
		ret = watch_wait(&w, next_timeout_ms(&d), &fresh, &nfresh, &cap);
		if (ret) {
			say(&d, "watching processes: %s", opus_errmsg());
			break;
		}
		for (size_t i = 0; i < nfresh; i++)
			watch_pid(&d, fresh[i], opus_now_ns());
		check_due(&d);
	}
	free(fresh);
	for (size_t i = d.nw; i-- > 0;)
		unwatch(&d, i);
	free(d.w);
	free(d.gu);
	patches_free(&d);
	idcache_free(&d.cache);
	file_cache_free(&d.files);
	watch_close(&w);
	return ret;
}
