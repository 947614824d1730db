/* The patch file as it travels: written, read back field by field; a
 * flipped byte or a cut file refused by the reader; signed, and then taken
 * or refused by the trust policy as the keys in the trusted directory say. */
#include "patchfile/opatch.h"
#include "patchfile/sign.h"
#include "patchfile/trailer.h"
#include "patchfile/trust.h"
#include "sample_patch.h"
#include "unit.h"
#include "util/err.h"
#include "util/file.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/opus-unit-patchfile-XXXXXX";

static const char *in_dir(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static bool same_patch(const struct opatch *a, const struct opatch *b)
{
	bool same = !strcmp(a->id, b->id) && !strcmp(a->description, b->description) &&
		    !strcmp(a->diff_sha256, b->diff_sha256) && !strcmp(a->findings, b->findings) &&
		    !strcmp(a->target_name, b->target_name) && a->build_id_len == b->build_id_len &&
		    !memcmp(a->build_id, b->build_id, a->build_id_len) &&
		    a->nsections == b->nsections && a->nfuncs == b->nfuncs;

	for (size_t i = 0; same && i < a->nsections; i++) {
		const struct opatch_section *x = &a->sections[i], *y = &b->sections[i];

		same = !strcmp(x->name, y->name) && x->type == y->type && x->size == y->size &&
		       x->nrelas == y->nrelas && (!x->data || !memcmp(x->data, y->data, x->size));
		for (size_t k = 0; same && k < x->nrelas; k++)
			same =
			    x->relas[k].offset == y->relas[k].offset &&
			    x->relas[k].type == y->relas[k].type &&
			    x->relas[k].addend == y->relas[k].addend &&
			    !strcmp(a->syms[x->relas[k].sym].name, b->syms[y->relas[k].sym].name);
	}
	for (size_t i = 0; same && i < a->nfuncs; i++)
		same =
		    !strcmp(a->funcs[i].name, b->funcs[i].name) &&
		    a->funcs[i].old_addr == b->funcs[i].old_addr &&
		    a->funcs[i].old_size == b->funcs[i].old_size &&
		    !memcmp(a->funcs[i].old_sha256, b->funcs[i].old_sha256, 32) &&
		    !strcmp(a->syms[a->funcs[i].new_sym].name, b->syms[b->funcs[i].new_sym].name) &&
		    (a->funcs[i].old_sym < 0
			 ? b->funcs[i].old_sym < 0
			 : b->funcs[i].old_sym >= 0 && !strcmp(a->syms[a->funcs[i].old_sym].name,
							       b->syms[b->funcs[i].old_sym].name));
	/* Symbols of the target keep their link-time address. */
	same = same && opatch_find_sym(b, "old_table", OPATCH_SYM_TARGET, 0x4010) >= 0 &&
	       opatch_find_sym(b, "puts", OPATCH_SYM_EXTERN, 0) >= 0;
	return same;
}

static void rewrite(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	CHECK(f && fwrite(data, 1, len, f) == len);
	if (f)
		fclose(f);
}

static void test_round_trip(const struct opatch *p)
{
	struct opatch q;
	char *data;
	size_t len;

	CHECK(opatch_write(p, in_dir("p.opatch")) == 0);
	CHECK(opatch_read(in_dir("p.opatch"), &q) == 0);
	CHECK(same_patch(p, &q));
	opatch_free(&q);

	/* A flipped byte anywhere in the code is refused, named. */
	CHECK(opus_read_file(in_dir("p.opatch"), &data, &len) == 0);
	char *at = memmem(data, len, sample_code, sizeof(sample_code));

	CHECK(at != NULL);
	if (at) {
		at[5] ^= 1;
		rewrite(in_dir("flipped.opatch"), data, len);
		CHECK(opatch_read(in_dir("flipped.opatch"), &q) < 0);
		CHECK(strstr(opus_errmsg(), "flipped.opatch") != NULL);
		at[5] ^= 1;
	}
	/* So is a file cut short. */
	rewrite(in_dir("cut.opatch"), data, len / 2);
	CHECK(opatch_read(in_dir("cut.opatch"), &q) < 0);
	CHECK(strstr(opus_errmsg(), "cut.opatch") != NULL);
	free(data);
}

/* The build's judgement of the transition reads back as written: none
 * (a patch built before it), per-thread (empty), or the reasons. */
static void test_transition(struct opatch *p)
{
	const char *const cases[] = {
	    NULL, "",
	    "f reads or writes x (a.c), which its old code does not\n"
	    "g no longer reads or writes y (a.c), where its old code does\n"};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct opatch q;

		free(p->stop_world);
		p->stop_world = cases[i] ? strdup(cases[i]) : NULL;
		CHECK(opatch_write(p, in_dir("t.opatch")) == 0);
		CHECK(opatch_read(in_dir("t.opatch"), &q) == 0);
		CHECK(cases[i] ? q.stop_world && !strcmp(q.stop_world, cases[i]) : !q.stop_world);
		opatch_free(&q);
	}
}

