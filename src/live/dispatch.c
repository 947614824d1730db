#include "dispatch.h"

#include <string.h>

/* Offsets of the fields dispatch_stub fills in the code below. */
#define AT_TABLE 3
#define AT_NEW	 50
#define AT_OLD	 66

/* An empty table (no transition running, or it has ended) sends the call
 * on before %fs is read: once a transition is over, a thread whose thread
 * pointer is not its own runs through the dispatcher as through a jump. */
static const uint8_t stub_code[74] = {
    0x51,					 /*  0: push %rcx */
    0x48, 0xb9, 0,    0,    0,	  0, 0, 0, 0, 0, /*  1: movabs $table, %rcx */
    0x48, 0x83, 0x39, 0x00,			 /* 11: cmpq $0, (%rcx): empty */
    0x74, 0x1a,					 /* 15: je new1 (43) */
    0x50,					 /* 17: push %rax */
    0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0,	 /* 18: mov %fs:0, %rax */
    0x48, 0x39, 0x01,				 /* 27: cmp %rax, (%rcx) */
    0x74, 0x1a,					 /* 30: je old (58) */
    0x48, 0x83, 0xc1, 0x08,			 /* 32: add $8, %rcx */
    0x48, 0x83, 0x39, 0x00,			 /* 36: cmpq $0, (%rcx): the end */
    0x75, 0xf1,					 /* 40: jne 27 */
    0x58,					 /* 42: new: pop %rax */
    0x59,					 /* 43: new1: pop %rcx */
    0xff, 0x25, 0,    0,    0,	  0,		 /* 44: jmp *50(%rip) */
    0,	  0,	0,    0,    0,	  0, 0, 0,	 /* 50: new_addr */
    0x58, 0x59,					 /* 58: old: pop %rax; pop %rcx */
    0xff, 0x25, 0,    0,    0,	  0,		 /* 60: jmp *66(%rip) */
    0,	  0,	0,    0,    0,	  0, 0, 0,	 /* 66: old_addr */
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
