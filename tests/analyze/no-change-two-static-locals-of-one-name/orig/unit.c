int pick(int which, int n)
{
	if (which) {
		static int limit = 10;

		return n < limit ? n : limit;
	} else {
		static int limit = 20;

		return n < limit ? n : limit;
	}
}

int other(int n)
{
	return n + 1;
}
