enum color { RED, GREEN, BLUE };

int is_green(enum color c)
{
	return c == GREEN;
}
