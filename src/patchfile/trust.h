/* The trust policy, above the reader and the signer. When the
 * trusted-keys directory exists (default /etc/opus/trusted.d, else
 * $OPUS_TRUSTED_DIR, else --trusted), every patch applied or installed
 * must carry a valid signature by one of its *.pub keys; an unsigned
 * patch, an unknown key or a bad signature is refused before anything else
 * is read. */
#ifndef OPUS_PATCHFILE_TRUST_H
#define OPUS_PATCHFILE_TRUST_H

#include <stddef.h>

#include "opatch.h"
#include "trailer.h"

#define OPTRUST_DEFAULT_DIR "/etc/opus/trusted.d"

/* The trusted-keys directory in force: dir, else $OPUS_TRUSTED_DIR, else
 * the default. */
const char *optrust_dir(const char *dir);

/* Applies the policy to the file name held in buf, whose trailer t was
 * split from it: 0 when the directory does not exist (no policy) or when
 * the signature is valid by a key in it; else an error naming the file and
 * what is wrong. */
int optrust_check(const char *name, const void *buf, const struct optrailer *t,
		  const char *trusted_dir);

/* Reads a patch file under the policy: the one entry point for commands
 * that act on processes (apply, install, the daemon). */
int optrust_read(const char *path, const char *trusted_dir, struct opatch *p);
/* The same, handing back the very bytes read (malloc'd) on success. */
int optrust_read_bytes(const char *path, const char *trusted_dir, struct opatch *p, char **data,
		       size_t *len);

#endif
