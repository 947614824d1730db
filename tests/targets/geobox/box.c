/* At -O2, gcc keeps {-180, 180} and {-85.05, 85.05} as two 16-byte
 * constants of .rodata.cst16, read as vectors by the stores and half by
 * half by the comparisons (redis's geohashEncode does the same). */
#include "geobox.h"

int box(double lon, double lat, struct range *r)
{
	if (lon > 180 || lon < -180 || lat > 85.05 || lat < -85.05)
		return 0;
	r[0].min = -180;
	r[0].max = 180;
	r[1].min = -85.05;
	r[1].max = 85.05;
	return 1;
}
