/* Which units that include a changed header the change reaches (reach.c). */
#ifndef OPUS_SOURCE_REACH_H
#define OPUS_SOURCE_REACH_H

#include "workspace.h"

/* Leaves out of w's units those the diff reaches only through a header and
 * whose preprocessed text it does not change; w->nunreached counts them. */
int workspace_drop_unreached(struct workspace *w);

#endif
