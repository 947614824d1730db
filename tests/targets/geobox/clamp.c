/* Both coordinates within their bounds, tested as vectors: gcc compares
 * with the constants in memory, and a compare instruction carries its
 * predicate as an immediate byte after the constant's displacement (the
 * relocation's addend is then 5 bytes short, not 4). */
#include "geobox.h"

#include <emmintrin.h>

int within(double lon, double lat)
{
	__m128d p = _mm_set_pd(lat, lon);
	__m128d over = _mm_cmpgt_pd(p, _mm_set_pd(85.05, 180));
	__m128d under = _mm_cmplt_pd(p, _mm_set_pd(-85.05, -180));

	return _mm_movemask_pd(_mm_or_pd(over, under)) == 0;
}
