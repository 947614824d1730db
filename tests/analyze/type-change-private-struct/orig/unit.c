#include <stdlib.h>

struct ctx {
	int fd;
	int timeout;
};

struct ctx *ctx_new(int fd)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (c)
		c->fd = fd;
	return c;
}
