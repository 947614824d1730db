# Patching a shared library in a running process, found by its build-id.
D=$TARGETS/libauth

# edit_cdb [JQ OPTION]... FILTER: $WORK/src/compile_commands.json rewritten
# through jq, with $d bound to $WORK/src.
edit_cdb() {
	jq --arg d "$WORK/src" "$@" "$WORK/src/compile_commands.json" >"$WORK/cdb" &&
		mv "$WORK/cdb" "$WORK/src/compile_commands.json"
}

# build_fix DIFF: built against libauth.so into $WORK/fix.opatch, its output
# in $WORK/build.out; a failed build fails the test.
build_fix() {
	"$OPUS" build --source "$WORK/src" --diff "$1" --binary "$WORK/src/libauth.so" \
		-o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 || fail "build: $(cat "$WORK/build.out")"
}

library_fix_cycle() {
	local checks
	start "$WORK/src/authd"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	checks=$(req CHECKS)
	build_fix "$D/fix-compare.diff"
	assert_contains "replaced auth_check" "$(cat "$WORK/build.out")" "build report"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "libauth.so" "$("$OPUS" list "$PID")" "list names the library"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	# The new code counts in the variable the executable reads.
	assert_eq $((checks + 2)) "$(req CHECKS)" "auth_checks seen by the executable"
	"$OPUS" revert "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "old behaviour after revert"
	assert_eq $((checks + 3)) "$(req CHECKS)" "auth_checks after revert"
	assert_running "$PID"
}

test_shared_library_in_pie() {
	build_libauth "$WORK" -fPIE -pie
	library_fix_cycle
}

# A non-PIE executable holds a COPY of auth_checks; the library's own copy
# is stale, and new code must use the executable's.
test_shared_library_copy_relocated_variable() {
	build_libauth "$WORK" -fno-pie -no-pie
	readelf -rW "$WORK/src/authd" | grep 'R_X86_64_COPY.*auth_checks' >/dev/null ||
		fail "expected a copy relocation for auth_checks"
	library_fix_cycle
}

# A fix that changes the library and a test program of its tree, which
# includes the library's .c (as cJSON's tests do): built against the
# library, the test's unit is named and left out, and the library's fix
# applies. Before, the build failed: "main: the binary has no function of
# that name".
test_library_fix_that_also_changes_a_test_program() {
	build_libauth "$WORK" -fPIE -pie
	cat >"$WORK/src/authtest.c" <<'C'
#include "auth.c"
#include <stdio.h>

int main(void)
{
	printf("%d\n", auth_check("admin", ""));
	return 0;
}
C
	edit_cdb '. + [{directory: $d, file: "authtest.c",
		arguments: ["gcc", "-O2", "-g", "-c", "authtest.c", "-o", "authtest.o"]}]'
	{
		cat "$D/fix-compare.diff"
		printf -- '--- a/authtest.c\n+++ b/authtest.c\n@@ -4,4 +4,4 @@\n'
		printf ' int main(void)\n {\n-\tprintf("%%d\\n", auth_check("admin", ""));\n'
		printf '+\tprintf("empty: %%d\\n", auth_check("admin", ""));\n \treturn 0;\n'
	} >"$WORK/fix.diff"
	(cd "$WORK/src" && patch --dry-run -p1 -s <"$WORK/fix.diff") || fail "the test's diff does not apply"
	start "$WORK/src/authd"
	build_fix "$WORK/fix.diff"
	assert_contains "replaced auth_check" "$(cat "$WORK/build.out")" "build report"
	assert_contains "authtest.c (unit): not part of $WORK/src/libauth.so" "$(cat "$WORK/build.out")" \
		"the test's unit is named as left out"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_running "$PID"
}

# libtool compiles each source twice, for the static archive and, with
# -fPIC, for the shared library; compile_commands.json lists both. The
# build takes the compile command the library's DWARF records. Before, it
# took the first: here the static one, whose code the library does not hold
# ("the binary's code differs from a compile of the tree"), and a fix to a
# header took both, which the build refused as two codes for one function.
test_library_built_twice_by_libtool_patches_the_shared_copy() {
	build_libauth "$WORK" -fPIE -pie
	edit_cdb '[{directory: $d, file: "auth.c",
		arguments: ["gcc", "-O2", "-g", "-fno-pic", "-c", "auth.c", "-o", "auth-static.o"]}] + .'
	start "$WORK/src/authd"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	build_fix "$D/fix-compare.diff"
	assert_contains "auth.c (unit): 2 compile commands build it: the one writing auth.o is taken" \
		"$(cat "$WORK/build.out")" "the build names the compile command it took"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	"$OPUS" revert "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "old behaviour after revert"
	assert_running "$PID"
}

