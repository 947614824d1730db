#include "dispatch.h"

#include <string.h>

/* Offsets of the fields dispatch_stub fills in the code below. */
#define AT_TABLE 13
#define AT_NEW	 46
#define AT_OLD	 62

static const uint8_t stub_code[70] = {
    0x50,					 /*  0: push %rax */
    0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0,	 /*  1: mov %fs:0, %rax */
    0x51,					 /* 10: push %rcx */
    0x48, 0xb9, 0,    0,    0,	  0, 0, 0, 0, 0, /* 11: movabs $table, %rcx */
    0x48, 0x83, 0x39, 0x00,			 /* 21: cmpq $0, (%rcx): the end */
    0x74, 0x0b,					 /* 25: je new (38) */
    0x48, 0x39, 0x01,				 /* 27: cmp %rax, (%rcx) */
    0x74, 0x16,					 /* 30: je old (54) */
    0x48, 0x83, 0xc1, 0x08,			 /* 32: add $8, %rcx */
    0xeb, 0xef,					 /* 36: jmp 21 */
    0x59, 0x58,					 /* 38: new: pop %rcx; pop %rax */
    0xff, 0x25, 0,    0,    0,	  0,		 /* 40: jmp *46(%rip) */
    0,	  0,	0,    0,    0,	  0, 0, 0,	 /* 46: new_addr */
    0x59, 0x58,					 /* 54: old: pop %rcx; pop %rax */
    0xff, 0x25, 0,    0,    0,	  0,		 /* 56: jmp *62(%rip) */
    0,	  0,	0,    0,    0,	  0, 0, 0,	 /* 62: old_addr */
};

_Static_assert(sizeof(stub_code) <= DISPATCH_STUB_SIZE, "the stub fits its slot");

void dispatch_stub(uint8_t out[DISPATCH_STUB_SIZE], uint64_t table, uint64_t new_addr,
		   uint64_t old_addr)
{
	memset(out, 0xcc, DISPATCH_STUB_SIZE);
	memcpy(out, stub_code, sizeof(stub_code));
	memcpy(out + AT_TABLE, &table, sizeof(table));
	memcpy(out + AT_NEW, &new_addr, sizeof(new_addr));
	memcpy(out + AT_OLD, &old_addr, sizeof(old_addr));
}
