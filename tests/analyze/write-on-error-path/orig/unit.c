struct header {
	int id;
	int rcode;
};

#define FORMERR 1

int parse(struct header *hp, const unsigned char *msg, int len)
{
	if (len < 12)
		return -1;
	hp->id = msg[0] << 8 | msg[1];
	return 0;
}
