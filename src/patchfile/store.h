/* The patch store: a directory of installed patch files that the daemon
 * applies to every process mapping their object, now and later. Files are
 * named NNNNNN-<id>.opatch; the number keeps install order, which is the
 * order patches for one object are stacked in. */
#ifndef OPUS_PATCHFILE_STORE_H
#define OPUS_PATCHFILE_STORE_H

#include <stddef.h>

#include "opatch.h"

#define OPSTORE_DEFAULT_DIR "/var/lib/opus"

struct opstore_entry {
	unsigned seq;
	char id[OPATCH_ID_MAX + 1];
	char path[4096];
};

/* The store directory: dir, else $OPUS_STORE, else the default. */
const char *opstore_dir(const char *dir);

/* Validates the patch (signature under trusted_dir's policy, sign.h, then
 * opatch_read) and copies it in atomically; *p gets the patch read.
 * -EEXIST with a message if that id is installed already. */
int opstore_install(const char *dir, const char *patch_path, const char *trusted_dir,
		    struct opatch *p);
int opstore_uninstall(const char *dir, const char *id);
/* Installed patches, oldest first; an empty list when the store does not
 * exist yet. */
int opstore_list(const char *dir, struct opstore_entry **v, size_t *n);

#endif
