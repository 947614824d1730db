/* The test of the x86-64 length decoder (src/live/insn.h): the prologues
 * gcc and clang emit, the encodings it must refuse, and then every
 * instruction of real binaries as objdump decodes them (glibc, libcrypto
 * when installed, and this test itself): a length the decoder gives must
 * be objdump's, and it must know nearly every instruction and entry. */
#include "live/insn.h"
#include "unit.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEN(...) insn_length((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static void knows_prologues(void)
{
	CHECK(LEN(0x55) == 1);				      /* push %rbp */
	CHECK(LEN(0x41, 0x57) == 2);			      /* push %r15 */
	CHECK(LEN(0x48, 0x89, 0xe5) == 3);		      /* mov %rsp,%rbp */
	CHECK(LEN(0x48, 0x83, 0xec, 0x18) == 4);	      /* sub $0x18,%rsp */
	CHECK(LEN(0x48, 0x81, 0xec, 0, 1, 0, 0) == 7);	      /* sub $0x100,%rsp */
	CHECK(LEN(0xf3, 0x0f, 0x1e, 0xfa) == 4);	      /* endbr64 */
	CHECK(LEN(0x31, 0xc0) == 2);			      /* xor %eax,%eax */
	CHECK(LEN(0x8b, 0x07) == 2);			      /* mov (%rdi),%eax */
	CHECK(LEN(0x48, 0x8b, 0x05, 1, 2, 3, 4) == 7);	      /* mov 0x..(%rip),%rax */
	CHECK(LEN(0x48, 0x8d, 0x44, 0x24, 0x08) == 5);	      /* lea 0x8(%rsp),%rax */
	CHECK(LEN(0x8b, 0x04, 0x25, 1, 2, 3, 4) == 7);	      /* mov abs32 via SIB, no base */
	CHECK(LEN(0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8) == 10); /* movabs $imm64 */
	CHECK(LEN(0xb8, 1, 2, 3, 4) == 5);		      /* mov $imm32,%eax */
	CHECK(LEN(0x66, 0xb8, 1, 2) == 4);		      /* mov $imm16,%ax */
	CHECK(LEN(0xe9, 1, 2, 3, 4) == 5);		      /* jmp rel32 */
	CHECK(LEN(0x0f, 0x84, 1, 2, 3, 4) == 6);	      /* je rel32 */
	CHECK(LEN(0xf6, 0x07, 0x01) == 3);		      /* testb $1,(%rdi) */
	CHECK(LEN(0xf7, 0xd8) == 2);			      /* neg %eax: no immediate */
	CHECK(LEN(0x66, 0x0f, 0xef, 0xc0) == 4);	      /* pxor %xmm0,%xmm0 */
	CHECK(LEN(0x66, 0x0f, 0x3a, 0x0f, 0xc1, 8) == 6);     /* palignr $8 */
	CHECK(LEN(0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0) == 10); /* nopw */
	CHECK(LEN(0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0) == 9);  /* mov %fs:0x28,%rax */
}

static void refuses_what_it_does_not_know(void)
{
	CHECK(LEN(0xc5, 0xf8, 0x77) == 0);		     /* vzeroupper (VEX) */
	CHECK(LEN(0x62, 0xf1, 0x7c, 0x48, 0x28, 0xc1) == 0); /* EVEX */
	CHECK(LEN(0x06) == 0);				     /* invalid in 64-bit mode */
	CHECK(LEN(0x66, 0xe8, 1, 2, 3, 4) == 0);	     /* call with 0x66: vendor-dependent */
	CHECK(LEN(0x48, 0x8b) == 0);			     /* cut off before ModRM */
	CHECK(LEN(0x48, 0x8b, 0x05, 1, 2) == 0);	     /* cut off in the displacement */
	CHECK(LEN(0x0f, 0x0f, 0xc1, 0x9e) == 0);	     /* 3DNow! */
	CHECK(insn_length(NULL, 0) == 0);
}

struct tally {
	size_t insns, known, wrong, entries, entries_known;
	size_t first[4]; /* entries whose first instruction is 1, 2-4, 5 or more bytes, unknown */
};

/* Each byte of objdump's line "  addr:\tb0 b1 ...\tmnemonic" into code. */
static size_t read_bytes(const char *line, uint8_t *code, size_t cap, bool *bad)
{
	const char *p = strchr(line, '\t');
	size_t n = 0;

	*bad = !p || strstr(line, "(bad)");
	/* Two hex digits and a space each, up to the mnemonic's tab. */
	while (p && n < cap && isxdigit(p[1]) && isxdigit(p[2]) && p[3] == ' ') {
		unsigned b;

		sscanf(p + 1, "%2x", &b);
		code[n++] = (uint8_t)b;
		p += 3;
	}
	return n;
}

/* Every instruction objdump -d finds in path, against insn_length. */
static bool compare_with_objdump(const char *path, struct tally *t)
{
	char cmd[512], line[1024];
	bool entry = false, bad;
	uint8_t code[64];
	FILE *f;

	if (access(path, R_OK))
		return false;
	snprintf(cmd, sizeof(cmd), "objdump -d -w '%s' 2>/dev/null", path);
	if (!(f = popen(cmd, "r")))
		return false;
	while (fgets(line, sizeof(line), f)) {
		size_t n, got;

		if (strstr(line, ">:\n")) {
			entry = true;
			continue;
		}
		if (line[0] != ' ' || !(n = read_bytes(line, code, sizeof(code), &bad)) || bad)
			continue;
		got = insn_length(code, n);
		t->insns++;
		t->known += got != 0;
		t->entries += entry;
		t->entries_known += entry && got;
		if (entry)
			t->first[!got ? 3 : got == 1 ? 0 : got < 5 ? 1 : 2]++;
		if (got && got != n) {
			t->wrong++;
			if (t->wrong <= 10)
				fprintf(stderr, "%s: decoded %zu bytes, objdump %zu: %s", path, got,
					n, line);
		}
		entry = false;
	}
	return pclose(f) == 0;
}

static void agrees_with_objdump_on(const char *path, bool required)
{
	struct tally t = {0};

	if (!compare_with_objdump(path, &t)) {
		CHECK(!required);
		return;
	}
	printf("%s: %zu instructions, %zu known (%.2f%%), %zu wrong; %zu entries, %zu known "
	       "(%.2f%%); their first instruction 1 byte long %zu, 2-4 %zu, 5 or more %zu\n",
	       path, t.insns, t.known, 100.0 * (double)t.known / (double)t.insns, t.wrong,
	       t.entries, t.entries_known, 100.0 * (double)t.entries_known / (double)t.entries,
	       t.first[0], t.first[1], t.first[2]);
	CHECK(t.insns > 1000);
	CHECK(t.wrong == 0);
	/* AVX code (VEX) is the unknown part; entries are nearly all known. */
	CHECK(t.known * 100 >= t.insns * 90);
	CHECK(t.entries_known * 100 >= t.entries * 99);
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n;

	knows_prologues();
	refuses_what_it_does_not_know();
	agrees_with_objdump_on("/lib/x86_64-linux-gnu/libc.so.6", true);
	agrees_with_objdump_on("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", false);
	/* objdump's own /proc/self would be objdump. */
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = 0;
		agrees_with_objdump_on(self, true);
	}
	for (int i = 1; i < argc; i++)
		agrees_with_objdump_on(argv[i], true);
	return unit_status();
}
