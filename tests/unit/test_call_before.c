/* Which instruction ends where a return address points, decoded backwards
 * (scan_call_before): calls this compiler made, a direct one and one
 * through a function pointer, read back from this process's own code; then
 * each encoding of an indirect call (its ModRM byte and SIB say how long it
 * is), and instructions that are no call, as bytes read through
 * /proc/self/mem. */
#include "live/mem.h"
#include "live/scan.h"
#include "unit.h"

#include <string.h>
#include <unistd.h>

static uint64_t returned_to;

__attribute__((noinline)) static void callee(void)
{
	returned_to = (uint64_t)(uintptr_t)__builtin_return_address(0);
	__asm__ volatile("" ::: "memory");
}

static void (*volatile pointer)(void) = callee;

/* What scan_call_before says of bytes b: the return address is their end. */
static int decode(int fd, const unsigned char *b, size_t n)
{
	unsigned char buf[16] = {0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
	uint64_t target;

	memcpy(buf + 8, b, n);
	return scan_call_before(fd, (uint64_t)(uintptr_t)(buf + 8 + n), &target);
}

int main(void)
{
	int fd = mem_open(getpid());
	uint64_t target = 0;

	CHECK(fd >= 0);
	callee();
	CHECK(scan_call_before(fd, returned_to, &target) == 1);
	CHECK(target == (uint64_t)(uintptr_t)callee);
	pointer();
	CHECK(scan_call_before(fd, returned_to, &target) == 2);

	CHECK(decode(fd, (const unsigned char[]){0xff, 0xd0}, 2) == 2);	      /* call *%rax */
	CHECK(decode(fd, (const unsigned char[]){0x41, 0xff, 0xd3}, 3) == 2); /* call *%r11 */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x13}, 2) == 2);	      /* call *(%rbx) */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x50, 0x38}, 3) == 2); /* call *0x38(%rax) */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x14, 0xc3}, 3) == 2); /* (%rbx,%rax,8) */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x54, 0x24, 0x08}, 4) == 2); /* 8(%rsp) */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x15, 1, 2, 3, 4}, 6) == 2); /* (%rip) */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x90, 1, 2, 3, 4}, 6) == 2); /* d32(%rax) */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x94, 0x24, 1, 2, 3, 4}, 7) == 2);
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x14, 0xc5, 1, 2, 3, 4}, 7) == 2);

	CHECK(decode(fd, (const unsigned char[]){0xff, 0xe0}, 2) == 0);	      /* jmp *%rax */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x30}, 2) == 0);	      /* push (%rax) */
	CHECK(decode(fd, (const unsigned char[]){0x48, 0x89, 0xc7}, 3) == 0); /* mov %rax,%rdi */
	CHECK(decode(fd, (const unsigned char[]){0xc3}, 1) == 0);	      /* ret */
	/* A call *d8(%rax) cut short is no call of two bytes. */
	CHECK(decode(fd, (const unsigned char[]){0xff, 0x50}, 2) == 0);
	close(fd);
	return unit_status();
}
