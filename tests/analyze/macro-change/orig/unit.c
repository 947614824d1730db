#include <string.h>

#define NAME_MAX_LEN 16
#define NAME_BUF     (NAME_MAX_LEN + 1)
#define GREETING     "hello"

static char names[4][NAME_BUF];

int name_fits(const char *s)
{
	return strlen(s) < NAME_MAX_LEN;
}

int copy_name(int i, const char *s)
{
	if (i < 0 || i >= 4)
		return -1;
	strncpy(names[i], s, NAME_BUF - 1);
	return 0;
}

const char *greeting(void)
{
	return GREETING;
}
