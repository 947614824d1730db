/* A rebuild standing in for an installed binary. A distribution's binary is
 * stripped, and its debug info may not be at hand; a rebuild of the same
 * source, the same way, gives the symbols and DWARF a build needs. The
 * patch may then be bound to the installed file if the two are the same
 * program: the same build-id, or else every loaded section byte-equal at
 * the same address (a rebuild whose debug info differs has another
 * build-id but the same code and data). */
#ifndef OPUS_MKPATCH_REBUILD_H
#define OPUS_MKPATCH_REBUILD_H

#include <gelf.h>
#include <stddef.h>

/* 0 when installed's loaded image is rebuilt's: the same loadable segments,
 * and every allocated section (the build-id note aside) of the same name at
 * the same address, of the same size, with the same bytes. Otherwise
 * -EINVAL, and diffs (malloc'd) lists each difference on its own line:
 * the section, and how it differs. */
int rebuild_compare(Elf *rebuilt, Elf *installed, char **diffs);

#endif
