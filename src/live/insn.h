/* The length of one x86-64 instruction, for changing a function's entry
 * while other threads run it (issue 15): only whole instructions may
 * change then, so opus must know where the first one ends. The decoder
 * knows the general-purpose, x87 and SSE encodings compilers emit, and
 * says it does not know any other (VEX, EVEX, 3DNow!, system opcodes):
 * a wrong length would tear an instruction under a running thread, an
 * unknown one only keeps the global stop. */
#ifndef OPUS_LIVE_INSN_H
#define OPUS_LIVE_INSN_H

#include <stddef.h>
#include <stdint.h>

#define INSN_MAX 15

/* Bytes in the instruction at code[0] (len readable), or 0 when the
 * encoding is not one the decoder knows, or is cut off by len. */
size_t insn_length(const uint8_t *code, size_t len);

#endif
