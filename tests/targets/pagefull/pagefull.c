/* Many small functions side by side, dozens to a page: a fix to all of
 * them puts many jumps on one page. Prints "ready 0", then every 20 ms the
 * sum of every function's answer for x = 1000. */
#include <stdio.h>
#include <time.h>

#define F(i)                                                                                       \
	__attribute__((noinline)) int f##i(int x)                                                  \
	{                                                                                          \
		return (x ^ 0x5a5a) * 3 + i;                                                       \
	}
#define F8(i) F(i##0) F(i##1) F(i##2) F(i##3) F(i##4) F(i##5) F(i##6) F(i##7)

/* clang-format off */
F8(1) F8(2) F8(3) F8(4) F8(5) F8(6) F8(7) F8(8)

#define R8(i) f##i##0, f##i##1, f##i##2, f##i##3, f##i##4, f##i##5, f##i##6, f##i##7
static int (*volatile fns[])(int) = {R8(1), R8(2), R8(3), R8(4), R8(5), R8(6), R8(7), R8(8)};
/* clang-format on */

int main(void)
{
	printf("ready 0\n");
	fflush(stdout);
	for (;;) {
		long sum = 0;

		for (unsigned i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
			sum += fns[i](1000);
		printf("%ld\n", sum);
		fflush(stdout);
		nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	}
}
