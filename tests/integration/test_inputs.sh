# The inputs users bring: Debian's patch files (which touch tests and docs
# too), diffs from other tools, trees whose units include files outside
# the tree, fixes that add an #include.
D=$TARGETS/authsrv

# apply_fix PATCH: the auth fix in force on the running authsrv.
apply_fix() {
	"$OPUS" apply "$PID" "$1"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	assert_running "$PID"
}

# A diff that also changes a doc, adds a test script and carries a DEP-3
# header: the C part is built, the rest named as left out.
test_diff_touching_tests_and_docs_builds_its_c_part() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	{
		printf 'Description: fix partial passwords\nOrigin: upstream\n---\n'
		printf -- '--- a/NEWS\n+++ b/NEWS\n@@ -1 +1,2 @@\n news\n+auth fixed\n'
		cat "$D/fix-auth.diff"
		printf -- '--- /dev/null\n+++ b/tests/t-auth.sh\n@@ -0,0 +1 @@\n+echo test\n'
	} >"$WORK/mixed.diff"
	"$OPUS" build --source "$WORK/src" --diff "$WORK/mixed.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >"$WORK/build.out"
	assert_contains "NEWS (diff): not a C source or header: left out" "$(cat "$WORK/build.out")" \
		"the doc named"
	assert_contains "tests/t-auth.sh (diff): not a C source" "$(cat "$WORK/build.out")" \
		"the test named"
	apply_fix "$WORK/fix.opatch"
}

# GNU patch reads "+++ b/file<spaces>date" and quoted names; so does opus.
test_diff_headers_as_gnu_patch_reads_them() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	sed -e 's#^--- a/authsrv.c#--- a/authsrv.c  2024-01-01 10:00:00.000000000 +0000#' \
		-e 's#^+++ b/authsrv.c#+++ "b/authsrv.c"\t2024-01-01 10:00:01.000000000 +0000#' \
		"$D/fix-auth.diff" | sed 's/$/\r/' >"$WORK/dated.diff"
	patch --dry-run -s -p1 -d "$WORK/src" <"$WORK/dated.diff" >/dev/null ||
		fail "GNU patch does not accept the diff"
	"$OPUS" build --source "$WORK/src" --diff "$WORK/dated.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >/dev/null
	apply_fix "$WORK/fix.opatch"
}

# The unit includes a header from outside --source ("../common/...").
test_unit_including_a_file_outside_the_tree() {
	mkdir -p "$WORK/proj/common"
	echo '#define GREETING "hello"' >"$WORK/proj/common/greeting.h"
	build_authsrv "$WORK/proj" -O2 -g -fPIE -pie -DWITH_COMMON
	sed -i '1i #include "../common/greeting.h"' "$WORK/proj/src/authsrv.c"
	sed -i 's/return "hello";/return GREETING;/' "$WORK/proj/src/authsrv.c"
	(cd "$WORK/proj/src" && gcc -O2 -g -fPIE -pie -DWITH_COMMON -pthread -c authsrv.c -o authsrv.o &&
		gcc -O2 -g -fPIE -pie -DWITH_COMMON -pthread authsrv.o -o authsrv)
	start "$WORK/proj/src/authsrv"
	assert_eq hello "$(req HELLO)" "the program uses the outside header"
	"$OPUS" build --source "$WORK/proj/src" --diff "$D/fix-auth.diff" \
		--binary "$WORK/proj/src/authsrv" -o "$WORK/fix.opatch" >/dev/null
	apply_fix "$WORK/fix.opatch"
}

