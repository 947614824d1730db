# Patching a shared library in a running process, found by its build-id.
D=$TARGETS/libauth

library_fix_cycle() {
	local checks
	start "$WORK/src/authd"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	checks=$(req CHECKS)
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-compare.diff" \
		--binary "$WORK/src/libauth.so" -o "$WORK/fix.opatch" >"$WORK/build.out"
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
	jq --arg d "$WORK/src" '. + [{directory: $d, file: "authtest.c",
		arguments: ["gcc", "-O2", "-g", "-c", "authtest.c", "-o", "authtest.o"]}]' \
		"$WORK/src/compile_commands.json" >"$WORK/cdb" && mv "$WORK/cdb" "$WORK/src/compile_commands.json"
	{
		cat "$D/fix-compare.diff"
		printf -- '--- a/authtest.c\n+++ b/authtest.c\n@@ -4,4 +4,4 @@\n'
		printf ' int main(void)\n {\n-\tprintf("%%d\\n", auth_check("admin", ""));\n'
		printf '+\tprintf("empty: %%d\\n", auth_check("admin", ""));\n \treturn 0;\n'
	} >"$WORK/fix.diff"
	(cd "$WORK/src" && patch --dry-run -p1 -s <"$WORK/fix.diff") || fail "the test's diff does not apply"
	start "$WORK/src/authd"
	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/libauth.so" \
		-o "$WORK/fix.opatch" >"$WORK/build.out" || fail "build: $(cat "$WORK/build.out")"
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
	jq --arg d "$WORK/src" '[{directory: $d, file: "auth.c",
		arguments: ["gcc", "-O2", "-g", "-fno-pic", "-c", "auth.c", "-o", "auth-static.o"]}] + .' \
		"$WORK/src/compile_commands.json" >"$WORK/cdb" && mv "$WORK/cdb" "$WORK/src/compile_commands.json"
	start "$WORK/src/authd"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-compare.diff" --binary "$WORK/src/libauth.so" \
		-o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 || fail "build: $(cat "$WORK/build.out")"
	assert_contains "auth.c (unit): 2 compile commands build it: the one writing auth.o is taken" \
		"$(cat "$WORK/build.out")" "the build names the compile command it took"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	"$OPUS" revert "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "old behaviour after revert"
	assert_running "$PID"
}
