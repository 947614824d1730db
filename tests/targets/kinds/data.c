#include "kinds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kinds_common; /* compiled with -fcommon: a COMMON symbol */

/* A dense switch: a jump table in .rodata. */
int kinds_switch(int n)
{
	switch (n) {
	case 0:
		return 17;
	case 1:
		return kinds_common + 3;
	case 2:
		return n * 41;
	case 3:
		return -7;
	case 4:
		return (int)strlen("four");
	case 5:
		return n << 4;
	case 6:
		return 99;
	default:
		return -1;
	}
}

static int twice(int x)
{
	return 2 * x;
}

static int square(int x)
{
	return x * x;
}

static int negate(int x)
{
	return -x;
}

/* A const table of function pointers (.data.rel.ro in PIC code). */
static const struct op {
	const char *name;
	int (*fn)(int);
} ops[] = {
    {"twice", twice},
    {"square", square},
    {"negate", negate},
    {"weak", kinds_weak},
};

const char *kinds_table(const char *name, int x, char *out, size_t len)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].name, name)) {
			snprintf(out, len, "%s(%d)=%d", ops[i].name, x, ops[i].fn(x));
			return out;
		}
	snprintf(out, len, "no op %s", name);
	return out;
}

unsigned long kinds_static(void)
{
	static unsigned long calls = 100;

	return ++calls;
}

static const int primes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29};

int kinds_const(void)
{
	int sum = 0;

	for (size_t i = 0; i < sizeof(primes) / sizeof(primes[0]); i++)
		sum += primes[i];
	return sum + (int)strlen("a string literal");
}

__attribute__((weak)) int kinds_weak(int x)
{
	return x + 1000;
}

int kinds_hidden(int x)
{
	return x ^ 0x5a;
}

__attribute__((cold, noinline)) static void complain(int x)
{
	fprintf(stderr, "kinds: negative input %d\n", x);
}

/* At -O2 the unlikely branch goes to kinds_cold.cold. */
int kinds_cold(int x)
{
	if (__builtin_expect(x < 0, 0)) {
		complain(x);
		return -1;
	}
	return x * 3 + 1;
}

static int ifunc_generic(int x)
{
	return x + 7;
}

/* The program's own IFUNC: calls go through a slot the loader fills. */
static int (*resolve_kinds_ifunc(void))(int)
{
	return ifunc_generic;
}

int kinds_ifunc(int x) __attribute__((ifunc("resolve_kinds_ifunc")));
