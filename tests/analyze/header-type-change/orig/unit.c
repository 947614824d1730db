#include "limits.h"

struct limits current;

int allowed(int n)
{
	return n <= current.max;
}
