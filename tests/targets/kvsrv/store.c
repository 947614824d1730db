#include "kv.h"

#include <stdio.h>

struct slot {
	char key[MAX_KEY + 8];
	char value[32];
};

static struct slot slots[64];
static unsigned long used;

int kv_put(const char *key, const char *value)
{
	if (!key_ok(key) || used == sizeof(slots) / sizeof(slots[0]))
		return -1;
	for (unsigned long i = 0; i < used; i++)
		if (!strcmp(slots[i].key, key)) {
			snprintf(slots[i].value, sizeof(slots[i].value), "%s", value);
			return 0;
		}
	snprintf(slots[used].key, sizeof(slots[used].key), "%s", key);
	snprintf(slots[used].value, sizeof(slots[used].value), "%s", value);
	used++;
	return 0;
}

const char *kv_get(const char *key)
{
	for (unsigned long i = 0; i < used; i++)
		if (!strcmp(slots[i].key, key))
			return slots[i].value;
	return NULL;
}

unsigned long kv_count(void)
{
	return used;
}
