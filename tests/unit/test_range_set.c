/* The guarded ranges the stack checks look words up in: every address of
 * every range found, the gaps and the outside not, nested ranges too. */
#include "live/scan.h"
#include "unit.h"

#include <stdlib.h>

static const struct addr_range *linear(const struct addr_range *v, size_t n, uint64_t a)
{
	const struct addr_range *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (a >= v[i].lo && a < v[i].hi && (!best || v[i].lo > best->lo))
			best = &v[i];
	return best;
}

static void agrees_with_a_linear_search(const struct addr_range *v, size_t n, uint64_t lo,
					uint64_t hi)
{
	struct range_set rs;

	CHECK(range_set_init(&rs, v, n) == 0);
	for (uint64_t a = lo; a < hi; a++) {
		const struct addr_range *want = linear(v, n, a), *got = range_set_find(&rs, a);

		/* Nested: any range holding a counts, the innermost is not promised. */
		CHECK(!want == !got);
		CHECK(!got || (a >= got->lo && a < got->hi));
	}
	range_set_free(&rs);
}

int main(void)
{
	const struct addr_range disjoint[] = {{300, 310, "c", false},
					      {100, 150, "a", false},
					      {150, 160, "b", false},
					      {500, 501, "d", false}};
	const struct addr_range nested[] = {
	    {100, 400, "outer", false}, {120, 130, "inner", false}, {390, 410, "x", false}};
	struct range_set rs;

	agrees_with_a_linear_search(disjoint, 4, 0, 600);
	agrees_with_a_linear_search(nested, 3, 0, 600);

	CHECK(range_set_init(&rs, disjoint, 0) == 0);
	CHECK(!range_set_find(&rs, 0) && !range_set_find(&rs, 100));
	range_set_free(&rs);

	/* Ends: lo inside, hi outside; the largest address never wraps in. */
	CHECK(range_set_init(&rs, disjoint, 4) == 0);
	CHECK(range_set_find(&rs, 100) == &disjoint[1]);
	CHECK(range_set_find(&rs, 159) == &disjoint[2]);
	CHECK(!range_set_find(&rs, 160));
	CHECK(!range_set_find(&rs, UINT64_MAX));
	range_set_free(&rs);
	return unit_status();
}
