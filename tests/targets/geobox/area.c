/* Linked first: its constant pair {-85.05, 85.05} is the one the link
 * keeps, so box.c's pairs do not lie side by side in the binary as they do
 * in box.c's compile. */
#include "geobox.h"

void lat_range(struct range *r)
{
	r->min = -85.05;
	r->max = 85.05;
}
