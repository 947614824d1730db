/* Which of the units that include a changed header the change reaches. A
 * fix to a header brings every unit that includes it, and most do not use
 * what changed (a macro, a declaration): a unit whose preprocessed text is
 * the same with and without the diff compiles to the same code and parses
 * to the same entities, so it is left out of the compiles and the analysis.
 * The text is compared without line markers; __LINE__, __FILE__ and
 * __DATE__ are expanded in it, so a change they see keeps the unit. */
#include "reach.h"
#include "compile.h"
#include "util/err.h"
#include "util/file.h"
#include "util/sha256.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Is the unit's own source among the files the diff changes? */
static bool own_file_changed(const struct workspace *w, const struct cdb_entry *e)
{
	const char *rel = workspace_in_tree(w, e->file);

	for (size_t i = 0; rel && i < w->files.n; i++)
		if (!strcmp(w->files.v[i].path, rel))
			return true;
	return false;
}

static bool diff_has_header(const struct workspace *w)
{
	for (size_t i = 0; i < w->files.n; i++) {
		size_t n = strlen(w->files.v[i].path);

		if (n > 2 && !strcmp(w->files.v[i].path + n - 2, ".h"))
			return true;
	}
	return false;
}

/* The digest of each candidate's preprocessed text, in the scratch tree as
 * it is now. A unit that does not preprocess gets none: it is kept. */
static int preprocess_all(const struct workspace *w, const size_t *cand, size_t n,
			  uint8_t (*digest)[OPUS_SHA256_LEN], bool *ok)
{
	struct compile_req *reqs = calloc(n + 1, sizeof(*reqs));
	char(*outs)[256] = calloc(n + 1, sizeof(*outs));
	int ret = reqs && outs ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < n; i++) {
		snprintf(outs[i], sizeof(outs[i]), "%s/reach-%zu.i", w->scratch, i);
		reqs[i] = (struct compile_req){w->units[cand[i]], COMPILE_PREPROCESSED, outs[i]};
	}
	if (!ret && compile_all(reqs, n, w->root, w->tree, NULL, NULL))
		opus_info("preprocessing failed (%s): every unit is kept", opus_errmsg());
	for (size_t i = 0; !ret && i < n; i++) {
		char *text = NULL;
		size_t len = 0;

		ok[i] = !opus_read_file(outs[i], &text, &len);
		if (ok[i])
			opus_sha256(text, len, digest[i]);
		free(text);
		unlink(outs[i]);
	}
	free(reqs);
	free(outs);
	return ret;
}

/* The units a header brought, each preprocessed before and after the diff
 * (applied to the scratch tree and taken out again). */
static int compare_texts(struct workspace *w, const size_t *cand, size_t n, bool *same)
{
	uint8_t(*before)[OPUS_SHA256_LEN] = calloc(n + 1, sizeof(*before));
	uint8_t(*after)[OPUS_SHA256_LEN] = calloc(n + 1, sizeof(*after));
	bool *ok_before = calloc(n + 1, sizeof(bool)), *ok_after = calloc(n + 1, sizeof(bool));
	int ret = before && after && ok_before && ok_after ? 0 : -ENOMEM;

	if (!ret)
		ret = preprocess_all(w, cand, n, before, ok_before);
	if (!ret && !(ret = workspace_apply_diff(w))) {
		ret = preprocess_all(w, cand, n, after, ok_after);
		ret = workspace_unapply_diff(w) ?: ret;
	}
	for (size_t i = 0; !ret && i < n; i++)
		same[i] =
		    ok_before[i] && ok_after[i] && !memcmp(before[i], after[i], OPUS_SHA256_LEN);
	free(before);
	free(after);
	free(ok_before);
	free(ok_after);
	return ret;
}

int workspace_drop_unreached(struct workspace *w)
{
	size_t *cand = calloc(w->nunits + 1, sizeof(*cand)), n = 0, kept = 0, k = 0;
	bool *same = calloc(w->nunits + 1, sizeof(*same));
	int ret = cand && same ? 0 : -ENOMEM;

	bool header = diff_has_header(w);

	for (size_t i = 0; !ret && header && i < w->nunits; i++)
		if (!own_file_changed(w, w->units[i]))
			cand[n++] = i;
	if (!ret && n)
		ret = compare_texts(w, cand, n, same);
	for (size_t i = 0; !ret && n && i < w->nunits; i++) {
		bool drop = k < n && cand[k] == i && same[k];

		k += k < n && cand[k] == i;
		if (!drop)
			w->units[kept++] = w->units[i];
	}
	if (!ret && n) {
		w->nunreached = w->nunits - kept;
		w->nunits = kept;
	}
	free(cand);
	free(same);
	if (!ret && w->nunreached && !w->nunits)
		return opus_err(-ENODATA,
				"nothing to apply: %s changes headers, but no unit that includes "
				"them preprocesses otherwise with it (%zu checked): it changes "
				"nothing they use",
				w->diff_path, w->nunreached);
	return ret;
}
