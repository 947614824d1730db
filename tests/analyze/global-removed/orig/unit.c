#include <string.h>

int counter;
static int hits;
int limit = 8;

int add(int a, int b)
{
	int sum = a + b;

	counter++;
	return sum;
}
