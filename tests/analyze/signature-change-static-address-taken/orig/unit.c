#include <string.h>

static int copy_name(char *dst, const char *src)
{
	strcpy(dst, src);
	return (int)strlen(dst);
}

int set_user(char *user, const char *name)
{
	return copy_name(user, name);
}

static int (*const copier)(char *, const char *) = copy_name;

int set_host(char *host, const char *name)
{
	return copy_name(host, name);
}
