/* A process that maps libauth.so and sleeps: the fleet benchmark starts
 * thousands of these and patches them all with one opus apply --all. */
#include "auth.h"

#include <unistd.h>

int main(void)
{
	auth_check("admin", "x");
	for (;;)
		pause();
}
