struct entry {
	union {
		int i;
		float f;
	} u[2];
	int kind;
};

static struct {
	const char *name;
	int code;
} codes[] = {{"ok", 200}, {"gone", 410}};

struct entry entries[4];

int code_of(int k)
{
	return codes[k].code + entries[k].kind;
}

int other(int n)
{
	return n + 1;
}