# A header nobody includes yet, changed by a fix whose units start to
# include it: the units are in the diff, so the header's change reaches the
# build through them.
test_header_whose_includers_are_in_the_same_diff() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	echo '#define MIN_PASS 0' >"$WORK/src/policy.h"
	start "$WORK/src/authsrv"
	mkdir -p "$WORK/a" "$WORK/b"
	cp "$WORK/src/authsrv.c" "$WORK/src/policy.h" "$WORK/a/"
	cp "$WORK/a/"* "$WORK/b/"
	echo '#define MIN_PASS 8' >"$WORK/b/policy.h"
	sed -i -e '1i #include "policy.h"' \
		-e 's/return strncmp(pass, secret, strlen(pass)) == 0;/return strlen(pass) >= MIN_PASS \&\& !strcmp(pass, secret);/' \
		"$WORK/b/authsrv.c"
	(cd "$WORK" && diff -u a/policy.h b/policy.h; diff -u a/authsrv.c b/authsrv.c) >"$WORK/policy.diff" || true
	grep -q '^+++ b/policy.h' "$WORK/policy.diff" || fail "the diff does not change the header"
	"$OPUS" build --source "$WORK/src" --diff "$WORK/policy.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "empty password after the patch"
	assert_eq DENIED "$(req 'AUTH admin hunter2')" "shorter than MIN_PASS after the patch"
	assert_running "$PID"
}

# A build directory beside the source root, not inside it (Debian's expat
# copies expat/ to src/ and configures in build/, which compiles
# ../src/lib/xmlparse.c): the compile of the fixed unit must read the
# scratch copy. Before, it ran in build/ on the relative name, compiled the
# original twice, and the build said "nothing to apply" (exit 4) for a fix
# that changes compiled code.
test_build_directory_outside_the_source_root() {
	local t=$WORK/t
	mkdir -p "$t/src" "$t/build"
	cp "$D/authsrv.c" "$t/src/"
	(cd "$t/build" && gcc -O2 -g -fPIE -pthread -c ../src/authsrv.c -o authsrv.o &&
		gcc -pie -pthread authsrv.o -o authsrv)
	jq -n --arg d "$t/build" '[{directory: $d, file: "../src/authsrv.c",
		arguments: ["gcc", "-O2", "-g", "-fPIE", "-pthread", "-c", "../src/authsrv.c", "-o", "authsrv.o"]}]' \
		>"$t/build/compile_commands.json"
	start "$t/build/authsrv"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	"$OPUS" build --source "$t/src" --cdb "$t/build/compile_commands.json" --diff "$D/fix-auth.diff" \
		--binary "$t/build/authsrv" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build: $(tail -3 "$WORK/build.out")"
	assert_contains "check_password, whose source changed" "$(cat "$WORK/build.out")" \
		"the fixed code replaced"
	apply_fix "$WORK/fix.opatch"
}

# The same layout with a fix to a header the unit finds through
# -I../src (an angle-bracket include, not the unit's own directory): the
# patched compile must see the patched header. Before, "-I../src" from the
# build directory was joined as build/../src, which no rebase into the
# scratch copy matched, and the new code was compiled against the old
# header. The compile must also spell its source as the build did
# (../src/poll.c), or __FILE__ in the code the patch binds to differs.
test_header_found_from_a_build_directory_outside_the_source_root() {
	local t=$WORK/t
	mkdir -p "$t/src" "$t/build"
	printf '#define LIMIT 3\n' >"$t/src/limit.h"
	cat >"$t/src/poll.c" <<'C'
#include <limit.h>
#include <stdio.h>
#include <unistd.h>
/* noipa: not hoisted out of the loop as a pure function. where() is
 * bound to the binary's copy, which holds __FILE__ as the build spelled
 * it: the patch's compile must spell it the same. */
__attribute__((noipa)) const char *where(void) { return __FILE__; }
__attribute__((noipa)) int limit(void) { return where()[0] == '.' ? LIMIT : -1; }
int main(void)
{
	for (;;) {
		printf("%d %d\n", (int)getpid(), limit());
		fflush(stdout);
		usleep(20000);
	}
}
C
	(cd "$t/build" && gcc -O2 -g -fPIE -I../src -c ../src/poll.c -o poll.o && gcc -pie poll.o -o poll)
	jq -n --arg d "$t/build" '[{directory: $d, file: "../src/poll.c",
		arguments: ["gcc", "-O2", "-g", "-fPIE", "-I../src", "-c", "../src/poll.c", "-o", "poll.o"]}]' \
		>"$t/build/compile_commands.json"
	printf -- '--- a/limit.h\n+++ b/limit.h\n@@ -1 +1 @@\n-#define LIMIT 3\n+#define LIMIT 4\n' >"$WORK/limit.diff"
	"$t/build/poll" >"$WORK/poll.out" 2>&1 &
	local pid=$!
	STARTED_PIDS="${STARTED_PIDS:-} $pid"
	wait_line "$WORK/poll.out" "$pid" 3 >/dev/null
	"$OPUS" build --source "$t/src" --cdb "$t/build/compile_commands.json" --diff "$WORK/limit.diff" \
		--binary "$t/build/poll" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build: $(tail -3 "$WORK/build.out")"
	"$OPUS" apply "$pid" "$WORK/fix.opatch" >/dev/null
	assert_eq 4 "$(wait_line "$WORK/poll.out" "$pid" 4)" "the patched code has the patched header's value"
	assert_running "$pid"
}

