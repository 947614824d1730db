/* The memory map parser, over text as the kernel writes it: an anonymous
 * mapping in the middle keeps an empty path (it once took the next line
 * for its own), a path with spaces is kept whole, the device is read in
 * hex, and a malformed line is refused. Then this process's own map, which
 * must show the code of main. */
#include "live/proc.h"
#include "unit.h"

#include <stdint.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char text[] =
    "5635fe7d9000-5635fe7db000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
    "7f8029566000-7f802962a000 rw-p 00000000 00:00 0 \n"
    "7f802962a000-7f8029681000 r-xp 0001a000 fe:01 320475                     /tmp/a b (deleted)\n"
    "7ffd1c9e0000-7ffd1ca01000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffd1caf0000-7ffd1caf1000 r-xp 00000000 00:00 0 \n";

static int parse(const char *s, struct proc_maps *m)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", s);
	return proc_maps_parse("test", buf, m);
}

int main(void)
{
	struct proc_maps m;

	CHECK(parse(text, &m) == 0);
	CHECK(m.n == 5);
	CHECK(m.v[0].start == 0x5635fe7d9000ull && m.v[0].end == 0x5635fe7db000ull);
	CHECK(!strcmp(m.v[0].path, "/usr/bin/cat") && m.v[0].inode == 247134);
	CHECK(m.v[0].dev == makedev(0xfe, 0));
	CHECK(!strcmp(m.v[1].path, "") && m.v[1].inode == 0);
	CHECK(!strcmp(m.v[2].perms, "r-xp") && m.v[2].offset == 0x1a000);
	CHECK(!strcmp(m.v[2].path, "/tmp/a b (deleted)") && m.v[2].dev == makedev(0xfe, 1));
	CHECK(proc_map_is(&m.v[2], "/tmp/a b"));
	CHECK(!strcmp(m.v[3].path, "[stack]"));
	CHECK(!strcmp(m.v[4].path, ""));
	CHECK(proc_map_at(&m, 0x7f8029566000ull) == &m.v[1]);
	CHECK(proc_map_at(&m, 0x7f802962a000ull - 1) == &m.v[1]);
	CHECK(proc_map_at(&m, 0x1000) == NULL);
	proc_maps_free(&m);

	CHECK(parse("1000-2000 rw-p 0 00:00 0\nnot a line\n", &m) != 0);
	CHECK(parse("2000-1000 rw-p 0 00:00 0\n", &m) != 0);
	CHECK(parse("1000-2000 rw-p 0 00:00\n", &m) != 0);
	CHECK(parse("1000-2000 rw 0 00:00 0\n", &m) != 0);

	CHECK(proc_maps_read(getpid(), &m) == 0);
	const struct proc_map *self = proc_map_at(&m, (uint64_t)(uintptr_t)main);

	CHECK(self && self->perms[2] == 'x' && self->path[0] == '/' && self->inode);
	proc_maps_free(&m);
	return unit_status();
}
