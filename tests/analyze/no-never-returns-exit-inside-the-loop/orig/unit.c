#include <string.h>

int last;

/* Returns once a line is read: the break is inside the loop's body. */
int read_token(const char *s, char *out, int len)
{
	int n = 0;

	while (1) {
		if (!s[n] || n == len - 1)
			break;
		out[n] = s[n];
		n++;
	}
	out[n] = '\0';
	return n;
}

/* Returns from inside an endless loop, and recurses. */
int depth(const char *s)
{
	for (;;) {
		if (*s != '(')
			return 0;
		return 1 + depth(s + 1);
	}
}
