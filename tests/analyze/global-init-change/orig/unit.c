int limit = 10;

int over(int n)
{
	return n > limit;
}
