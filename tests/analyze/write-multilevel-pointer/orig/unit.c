void clear(int **slots, int n)
{
	for (int i = 0; i < n; i++)
		slots[i] = 0;
}
