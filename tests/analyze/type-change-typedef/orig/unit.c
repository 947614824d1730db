typedef int count_t;

count_t total;

void bump(void)
{
	total++;
}
