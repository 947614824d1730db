struct pair {
	int a;
	int b;
};

int sum_pair(int x)
{
	struct pair p = {x, x};

	return p.a + p.b;
}
