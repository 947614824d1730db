/* A patch as opus build makes one, built in memory for the unit tests of
 * the patch file and its layout: a function that calls a library
 * function (PLT32, through a stub when far), loads a new zeroed variable
 * of its own (PC32) and takes the address of a variable of the target
 * (PC32), and a GOT-relative load of a target symbol. */
#ifndef OPUS_TESTS_SAMPLE_PATCH_H
#define OPUS_TESTS_SAMPLE_PATCH_H

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "patchfile/opatch.h"

/* call puts; mov counter(%rip),%eax; lea old_table(%rip),%rax;
 * mov old_ptr@GOTPCREL(%rip),%rax; ret */
static const uint8_t sample_code[] = {
    0xe8, 0,	0,    0, 0,	  /* call: rel32 at 1 */
    0x8b, 0x05, 0,    0, 0, 0,	  /* mov: disp32 at 7 */
    0x48, 0x8d, 0x05, 0, 0, 0, 0, /* lea: disp32 at 14 */
    0x48, 0x8b, 0x05, 0, 0, 0, 0, /* mov GOT: disp32 at 21 */
    0xc3,
};

enum { SAMPLE_CALL_AT = 1, SAMPLE_MOV_AT = 7, SAMPLE_LEA_AT = 14, SAMPLE_GOT_AT = 21 };

/* Symbol indices of the sample, for tests that look them up. */
struct sample_syms {
	int text, bss, f, counter, puts, old_table, old_ptr;
};

static inline void sample_patch(struct opatch *p, struct sample_syms *s)
{
	opatch_init(p);
	p->id = strdup("unit-1");
	p->description = strdup("a sample");
	p->diff_sha256 = strdup("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	p->findings = strdup("x.c:3: warning: global-added: counter is new\n");
	p->target_name = strdup("libsample.so.1");
	p->build_id_len = 20;
	for (size_t i = 0; i < p->build_id_len; i++)
		p->build_id[i] = (uint8_t)(i * 7 + 1);
	s->text = opatch_add_section(p, ".text.f", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 16,
				     sample_code, sizeof(sample_code));
	s->bss =
	    opatch_add_section(p, ".bss.counter", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 8, NULL, 8);
	opatch_add_sym(p, ".text.f", OPATCH_SYM_SECTION, (uint32_t)s->text, 0, 0, STT_SECTION);
	s->f = opatch_add_sym(p, "f", OPATCH_SYM_DEFINED, (uint32_t)s->text, 0, sizeof(sample_code),
			      STT_FUNC);
	s->counter =
	    opatch_add_sym(p, "counter", OPATCH_SYM_DEFINED, (uint32_t)s->bss, 0, 8, STT_OBJECT);
	s->puts = opatch_add_sym(p, "puts", OPATCH_SYM_EXTERN, 0, 0, 0, STT_FUNC);
	s->old_table = opatch_add_sym(p, "old_table", OPATCH_SYM_TARGET, 0, 0x4010, 64, STT_OBJECT);
	s->old_ptr = opatch_add_sym(p, "old_ptr", OPATCH_SYM_TARGET, 0, 0x4100, 8, STT_OBJECT);
	opatch_add_rela(
	    p, (uint32_t)s->text,
	    &(struct opatch_rela){SAMPLE_CALL_AT, R_X86_64_PLT32, (uint32_t)s->puts, -4});
	opatch_add_rela(
	    p, (uint32_t)s->text,
	    &(struct opatch_rela){SAMPLE_MOV_AT, R_X86_64_PC32, (uint32_t)s->counter, -4});
	opatch_add_rela(
	    p, (uint32_t)s->text,
	    &(struct opatch_rela){SAMPLE_LEA_AT, R_X86_64_PC32, (uint32_t)s->old_table, -4});
	opatch_add_rela(
	    p, (uint32_t)s->text,
	    &(struct opatch_rela){SAMPLE_GOT_AT, R_X86_64_REX_GOTPCRELX, (uint32_t)s->old_ptr, -4});
	opatch_add_func(p, "f", 0x1130, 32, (uint32_t)s->f, false);
	memset(p->funcs[0].old_sha256, 0xab, sizeof(p->funcs[0].old_sha256));
}

#endif