# A fix that also adds a test program (libxml2's testcatalog.c came with
# CVE-2026-0990's fix): the new source has no compile command, and is left
# out like code the build does not compile. Before, analyze and build
# refused the whole diff: "the diff adds testcatalog.c ... not supported".
test_fix_that_adds_a_test_source_applies_without_it() {
	build_libauth "$WORK" -fPIE -pie
	{
		cat "$D/fix-compare.diff"
		printf -- '--- /dev/null\n+++ b/authtest_new.c\n@@ -0,0 +1,3 @@\n'
		printf '+#include "auth.h"\n+\n+int main(void) { return auth_check("admin", ""); }\n'
	} >"$WORK/fix.diff"
	(cd "$WORK/src" && patch --dry-run -p1 -s <"$WORK/fix.diff") || fail "the test's diff does not apply"
	"$OPUS" analyze --source "$WORK/src" --diff "$WORK/fix.diff" >"$WORK/analyze.out" 2>&1 ||
		fail "analyze: $(cat "$WORK/analyze.out")"
	assert_contains "auth_check" "$(cat "$WORK/analyze.out")" "the changed function analysed"
	start "$WORK/src/authd"
	build_fix "$WORK/fix.diff"
	assert_contains "authtest_new.c (diff): no compile command builds it" "$(cat "$WORK/build.out")" \
		"the new source named as left out"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_running "$PID"
}

# But a fix whose code calls a function that only the new file defines
# cannot be a live patch: the build says so, naming the function and the
# file, instead of writing a patch that apply refuses ("symbol ... is not
# defined by any loaded object").
test_fix_calling_into_a_new_source_is_refused_at_build() {
	build_libauth "$WORK" -fPIE -pie
	cp -a "$WORK/src" "$WORK/new"
	sed -i 's/^\tauth_checks++;/\tauth_checks++;\n\tif (!auth_extra(pass))\n\t\treturn 0;/' "$WORK/new/auth.c"
	sed -i '1i int auth_extra(const char *p);' "$WORK/new/auth.c"
	printf 'int auth_extra(const char *p);\n\nint auth_extra(const char *p)\n{\n\treturn p[0] != 0;\n}\n' \
		>"$WORK/new/extra.c"
	(cd "$WORK" && diff -uN --label a/auth.c --label b/auth.c src/auth.c new/auth.c
		diff -uN --label /dev/null --label b/extra.c /dev/null new/extra.c) >"$WORK/fix.diff"
	expect_fail "a fix calling into a new file" "$OPUS" build --source "$WORK/src" \
		--diff "$WORK/fix.diff" --binary "$WORK/src/libauth.so" -o "$WORK/fix.opatch"
	assert_contains "uses auth_extra, which extra.c, a file the diff adds, defines" "$ERR" \
		"the function and the file named"
	[ ! -e "$WORK/fix.opatch" ] || fail "a patch file was written"
}

# A package that builds its library in several flavours from one tree, each
# in its own directory with its own -D (curl's openssl and gnutls builds):
# every file has one compile command per flavour, with the same code
# options. The build takes the one run in the directory the library's DWARF
# names. That directory is relative, as Debian's -ffile-prefix-map leaves
# it, and so is the unit's name ("../auth.c"). Before, the build took the
# first flavour's command, whose code the library does not hold.
test_library_built_in_two_flavours_patches_the_right_one() {
	build_libauth "$WORK" -fPIE -pie
	mkdir "$WORK/src/flavour-a" "$WORK/src/flavour-b"
	local map=-ffile-prefix-map=$WORK/src=.
	(cd "$WORK/src/flavour-b" && gcc -O2 -g -fPIC "$map" -c ../auth.c -o auth.o &&
		gcc -shared -Wl,-soname,libauth.so auth.o -o ../libauth.so) || fail "flavour b did not build"
	edit_cdb --arg a "$WORK/src/flavour-a" --arg b "$WORK/src/flavour-b" --arg map "$map" '[
		{directory: $a, file: "../auth.c", arguments: ["gcc", "-O2", "-g", "-fPIC", $map,
			"-Dstrcmp=strcasecmp", "-c", "../auth.c", "-o", "auth.o"]},
		{directory: $b, file: "../auth.c", arguments: ["gcc", "-O2", "-g", "-fPIC", $map,
			"-c", "../auth.c", "-o", "auth.o"]}] + [.[] | select(.file != "auth.c")]'
	start "$WORK/src/authd"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	build_fix "$D/fix-compare.diff"
	assert_contains "2 compile commands build it: the one writing auth.o is taken, its directory" \
		"$(cat "$WORK/build.out")" "the choice is reported"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq DENIED "$(req 'AUTH ADMIN hunter2')" "user names still compared case by case"
	assert_running "$PID"
}