# Two implementations of one interface, one per flavour of the build
# (libssh's ecdh_crypto.c and ecdh_gcrypt.c both define
# ssh_client_ecdh_init): a fix to both must replace the function with the
# implementation the binary was built from. Before, the other unit passed
# for the binary's because the binary has functions of its names, and the
# patch of libssh.so carried the gcrypt code, which apply refused only
# because libgcrypt was not loaded.
test_fix_to_two_implementations_takes_the_binarys() {
	local t=$WORK/src
	mkdir -p "$t"
	cat >"$t/main.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int value(void);
int main(void)
{
	for (;;) {
		printf("%d %d\n", (int)getpid(), value());
		fflush(stdout);
		usleep(20000);
	}
}
C
	printf '__attribute__((noipa)) int value(void) { return 1; }\n' >"$t/impl_a.c"
	printf '__attribute__((noipa)) int value(void) { return 100; }\n' >"$t/impl_b.c"
	(cd "$t" && for c in main impl_a impl_b; do gcc -O2 -g -fPIE -c $c.c -o $c.o; done &&
		gcc -pie main.o impl_a.o -o poll-a && gcc -pie main.o impl_b.o -o poll-b)
	jq -n --arg d "$t" '[("main", "impl_a", "impl_b") | {directory: $d, file: "\(.).c",
		arguments: ["gcc", "-O2", "-g", "-fPIE", "-c", "\(.).c", "-o", "\(.).o"]}]' \
		>"$t/compile_commands.json"
	printf -- '--- a/impl_a.c\n+++ b/impl_a.c\n@@ -1 +1 @@\n-%s\n+%s\n--- a/impl_b.c\n+++ b/impl_b.c\n@@ -1 +1 @@\n-%s\n+%s\n' \
		'__attribute__((noipa)) int value(void) { return 1; }' \
		'__attribute__((noipa)) int value(void) { return 2; }' \
		'__attribute__((noipa)) int value(void) { return 100; }' \
		'__attribute__((noipa)) int value(void) { return 200; }' >"$WORK/fix.diff"
	"$t/poll-a" >"$WORK/poll.out" 2>&1 &
	local pid=$!
	STARTED_PIDS="${STARTED_PIDS:-} $pid"
	wait_line "$WORK/poll.out" "$pid" 1 >/dev/null
	"$OPUS" build --source "$t" --diff "$WORK/fix.diff" --binary "$t/poll-a" -o "$WORK/fix.opatch" \
		>"$WORK/build.out" 2>&1 || fail "build: $(tail -3 "$WORK/build.out")"
	assert_contains "impl_b.c (unit): not part of $t/poll-a: its DWARF names no such unit, and gives value to impl_a.c" \
		"$(cat "$WORK/build.out")" "the other implementation named as left out"
	"$OPUS" apply "$pid" "$WORK/fix.opatch" >/dev/null
	assert_eq 2 "$(wait_line "$WORK/poll.out" "$pid" '[!1]*')" "the binary's implementation, fixed"
	assert_running "$pid"
}
