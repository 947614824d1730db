/* hold LIB...: a process that maps the given shared libraries and waits,
 * so that the survey can patch a library live. Each library is opened with
 * RTLD_LAZY (a plugin may leave functions to its host), its constructors run; the
 * process prints "ready" and then sleeps until stdin closes. */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char c;

	for (int i = 1; i < argc; i++)
		if (!dlopen(argv[i], RTLD_LAZY | RTLD_GLOBAL)) {
			fprintf(stderr, "hold: %s\n", dlerror());
			return 1;
		}
	printf("ready\n");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}
