struct conn {
	int fd;
	int state;
	char name[16];
};

void conn_open(struct conn *c, int fd)
{
	c->fd = fd;
}
