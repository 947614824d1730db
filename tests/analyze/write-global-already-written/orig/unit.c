#include <string.h>

int counter;
static int hits;

int add(int a, int b)
{
	int sum = a + b;

	counter++;
	return sum;
}

void reset(void)
{
	hits = 0;
}
