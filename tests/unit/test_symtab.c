/* Name lookups in real symbol tables: this test's own .symtab and libc's
 * .dynsym. Every symbol is found under its name (up to any @VERSION), and
 * what a lookup returns is every symbol of that name and nothing else, in
 * table order; a name no symbol has finds nothing. Address lookups find
 * nothing until the functions are indexed, then a function covering each
 * function's start, the first such in table order. A lookup through the
 * library's .gnu.hash finds what the loaded .dynsym finds, for every name
 * in it and for names in none. */
#include "util/elf.h"
#include "unit.h"

#include <elf.h>
#include <stdbool.h>
#include <string.h>

static bool same_key(const char *a, const char *b)
{
	size_t x = strcspn(a, "@"), y = strcspn(b, "@");

	return x == y && !strncmp(a, b, x);
}

static void check_table(const struct opus_symtab *t)
{
	size_t first, n;

	CHECK(t->count > 100);
	for (size_t i = 0; i < t->count; i++) {
		const char *name = t->syms[i].name;
		size_t found = 0, expected = 0;

		n = opus_symtab_named(t, name, &first);
		for (size_t k = 0; k < n; k++) {
			CHECK(same_key(t->syms[t->by_name[first + k]].name, name));
			CHECK(!k || t->by_name[first + k] > t->by_name[first + k - 1]);
			found += t->by_name[first + k] == i;
		}
		for (size_t j = 0; j < t->count; j++)
			expected += same_key(t->syms[j].name, name);
		CHECK(found == 1);
		CHECK(n == expected);
	}
	CHECK(opus_symtab_named(t, "no such symbol, anywhere", &first) == 0);
}

static void check_funcs(struct opus_symtab *t)
{
	size_t checked = 0;

	CHECK(opus_symtab_func_at(t, t->syms[0].value) == NULL); /* not indexed yet */
	CHECK(opus_symtab_index_funcs(t) == 0);
	for (size_t i = 0; i < t->count; i++) {
		const struct opus_sym *s = &t->syms[i], *at;

		if (s->type != STT_FUNC || s->shndx == SHN_UNDEF || !s->size)
			continue;
		at = opus_symtab_func_at(t, s->value);
		CHECK(at && at <= s && at->value <= s->value &&
		      s->value < at->value + (at->size ? at->size : 1));
		checked++;
	}
	CHECK(checked > 5);
}

static void check_gnu_hash(Elf *elf, const struct opus_symtab *t)
{
	struct opus_gnu_hash h;
	size_t found = 0;
	struct opus_sym s;

	CHECK(opus_gnu_hash_open(elf, &h) == 0);
	for (size_t i = 0; i < t->count; i++) {
		const char *name = t->syms[i].name;
		const struct opus_sym *want = opus_symtab_find_global(t, name);
		bool got = opus_gnu_hash_find_global(&h, name, &s);

		CHECK(got == (want != NULL));
		if (!got || !want)
			continue;
		CHECK(!strcmp(s.name, want->name) && s.value == want->value &&
		      s.size == want->size && s.type == want->type && s.bind == want->bind &&
		      s.shndx == want->shndx && !s.hidden);
		found++;
	}
	CHECK(found > 1000);
	CHECK(!opus_gnu_hash_find_global(&h, "no such symbol, anywhere", &s));
	CHECK(!opus_gnu_hash_find_global(&h, "", &s));
}

int main(void)
{
	struct opus_elf self, libc;
	struct opus_symtab t;

	CHECK(opus_elf_open("/proc/self/exe", &self) == 0);
	CHECK(opus_symtab_load(self.elf, false, &t) == 0);
	check_table(&t);
	check_funcs(&t);
	opus_symtab_free(&t);
	CHECK(opus_symtab_named(&t, "main", &(size_t){0}) == 0); /* freed: empty */
	opus_elf_close(&self);
	CHECK(opus_elf_open("/lib/x86_64-linux-gnu/libc.so.6", &libc) == 0);
	CHECK(opus_symtab_load(libc.elf, true, &t) == 0);
	check_table(&t);
	check_gnu_hash(libc.elf, &t);
	check_funcs(&t);
	opus_symtab_free(&t);
	opus_elf_close(&libc);
	return unit_status();
}
