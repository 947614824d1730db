struct rule {
	int kind;
	union {
		int number;
		char *text;
	} value;
};

struct rule rules[4];

int first_kind(void)
{
	return rules[0].kind;
}
