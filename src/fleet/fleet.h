/* Every process at once: find the processes that map an object (by
 * build-id, whatever its path), apply a patch to each of them, revert a
 * patch everywhere, list every patched process. Each process is its own
 * all-or-nothing transaction (live.h); one failing leaves the others as
 * they are. */
#ifndef OPUS_FLEET_FLEET_H
#define OPUS_FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "live/files.h"
#include "live/live.h"
#include "live/proc.h"

/* Build-ids of mapped files by device and inode, so that a scan of every
 * process opens each distinct file once. */
struct idcache {
	struct idcache_slot *v;
	size_t n, cap;
};
void idcache_free(struct idcache *c);

/* Whether pid maps the object with this build-id: 1 yes, 0 no, or -errno
 * when its memory map cannot be read (gone, not permitted). */
int fleet_maps_object(struct idcache *c, pid_t pid, const uint8_t *build_id, size_t len);

enum fleet_state {
	FLEET_PATCHED,	   /* applied now */
	FLEET_ALREADY,	   /* the patch was there already (applied or inherited by fork) */
	FLEET_WOULD,	   /* dry run: would be patched */
	FLEET_REVERTED,	   /* taken out now */
	FLEET_GONE,	   /* the process exited before or while we were at it */
	FLEET_WITH_PARENT, /* its memory is its parent's (a vfork child): patched with it */
	FLEET_UNCHECKED,   /* opus may not read its memory map; reason in msg */
	FLEET_FAILED,	   /* left unchanged; reason in msg */
};

const char *fleet_state_name(enum fleet_state s);

struct fleet_result {
	char patch[OPATCH_ID_MAX + 1];
	pid_t pid;
	char comm[PROC_COMM_MAX];
	enum fleet_state state;
	int err;
	char msg[512];
	struct live_stats st;
	uint64_t since_seen_ns; /* daemon: from the process's exec (or first sight) to now */
};

typedef void (*fleet_report_fn)(const struct fleet_result *r, void *ctx);

struct fleet_opts {
	struct live_opts live;
	unsigned jobs; /* processes handled at once; 0: one per CPU */
	bool dry_run;
	fleet_report_fn report; /* called once per process, from one thread at a time */
	/* A process to leave alone for patch (the daemon gave up on it);
	 * NULL: none. Called from the thread that lists the processes. */
	bool (*skip)(const char *patch, pid_t pid, void *ctx);
	void *ctx;
};

struct fleet_summary {
	unsigned count[FLEET_FAILED + 1];
	uint64_t total_ns;
};

/* One process: applied, already there, gone or failed. */
void fleet_apply_one(const struct opatch *p, pid_t pid, const struct live_opts *o,
		     struct fleet_result *r);

/* Every process that maps p's object, including those that appear while
 * this runs. Returns 0 when the scan itself worked, whatever each process's
 * outcome (see the summary). */
int fleet_apply(const struct opatch *p, const struct fleet_opts *o, struct fleet_summary *s);
/* Every process that has patch id applied. */
int fleet_revert(const char *id, const struct fleet_opts *o, struct fleet_summary *s);

struct fleet_proc {
	pid_t pid;
	char comm[PROC_COMM_MAX];
	struct registry reg;
};

/* Every process with at least one opus patch, by pid. */
int fleet_list(struct fleet_proc **out, size_t *n);
void fleet_list_free(struct fleet_proc *v, size_t n);

#endif
