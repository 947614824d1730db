/* Its one 16-byte constant, {-85.05, the limit}, is stored whole by
 * north_range; too_far_north reads only its second half, 8 bytes into the
 * last entry of .rodata.cst16. */
#include "geobox.h"

void north_range(struct range *r)
{
	r->min = -85.05;
	r->max = 85.06;
}

int too_far_north(double lat)
{
	return lat > 85.06;
}
