/* Linked first: its constant pair {-85.05, 85.05} is the one the link
 * keeps, so box.c's pairs do not lie side by side in the binary as they do
 * in box.c's compile. */
#include "geobox.h"

void lat_range(struct range *r)
{
	r->min = -85.05;
	r->max = 85.05;
}

/* The south-west corner: {-180, -85.05}, a constant clamp.c's within()
 * reads too. The link keeps this copy, so within()'s two constants do not
 * lie side by side in the binary as they do in clamp.c's compile. */
void south_west(struct range *r)
{
	r->min = -180;
	r->max = -85.05;
}
