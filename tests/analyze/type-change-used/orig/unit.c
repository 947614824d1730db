struct conn {
	int fd;
	int state;
};

struct conn conns[16];

int conn_fd(const struct conn *c)
{
	return c->fd;
}
