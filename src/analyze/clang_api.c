#define OPUS_CLANG_IMPL
#include "clang_api.h"
#include "util/err.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

struct opus_clang opus_clang;

int opus_clang_load(void)
{
	static void *lib;
	const char *names[] = {getenv("OPUS_LIBCLANG"), "libclang-14.so.1", "libclang.so.1",
			       OPUS_LLVM_DIR "/lib/libclang.so"};

	if (lib)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !lib; i++)
		if (names[i])
			lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return opus_err(-ENOENT, "libclang is not installed (Debian: libclang1-14): %s",
				dlerror());
#define OPUS_CLANG_BIND(name)                                                                      \
	if (!(opus_clang.name = (__typeof__(opus_clang.name))dlsym(lib, "clang_" #name)))          \
		return opus_err(-ENOENT, "libclang has no clang_" #name);
	OPUS_CLANG_FUNCS(OPUS_CLANG_BIND)
#undef OPUS_CLANG_BIND
	return 0;
}
