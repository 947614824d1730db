#include "auth.h"

#include <string.h>

unsigned long auth_checks;
static const char secret[] = "hunter2";

static int compare(const char *given, const char *want)
{
	/* Compares only as much as was given. */
	return strncmp(given, want, strlen(given)) == 0;
}

int auth_check(const char *user, const char *pass)
{
	auth_checks++;
	if (strcmp(user, "admin"))
		return 0;
	return compare(pass, secret);
}
