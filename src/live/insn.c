/* x86-64 instruction lengths (insn.h): prefixes, opcode, ModRM, SIB,
 * displacement, immediate, read from the tables of the Intel SDM, vol. 2,
 * appendix A. An opcode missing from the tables is unknown, not guessed. */
#include "insn.h"

#include <stdbool.h>

enum {
	ONE = 1 << 0,	   /* the opcode alone */
	MODRM = 1 << 1,	   /* a ModRM byte (and SIB, displacement) follows */
	IMM8 = 1 << 2,	   /* then a byte of immediate */
	IMM16 = 1 << 3,	   /* two bytes */
	IMMZ = 1 << 4,	   /* four bytes, two with the 0x66 prefix and no REX.W */
	IMMV = 1 << 5,	   /* IMMZ, or eight with REX.W (mov $imm64) */
	MOFFS = 1 << 6,	   /* an absolute address: eight bytes, four with 0x67 */
	TEST_IMM = 1 << 7, /* group 3: the immediate only for /0 and /1 (test) */
	REL32 = 1 << 8,	   /* a 32-bit branch offset, ambiguous after 0x66 */
	POP_ONLY = 1 << 9, /* 0x8f: pop for /0, AMD's XOP prefix otherwise */
};

/* The one-byte opcode map in 64-bit mode; 0: invalid, a prefix, VEX or
 * EVEX, or fwait (0x9b), which disassemblers fold into the x87
 * instruction after it though the CPU runs it alone. */
static const uint16_t one_byte[256] = {
    [0x00 ... 0x03] = MODRM,
    [0x04] = IMM8,
    [0x05] = IMMZ,
    [0x08 ... 0x0b] = MODRM,
    [0x0c] = IMM8,
    [0x0d] = IMMZ,
    [0x10 ... 0x13] = MODRM,
    [0x14] = IMM8,
    [0x15] = IMMZ,
    [0x18 ... 0x1b] = MODRM,
    [0x1c] = IMM8,
    [0x1d] = IMMZ,
    [0x20 ... 0x23] = MODRM,
    [0x24] = IMM8,
    [0x25] = IMMZ,
    [0x28 ... 0x2b] = MODRM,
    [0x2c] = IMM8,
    [0x2d] = IMMZ,
    [0x30 ... 0x33] = MODRM,
    [0x34] = IMM8,
    [0x35] = IMMZ,
    [0x38 ... 0x3b] = MODRM,
    [0x3c] = IMM8,
    [0x3d] = IMMZ,
    [0x50 ... 0x5f] = ONE,
    [0x63] = MODRM,
    [0x68] = IMMZ,
    [0x69] = MODRM | IMMZ,
    [0x6a] = IMM8,
    [0x6b] = MODRM | IMM8,
    [0x6c ... 0x6f] = ONE,
    [0x70 ... 0x7f] = IMM8,
    [0x80] = MODRM | IMM8,
    [0x81] = MODRM | IMMZ,
    [0x83] = MODRM | IMM8,
    [0x84 ... 0x8e] = MODRM,
    [0x8f] = MODRM | POP_ONLY,
    [0x90 ... 0x99] = ONE,
    [0x9c ... 0x9f] = ONE,
    [0xa0 ... 0xa3] = MOFFS,
    [0xa4 ... 0xa7] = ONE,
    [0xa8] = IMM8,
    [0xa9] = IMMZ,
    [0xaa ... 0xaf] = ONE,
    [0xb0 ... 0xb7] = IMM8,
    [0xb8 ... 0xbf] = IMMV,
    [0xc0 ... 0xc1] = MODRM | IMM8,
    [0xc2] = IMM16,
    [0xc3] = ONE,
    [0xc6] = MODRM | IMM8,
    [0xc7] = MODRM | IMMZ,
    [0xc8] = IMM16 | IMM8,
    [0xc9] = ONE,
    [0xca] = IMM16,
    [0xcb ... 0xcc] = ONE,
    [0xcd] = IMM8,
    [0xcf] = ONE,
    [0xd0 ... 0xd3] = MODRM,
    [0xd7] = ONE,
    [0xd8 ... 0xdf] = MODRM,
    [0xe0 ... 0xe7] = IMM8,
    [0xe8 ... 0xe9] = REL32,
    [0xeb] = IMM8,
    [0xec ... 0xef] = ONE,
    [0xf1] = ONE,
    [0xf4 ... 0xf5] = ONE,
    [0xf6] = MODRM | TEST_IMM | IMM8,
    [0xf7] = MODRM | TEST_IMM | IMMZ,
    [0xf8 ... 0xfd] = ONE,
    [0xfe ... 0xff] = MODRM,
};

/* The two-byte map (0x0f xx): what compilers emit, general-purpose and
 * SSE; 0x38 and 0x3a lead to the three-byte maps. */
