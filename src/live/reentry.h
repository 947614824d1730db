/* Could code jump into the bytes of a jump written over an entry, past
 * its first? A thread that goes on running old code after the entries are
 * written (a per-thread transition's listed threads) would then run that
 * jump from its middle: gcc starts some loops at a function's second
 * instruction, and their back edge lands 1-4 bytes into the entry
 * (nginx's ngx_strcasecmp). The bytes are not decoded: any bytes that read
 * as such a jump count, wherever they start, so a false match can only
 * keep a thread waiting. */
#ifndef OPUS_LIVE_REENTRY_H
#define OPUS_LIVE_REENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the bytes at code[i] would jump, taken as jcc or jmp rel8
 * (0x70-0x7f, 0xeb), loop or jrcxz (0xe0-0xe3), jmp rel32 (0xe9) or jcc
 * rel32 (0x0f 0x80-0x8f); 0 if they are none of these. code[0] is at
 * address at; len bytes can be read. */
uint64_t reentry_jump_target(const uint8_t *code, size_t i, size_t len, uint64_t at);
/* Is addr one of bytes 1 to JUMP_SIZE - 1 of a jump at one of the n
 * entries (sorted ascending)? */
bool reentry_in_jump_bytes(const uint64_t *entries, size_t n, uint64_t addr);
/* Do any bytes of code (len, at address at) jump into such bytes? */
bool reentry_code_may_jump(const uint8_t *code, size_t len, uint64_t at, const uint64_t *entries,
			   size_t n);

#endif
