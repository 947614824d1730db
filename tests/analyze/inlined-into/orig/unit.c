static int clamp(int v)
{
	return v > 100 ? 100 : v;
}

int scale(int v)
{
	return clamp(v * 2);
}

int shift(int v)
{
	return clamp(v + 10);
}