static const uint16_t two_byte[256] = {
    [0x00 ... 0x01] = MODRM,
    [0x05] = ONE,
    [0x0b] = ONE,
    [0x0d] = MODRM,
    [0x10 ... 0x1f] = MODRM,
    [0x28 ... 0x2f] = MODRM,
    [0x31] = ONE,
    [0x40 ... 0x6f] = MODRM,
    [0x70 ... 0x73] = MODRM | IMM8,
    [0x74 ... 0x76] = MODRM,
    [0x77] = ONE,
    [0x7c ... 0x7f] = MODRM,
    [0x80 ... 0x8f] = REL32,
    [0x90 ... 0x9f] = MODRM,
    [0xa0 ... 0xa2] = ONE,
    [0xa3] = MODRM,
    [0xa4] = MODRM | IMM8,
    [0xa5] = MODRM,
    [0xa8 ... 0xa9] = ONE,
    [0xab] = MODRM,
    [0xac] = MODRM | IMM8,
    [0xad ... 0xaf] = MODRM,
    [0xb0 ... 0xb1] = MODRM,
    [0xb3] = MODRM,
    [0xb6 ... 0xb7] = MODRM,
    [0xba] = MODRM | IMM8,
    [0xbb ... 0xbf] = MODRM,
    [0xc0 ... 0xc1] = MODRM,
    [0xc2] = MODRM | IMM8,
    [0xc3] = MODRM,
    [0xc4 ... 0xc6] = MODRM | IMM8,
    [0xc7] = MODRM,
    [0xc8 ... 0xcf] = ONE,
    [0xd0 ... 0xfe] = MODRM,
};

struct prefixes {
	size_t n;      /* bytes of prefix */
	bool opsize;   /* 0x66 */
	bool addrsize; /* 0x67 */
	bool rex_w;
};

static bool is_legacy_prefix(uint8_t b)
{
	return b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x26 ||
	       b == 0x2e || b == 0x36 || b == 0x3e || b == 0x64 || b == 0x65;
}

/* Legacy prefixes, then at most one REX, which must come last. */
static void read_prefixes(const uint8_t *code, size_t len, struct prefixes *p)
{
	*p = (struct prefixes){0};
	while (p->n < len && p->n < INSN_MAX && is_legacy_prefix(code[p->n])) {
		p->opsize |= code[p->n] == 0x66;
		p->addrsize |= code[p->n] == 0x67;
		p->n++;
	}
	if (p->n < len && (code[p->n] & 0xf0) == 0x40) {
		p->rex_w = code[p->n] & 0x08;
		p->n++;
	}
}

/* ModRM, SIB and displacement at code[0]: their bytes, or 0 if cut off. */
static size_t modrm_length(const uint8_t *code, size_t len)
{
	unsigned mod, rm;
	size_t n = 1;

	if (len < 1)
		return 0;
	mod = code[0] >> 6;
	rm = code[0] & 7;
	if (mod == 3)
		return 1;
	if (rm == 4) {
		if (len < 2)
			return 0;
		n++;
		if (mod == 0 && (code[1] & 7) == 5)
			n += 4;
	} else if (mod == 0 && rm == 5) {
		n += 4; /* rip-relative */
	}
	n += mod == 1 ? 1 : mod == 2 ? 4 : 0;
	return n <= len ? n : 0;
}

static size_t immediate_length(unsigned flags, const struct prefixes *p, uint8_t modrm)
{
	size_t n = 0;

	if ((flags & TEST_IMM) && ((modrm >> 3) & 7) > 1)
		return 0;
	n += flags & IMM8 ? 1 : 0;
	n += flags & IMM16 ? 2 : 0;
	if (flags & (IMMZ | IMMV))
		n += p->rex_w ? (flags & IMMV ? 8 : 4) : p->opsize ? 2 : 4;
	n += flags & MOFFS ? (p->addrsize ? 4 : 8) : 0;
	n += flags & REL32 ? 4 : 0;
	return n;
}

size_t insn_length(const uint8_t *code, size_t len)
{
	struct prefixes p;
	unsigned flags;
	size_t n, m = 0;
	uint8_t modrm = 0;

	read_prefixes(code, len, &p);
	n = p.n;
	if (n >= len)
		return 0;
	if (code[n] != 0x0f) {
		flags = one_byte[code[n++]];
	} else if (++n < len && (code[n] == 0x38 || code[n] == 0x3a)) {
		flags = MODRM | (code[n] == 0x3a ? IMM8 : 0);
		n += 2; /* 0x38 or 0x3a, and the opcode */
	} else {
		flags = n < len ? two_byte[code[n++]] : 0;
	}
	/* Whether 0x66 shortens a branch's offset depends on the CPU's vendor. */
	if (!flags || ((flags & REL32) && p.opsize))
		return 0;
	if (flags & MODRM) {
		if (n >= len || !(m = modrm_length(code + n, len - n)))
			return 0;
		modrm = code[n];
		if ((flags & POP_ONLY) && ((modrm >> 3) & 7))
			return 0;
	}
	n += m + immediate_length(flags, &p, modrm);
	return n <= len && n <= INSN_MAX ? n : 0;
}
