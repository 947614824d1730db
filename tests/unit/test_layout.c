/* A patch image laid out and linked for a mapping at a given base: pages
 * apart by permission, every reference pointing where its symbol is (a far
 * call through a stub, a GOT-relative load through a slot holding the
 * address), and a data reference that cannot reach refused, not linked
 * wrong. */
#include "live/layout.h"
#include "sample_patch.h"
#include "unit.h"
#include "util/err.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define BASE	    0x555555a00000ull /* where the patch is mapped */
#define TARGET_BIAS 0x555555554000ull /* the target object, within reach */
#define PUTS	    0x7ffff7e50e50ull /* in libc, far away */

static int64_t rel32_at(const struct layout *l, size_t off)
{
	int32_t v;

	memcpy(&v, l->image + off, 4);
	return v;
}

/* Where the rel32 at off in the image leads, as the CPU computes it. */
static uint64_t rel32_target(const struct layout *l, size_t off)
{
	return BASE + off + 4 + (uint64_t)rel32_at(l, off);
}

static void link_sample(struct opatch *p, struct sample_syms *s, struct layout *l, uint64_t *addr)
{
	sample_patch(p, s);
	for (size_t i = 0; i < p->nsyms; i++)
		addr[i] = p->syms[i].kind == OPATCH_SYM_TARGET ? TARGET_BIAS + p->syms[i].value : 0;
	addr[s->puts] = PUTS;
	CHECK(layout_plan(l, p) == 0);
}

static void test_linked(void)
{
	struct sample_syms s;
	struct opatch p;
	struct layout l;
	uint64_t addr[16], slot, text;

	link_sample(&p, &s, &l, addr);
	CHECK(layout_link(&l, &p, BASE, addr, NULL) == 0);
	/* Registry, code, data: each on pages of its own. */
	CHECK(l.reg_size % LAYOUT_PAGE == 0 && l.text_off == l.reg_size);
	CHECK(l.data_off % LAYOUT_PAGE == 0 && l.data_off >= l.text_off + l.text_size);
	CHECK(l.total == l.data_off + l.data_size);
	text = l.sec_off[s.text];
	CHECK(text >= l.text_off && text + sizeof(sample_code) <= l.data_off);
	CHECK(l.sec_off[s.bss] >= l.data_off);
	/* The far call goes to a stub in the code pages, which holds puts. */
	CHECK(l.stub_off[s.puts] >= 0);
	CHECK(rel32_target(&l, text + SAMPLE_CALL_AT) == BASE + (uint64_t)l.stub_off[s.puts]);
	CHECK(memmem(l.image + l.stub_off[s.puts], 16, &(uint64_t){PUTS}, 8) != NULL);
	/* Data references lead to the data itself. */
	CHECK(rel32_target(&l, text + SAMPLE_MOV_AT) == BASE + l.sec_off[s.bss]);
	CHECK(rel32_target(&l, text + SAMPLE_LEA_AT) == TARGET_BIAS + 0x4010);
	/* The GOT-relative load reads a slot that holds the address. */
	CHECK(l.got_off[s.old_ptr] >= 0);
	CHECK(rel32_target(&l, text + SAMPLE_GOT_AT) == BASE + (uint64_t)l.got_off[s.old_ptr]);
	memcpy(&slot, l.image + l.got_off[s.old_ptr], 8);
	CHECK(slot == TARGET_BIAS + 0x4100);
	/* The code bytes around the fields are the patch's. */
	CHECK(l.image[text] == 0xe8 && l.image[text + sizeof(sample_code) - 1] == 0xc3);
	layout_free(&l);
	opatch_free(&p);
}

static void test_out_of_reach(void)
{
	struct sample_syms s;
	struct opatch p;
	struct layout l;
	uint64_t addr[16];

	link_sample(&p, &s, &l, addr);
	/* The target's variable 4 GiB away: a PC32 cannot reach it. */
	addr[s.old_table] = BASE + (4ull << 30);
	CHECK(layout_link(&l, &p, BASE, addr, NULL) == -ERANGE);
	CHECK(strstr(opus_errmsg(), "old_table") != NULL);
	layout_free(&l);
	opatch_free(&p);
}

/* Whether the sample, with one more relocation (rela, its symbol f's or
 * its section's), makes a pointer to a function of its own. */
static bool makes_code_pointers_with(uint32_t type, bool section_sym, int64_t addend)
{
	struct sample_syms s;
	struct opatch p;
	bool makes;
	int sec = 0;

	sample_patch(&p, &s);
	if (section_sym)
		sec = opatch_find_sym(&p, ".text.f", OPATCH_SYM_SECTION, 0);
	CHECK(sec >= 0);
	opatch_add_rela(&p, (uint32_t)s.text,
			&(struct opatch_rela){SAMPLE_LEA_AT, type,
					      (uint32_t)(section_sym ? sec : s.f), addend});
	makes = layout_makes_code_pointers(&p);
	opatch_free(&p);
	return makes;
}

/* Calls, and references into the middle of a function (a jump table's),
 * make no pointer a signal handler could be; an address of a function of
 * the patch, by its name or as its section's start, does. */
static void test_code_pointers(void)
{
	struct sample_syms s;
	struct opatch p;

	sample_patch(&p, &s);
	CHECK(!layout_makes_code_pointers(&p)); /* its own variable, the target's */
	opatch_free(&p);
	CHECK(!makes_code_pointers_with(R_X86_64_PLT32, false, -4));
	CHECK(!makes_code_pointers_with(R_X86_64_PC32, true, 16));
	CHECK(makes_code_pointers_with(R_X86_64_PC32, false, -4));
	CHECK(makes_code_pointers_with(R_X86_64_REX_GOTPCRELX, false, -4));
	CHECK(makes_code_pointers_with(R_X86_64_PC32, true, -4));
	CHECK(makes_code_pointers_with(R_X86_64_64, true, 0));
	CHECK(!makes_code_pointers_with(R_X86_64_64, true, 8));
}

int main(void)
{
	test_linked();
	test_out_of_reach();
	test_code_pointers();
	return unit_status();
}