static void test_trailer(void)
{
	struct opsign_key k;
	struct optrailer t;
	struct opatch q;
	char *data;
	size_t len, unsigned_len;

	CHECK(opus_read_file(in_dir("p.opatch"), &data, &len) == 0);
	unsigned_len = len;
	CHECK(optrailer_split("p", data, len, &t) == 0 && !t.is_signed && t.body_len == len);
	free(data);

	CHECK(opsign_keygen(in_dir("alice"), &k) == 0);
	CHECK(opsign_sign(in_dir("p.opatch"), &k, in_dir("signed.opatch")) == 0);
	CHECK(opus_read_file(in_dir("signed.opatch"), &data, &len) == 0);
	CHECK(optrailer_split("signed", data, len, &t) == 0);
	CHECK(t.is_signed && t.body_len == unsigned_len && !strcmp(t.key_id, k.id));
	/* The reader never sees the trailer. */
	CHECK(opatch_read(in_dir("signed.opatch"), &q) == 0);
	opatch_free(&q);
	/* Signing again replaces the signature: one trailer, never two. */
	CHECK(opsign_sign(in_dir("signed.opatch"), &k, NULL) == 0);
	struct stat st;

	CHECK(stat(in_dir("signed.opatch"), &st) == 0 && (size_t)st.st_size == len);
	/* A trailer that does not parse is an error, not a body. */
	data[len - 2] = 'z';
	CHECK(optrailer_split("bad", data, len, &t) == -EINVAL);
	free(data);
	opsign_key_wipe(&k);
}

static int trusted_read(const char *patch, const char *trusted)
{
	struct opatch q;
	int ret = optrust_read(in_dir(patch), trusted ? in_dir(trusted) : NULL, &q);

	if (!ret)
		opatch_free(&q);
	return ret;
}

static void test_trust(void)
{
	struct opsign_key k;
	char *data;
	size_t len;

	CHECK(mkdir(in_dir("trusted"), 0700) == 0);
	/* A directory named on purpose but holding no key trusts nothing. */
	CHECK(trusted_read("signed.opatch", "trusted") == -EKEYREJECTED);
	CHECK(strstr(opus_errmsg(), "no trusted key") != NULL);
	/* A key other than the signer's. */
	CHECK(opsign_keygen(in_dir("trusted/bob"), &k) == 0);
	CHECK(trusted_read("signed.opatch", "trusted") == -EKEYREJECTED);
	CHECK(strstr(opus_errmsg(), "not in") != NULL);
	/* The signer's public key: accepted; unsigned: refused. */
	CHECK(rename(in_dir("alice.pub"), in_dir("trusted/alice.pub")) == 0);
	CHECK(trusted_read("signed.opatch", "trusted") == 0);
	CHECK(trusted_read("p.opatch", "trusted") == -EKEYREJECTED);
	CHECK(strstr(opus_errmsg(), "not signed") != NULL);
	/* A byte changed after signing. */
	CHECK(opus_read_file(in_dir("signed.opatch"), &data, &len) == 0);
	data[100] ^= 1;
	rewrite(in_dir("altered.opatch"), data, len);
	free(data);
	CHECK(trusted_read("altered.opatch", "trusted") == -EKEYREJECTED);
	CHECK(strstr(opus_errmsg(), "does not match") != NULL);
	/* A trusted directory that others may write to is no trust at all. */
	CHECK(chmod(in_dir("trusted"), 0777) == 0);
	CHECK(trusted_read("signed.opatch", "trusted") < 0);
	CHECK(chmod(in_dir("trusted"), 0700) == 0);
	/* Named and missing (misspelt) refuses everything. */
	CHECK(trusted_read("signed.opatch", "trustd") < 0);
	opsign_key_wipe(&k);
}

/* A function's copy of its old code reads back as the same symbol; one
 * without reads back without. */
static void test_old_copy(struct opatch *p)
{
	struct opatch q;

	p->funcs[0].old_sym = (int32_t)p->funcs[0].new_sym;
	CHECK(opatch_write(p, in_dir("o.opatch")) == 0);
	CHECK(opatch_read(in_dir("o.opatch"), &q) == 0);
	CHECK(same_patch(p, &q) && q.funcs[0].old_sym >= 0);
	opatch_free(&q);
	p->funcs[0].old_sym = -1;
}

int main(void)
{
	struct sample_syms syms;
	struct opatch p;

	CHECK(mkdtemp(dir) != NULL);
	sample_patch(&p, &syms);
	test_round_trip(&p);
	test_transition(&p);
	test_old_copy(&p);
	test_trailer();
	test_trust();
	opatch_free(&p);
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return unit_status();
}
