# opus build: the source tree is never written, and bad input is refused.
D=$TARGETS/authsrv

tree_digest() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}

test_build_leaves_source_tree_untouched() {
	local before
	build_authsrv "$WORK" -O2 -g
	before=$(tree_digest "$WORK/src")
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >/dev/null
	assert_eq "$before" "$(tree_digest "$WORK/src")" "source tree digest"
	readelf -S "$WORK/fix.opatch" | grep '.opus.funcs' >/dev/null || fail "no .opus.funcs section"
	readelf -p .opus.target "$WORK/fix.opatch" | grep "build-id=" >/dev/null || fail "no build-id"
}

test_build_refuses_bad_input() {
	build_authsrv "$WORK" -O2 -g
	printf -- '--- a/authsrv.c\n+++ b/authsrv.c\n@@ -1,1 +1,1 @@\n-no such line\n+x\n' \
		>"$WORK/bad.diff"
	expect_fail "diff that does not apply" "$OPUS" build --source "$WORK/src" \
		--diff "$WORK/bad.diff" --binary "$WORK/src/authsrv" -o "$WORK/x.opatch"
	assert_contains "does not apply" "$ERR" "error"
	[ ! -e "$WORK/x.opatch" ] || fail "a patch file was written"

	strip -o "$WORK/stripped" "$WORK/src/authsrv"
	expect_fail "stripped --binary" "$OPUS" build --source "$WORK/src" \
		--diff "$D/fix-auth.diff" --binary "$WORK/stripped" -o "$WORK/x.opatch"
	assert_contains "unstripped" "$ERR" "error"

	rm "$WORK/src/compile_commands.json"
	expect_fail "no compile database" "$OPUS" build --source "$WORK/src" \
		--diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" -o "$WORK/x.opatch"
	assert_contains "compile_commands.json" "$ERR" "error"
}

test_build_comment_only_change_is_no_patch() {
	build_authsrv "$WORK" -O2 -g
	printf -- '--- a/authsrv.c\n+++ b/authsrv.c\n@@ -1,3 +1,3 @@\n-/* A small line-protocol server on loopback, the running program the tests\n+/* A tiny line-protocol server on loopback, the running program the tests\n  * patch. One request per connection: AUTH user pass, STATS, HELLO, TICKS,\n  * SLEEP n. It keeps state (request counters, a static local) that a live\n' >"$WORK/comment.diff"
	expect_fail "comment-only diff" "$OPUS" build --source "$WORK/src" \
		--diff "$WORK/comment.diff" --binary "$WORK/src/authsrv" -o "$WORK/x.opatch"
	assert_contains "changes no function" "$ERR" "error"
}

# Lines added above a function that uses __LINE__ change its code only in
# that immediate: it is not replaced, and keeps reporting its old line.
test_line_number_only_change_is_left_out() {
	local before out
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	before=$(req BOGUS)
	assert_contains "ERR unknown command (authsrv.c:" "$before" "error before"
	"$OPUS" build --source "$WORK/src" --diff "$D/slow-lines.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/lines.opatch" >"$WORK/build.out"
	out=$(cat "$WORK/build.out")
	assert_contains "replaced slow_op" "$out" "the real change"
	assert_contains "__LINE__" "$out" "the line-only change is reported"
	case "$out" in *"replaced serve"*) fail "serve replaced for a moved __LINE__: $out" ;; esac
	"$OPUS" apply "$PID" "$WORK/lines.opatch"
	assert_eq "slept 200" "$(req 'SLEEP 0')" "fix in force"
	assert_eq "$before" "$(req BOGUS)" "serve untouched"
}

# The same with an alias of serve, as libxml2 makes for each exported
# function (foo, an alias of foo__internal_alias): the DWARF describes only
# the function the source defines, and its alias must get the same verdict.
# Before, the alias counted as changed and the build failed: "serve and
# serve_export are one function ... the patch replaces only the first".
test_line_number_only_change_is_left_out_for_an_alias_too() {
	local out
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	printf 'extern __typeof(serve) serve_export __attribute__((alias("serve")));\n' \
		>>"$WORK/src/authsrv.c"
	(cd "$WORK/src" && gcc -O2 -g -fPIE -pie -pthread -c authsrv.c -o authsrv.o &&
		gcc -O2 -g -fPIE -pie -pthread authsrv.o -o authsrv) ||
		fail "authsrv with an alias did not build"
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/slow-lines.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/lines.opatch" >"$WORK/build.out" ||
		fail "build: $(cat "$WORK/build.out")"
	out=$(cat "$WORK/build.out")
	assert_contains "replaced slow_op" "$out" "the real change"
	assert_contains "serve_export (authsrv.c): only line numbers" "$out" "the alias left out too"
	"$OPUS" apply "$PID" "$WORK/lines.opatch"
	assert_eq "slept 200" "$(req 'SLEEP 0')" "fix in force"
	assert_running "$PID"
}

# An interrupted build (Ctrl-C, a TERM from a job runner, a lost terminal)
# leaves nothing: no scratch tree, no compiler temporary, no compiler
# still running, no patch file; it dies of the signal. The moments are
# spread over a build of about 0.3 s (analysis, compiles, binding).
test_interrupted_build_leaves_nothing() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	mkdir "$WORK/tmp"
	local t sig status left
	for t in 0.01 0.05 0.1 0.15 0.2 0.3; do
		for sig in TERM INT HUP; do
			TMPDIR=$WORK/tmp "$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" \
				--binary "$WORK/src/authsrv" -o "$WORK/x.opatch" >/dev/null 2>&1 &
			local p=$!
			sleep "$t"
			kill -"$sig" "$p"
			status=0
			wait "$p" || status=$?
			# A build that finished first is no failure; then it wrote the file.
			if [ "$status" = 0 ]; then
				rm "$WORK/x.opatch"
			else
				assert_eq "$((128 + $(kill -l "$sig")))" "$status" "$sig at ${t}s: exit status"
			fi
			left=$(ls -A "$WORK/tmp")
			[ -z "$left" ] || ps -eo pid,ppid,pgid,stat,args | grep '[o]pus' >&2 || true
			assert_eq "" "$left" "$sig at ${t}s: nothing left in TMPDIR: $(find "$WORK/tmp" -maxdepth 3 | head -20)"
			assert_eq "0" "$(pgrep -fc "$WORK/tmp" || true)" "$sig at ${t}s: no child left"
			[ ! -e "$WORK/x.opatch" ] || fail "$sig at ${t}s: a patch file was written"
		done
	done
	TMPDIR=$WORK/tmp "$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/x.opatch" >/dev/null
	[ -s "$WORK/x.opatch" ] || fail "no patch from the build after"
}

# -o never writes through a symlink at the destination: the link is
# replaced by the patch file, and what it pointed to is left alone.
test_output_is_written_atomically_never_through_a_symlink() {
	build_authsrv "$WORK" -O2 -g
	echo "precious" >"$WORK/victim"
	ln -s "$WORK/victim" "$WORK/x.opatch"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/x.opatch" >/dev/null
	assert_eq "precious" "$(cat "$WORK/victim")" "the symlink's target"
	[ -f "$WORK/x.opatch" ] && [ ! -L "$WORK/x.opatch" ] || fail "-o is still a symlink"
	"$OPUS" inspect "$WORK/x.opatch" >/dev/null || fail "the patch written is not readable"
	# A failed build leaves the old file as it was, and no temporary beside it.
	local before
	before=$(sha256sum <"$WORK/x.opatch")
	expect_fail "a build that fails" "$OPUS" build --source "$WORK/src" \
		--diff "$WORK/victim" --binary "$WORK/src/authsrv" -o "$WORK/x.opatch"
	assert_eq "$before" "$(sha256sum <"$WORK/x.opatch")" "the old patch file"
	assert_eq "victim x.opatch" "$(ls "$WORK" | grep -E '^(victim|x\.opatch)' | paste -sd' ')" \
		"nothing else written beside it"
	assert_eq "" "$(ls -A "$WORK" | grep -F '.opatch.' || true)" "no temporary left"
}

# A long build says where it is on stderr (every 5 s after the first 5;
# OPUS_PROGRESS_SECONDS=0 here, so that a small build shows every step),
# and its stdout is the same as without.
test_build_shows_progress() {
	build_authsrv "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/a.opatch" >"$WORK/quiet.out" 2>"$WORK/quiet.err"
	assert_eq "" "$(cat "$WORK/quiet.err")" "a short build prints no progress"
	OPUS_PROGRESS_SECONDS=0 "$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/a.opatch" >"$WORK/loud.out" 2>"$WORK/loud.err"
	local err
	err=$(cat "$WORK/loud.err")
	assert_contains "2 of 2 compiles of the original units" "$err" "the compiles"
	assert_contains "1 of 1 patched units compiled" "$err" "the patched compile"
	assert_contains "of 1 units compared" "$err" "the object diff"
	assert_contains "functions checked against the binary" "$err" "the binding"
	assert_eq "$(sed 's/[0-9.]* ms//' "$WORK/quiet.out")" "$(sed 's/[0-9.]* ms//' "$WORK/loud.out")" \
		"stdout unchanged"
}

# Two functions whose identical code the linker folded (gold --icf) are one
# address and one jump: a fix to one of them alone, or to both differently,
# would run its new code for the other. Refused, naming both. An alias in
# the source (one piece of code under two names) builds, both replaced.
test_folded_functions_are_replaced_together_or_refused() {
	mkdir -p "$WORK/src" "$WORK/b"
	cat >"$WORK/src/f.c" <<'C'
__attribute__((noinline)) int twice(int x) { return x * 2 + 1; }
__attribute__((noinline)) int dbl(int x) { return x * 2 + 1; }
int main(int argc, char **argv) { (void)argv; return twice(argc) + dbl(argc); }
C
	local flags=(-O2 -g -ffunction-sections)
	(cd "$WORK/src" && gcc "${flags[@]}" -c f.c -o f.o && gcc -fuse-ld=gold -Wl,--icf=all f.o -o f)
	printf '[{"directory": "%s", "file": "f.c", "arguments": ["gcc", "-O2", "-g", "-ffunction-sections", "-c", "f.c", "-o", "f.o"]}]\n' \
		"$WORK/src" >"$WORK/src/compile_commands.json"
	[ "$(nm "$WORK/src/f" | awk '$3 == "twice" || $3 == "dbl" {print $1}' | sort -u | wc -l)" = 1 ] ||
		fail "gold did not fold twice and dbl"
	# fix_diff SED: the diff of f.c edited by SED.
	fix_diff() {
		sed "$1" "$WORK/src/f.c" >"$WORK/b/f.c"
		(cd "$WORK" && diff -u src/f.c b/f.c | sed -e '1s#.*#--- a/f.c#' -e '2s#.*#+++ b/f.c#') || true
	}
	fix_diff 's/int twice(int x) { return x \* 2 + 1; }/int twice(int x) { return x * 2 + 3; }/' >"$WORK/one.diff"
	expect_fail "a fix to one of them" "$OPUS" build --source "$WORK/src" --diff "$WORK/one.diff" \
		--binary "$WORK/src/f" -o "$WORK/one.opatch"
	assert_contains "twice and dbl are one function" "$ERR" "the refusal names both"
	assert_contains "replaces only the first" "$ERR" "and says why"
	[ ! -e "$WORK/one.opatch" ] || fail "a patch was written"
	fix_diff 's/x \* 2 + 1; }$/x * 2 + 3; }/; s/int dbl(int x) { return x \* 2 + 3; }/int dbl(int x) { return x * 2 + 5; }/' >"$WORK/two.diff"
	expect_fail "different fixes to both" "$OPUS" build --source "$WORK/src" --diff "$WORK/two.diff" \
		--binary "$WORK/src/f" -o "$WORK/two.opatch"
	assert_contains "the patch gives them different code" "$ERR" "different new code refused"
	echo 'int also(int x) __attribute__((alias("twice")));' >>"$WORK/src/f.c"
	(cd "$WORK/src" && gcc "${flags[@]}" -c f.c -o f.o && gcc f.o -o f)
	fix_diff 's/int twice(int x) { return x \* 2 + 1; }/int twice(int x) { return x * 2 + 3; }/' >"$WORK/alias.diff"
	"$OPUS" build --source "$WORK/src" --diff "$WORK/alias.diff" --binary "$WORK/src/f" \
		-o "$WORK/alias.opatch" >"$WORK/alias.out"
	assert_contains "replaced also" "$(cat "$WORK/alias.out")" "the alias goes with it"
}

# diff_of FILE: $WORK/fix.diff, the diff from $WORK/src/FILE to $WORK/b/FILE
# as a patch of the tree's FILE.
diff_of() {
	(cd "$WORK" && diff -u "src/$1" "b/$1" | sed -e "1s#.*#--- a/$1#" -e "2s#.*#+++ b/$1#") >"$WORK/fix.diff" || true
}

# fix_loop CC SED: $WORK/src/loop.c, which the caller wrote, built with CC
# -O2 -g as $WORK/src/loop with its compile database; $WORK/fix.diff is
# the diff that the sed expression SED makes of it.
fix_loop() {
	local cc=$1
	mkdir -p "$WORK/b"
	(cd "$WORK/src" && $cc -O2 -g -c loop.c -o loop.o && $cc loop.o -o loop)
	printf '[{"directory": "%s", "file": "loop.c", "arguments": ["%s", "-O2", "-g", "-c", "loop.c", "-o", "loop.o"]}]\n' \
		"$WORK/src" "$cc" >"$WORK/src/compile_commands.json"
	sed "$2" "$WORK/src/loop.c" >"$WORK/b/loop.c"
	diff_of loop.c
}

# with_main UNIT: $WORK/src/UNIT.c and main.c, which the caller wrote,
# compiled with gcc -O2 -g and linked as $WORK/src/UNIT, with their
# compile database.
with_main() {
	(cd "$WORK/src" && gcc -O2 -g -c "$1.c" -o "$1.o" && gcc -O2 -g -c main.c -o main.o &&
		gcc "$1.o" main.o -o "$1")
	jq -n --arg d "$WORK/src" --arg u "$1" '[($u, "main") | {directory: $d, file: "\(.).c",
		arguments: ["gcc", "-O2", "-g", "-c", "\(.).c", "-o", "\(.).o"]}]' >"$WORK/src/compile_commands.json"
}

# gcc finds word() const and calls it once, before main's loop: a fix to
# word cannot reach the result main already holds, and the build says so,
# naming word and main. Applied, the running loop indeed goes on printing
# the old word. A fix to bump(), which writes memory, gets no such warning,
# and the running loop prints the fixed count at once.
test_build_warns_when_a_caller_may_keep_a_const_result_of_the_old_code() {
	mkdir -p "$WORK/src"
	cat >"$WORK/src/loop.c" <<'C'
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static const char *word(void)
{
	return "old";
}

__attribute__((noinline)) static int bump(int *n)
{
	return *n += 1;
}

int main(void)
{
	int n = 0;

	printf("ready 0\n");
	for (;;) {
		const char *w = word();

		printf("tick %s %d\n", w, bump(&n));
		fflush(stdout);
		usleep(20000);
	}
}
C
	fix_loop gcc 's/return "old";/return "new";/'
	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/loop" \
		-o "$WORK/word.opatch" >/dev/null 2>"$WORK/word.err"
	assert_contains "gcc found word const, and main, which the patch keeps" "$(cat "$WORK/word.err")" \
		"the build names word, what gcc found, and the caller"

	sed 's/return \*n += 1;/return *n += 1000;/' "$WORK/src/loop.c" >"$WORK/b/loop.c"
	diff_of loop.c
	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/loop" \
		-o "$WORK/bump.opatch" >/dev/null 2>"$WORK/bump.err"
	if grep -q "gcc found" "$WORK/bump.err"; then
		fail "bump writes memory; no warning expected: $(cat "$WORK/bump.err")"
	fi

	start "$WORK/src/loop"
	"$OPUS" apply "$PID" "$WORK/word.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/bump.opatch" >/dev/null
	local before after
	before=$(grep -c '^tick' "$START_OUT")
	wait_line "$START_OUT" tick old >/dev/null
	for _ in $(seq 100); do
		after=$(awk '$1 == "tick" {n = $3} END {print n}' "$START_OUT")
		[ "$after" -ge 1000 ] && break
		sleep 0.05
	done
	[ "$after" -ge 1000 ] || fail "bump's fix did not take effect: last count $after"
	assert_eq 0 "$(tail -n +"$before" "$START_OUT" | grep -c '^tick new')" \
		"main keeps the word it got before the patch, as the build warned"
	assert_running "$PID"
}

# A function the program never leaves (main's loop) that inlines the fixed
# one is replaced with it, but its old code runs on: the build warns, naming
# both, and the patch's findings carry it; apply then finds main busy and
# leaves the process as it was. Built with --exclude main, the fix reaches
# report (the other caller, which returns) and main keeps its old code.
test_build_warns_when_a_function_never_left_inlines_the_fix() {
	mkdir -p "$WORK/src"
	cat >"$WORK/src/loop.c" <<'C'
#include <stdio.h>
#include <unistd.h>

int level = 12;

static int check(int v)
{
	return v > 10;
}

__attribute__((noinline)) void report(int v)
{
	printf("report %d\n", check(v));
}

int main(void)
{
	printf("ready 0\n");
	for (;;) {
		printf("main %d\n", check(level));
		report(level);
		fflush(stdout);
		usleep(20000);
	}
}
C
	fix_loop gcc 's/return v > 10;/return v > 15;/'

	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/loop" \
		-o "$WORK/fix.opatch" >"$WORK/build.out" 2>"$WORK/build.err"
	assert_contains "replaced main" "$(cat "$WORK/build.out")" "main inlines check at -O2"
	assert_contains "main never returns, and is replaced because it inlines check" \
		"$(cat "$WORK/build.err")" "the build warns, naming both"
	case "$(grep -c 'never returns' "$WORK/build.err")" in
	1) ;;
	*) fail "one warning expected, for main alone (report returns): $(cat "$WORK/build.err")" ;;
	esac
	assert_contains "never-left-inlines: main never returns" \
		"$("$OPUS" inspect "$WORK/fix.opatch")" "the patch's findings carry it"

	start "$WORK/src/loop"
	expect_fail "apply with main always busy" "$OPUS" apply "$PID" "$WORK/fix.opatch" --timeout 1
	assert_contains "inside main" "$ERR" "the refusal names main"
	assert_running "$PID"
	assert_eq 0 "$(opus_mappings "$PID")" "no opus mapping left"
	sleep 0.1
	assert_eq "main 1 report 1" "$(tail -n 3 "$START_OUT" | grep -v '^ready' | sort -u | head -2 |
		tr '\n' ' ' | sed 's/ $//')" "the old code runs on"

	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/loop" \
		--exclude main -o "$WORK/rest.opatch" >/dev/null 2>"$WORK/rest.err"
	case "$(cat "$WORK/rest.err")" in *"never returns"*) fail "warned with main excluded" ;; esac
	"$OPUS" apply "$PID" "$WORK/rest.opatch" >/dev/null
	: >"$START_OUT"
	sleep 0.2
	assert_contains "report 0" "$(cat "$START_OUT")" "the fix reaches report"
	assert_contains "main 1" "$(cat "$START_OUT")" "main keeps its old code"
	assert_running "$PID"
}

# gcc's -fipa-ra lets main keep its loop's counter and sum in %edx and %esi
# across calls to a static helper that leaves them alone. The helper's fix
# computes a remainder in %edx: main's patched compile saves its counter
# elsewhere, so main changes and goes in the patch. Excluded, main would
# keep its old code and read %edx back changed (tried by hand: the loop
# never ended, the program spun at full CPU and printed nothing more). The
# build refuses, naming main and why, and writes no patch: main's code is
# checked against its compile with -fno-ipa-ra and the other -fno-ipa-* for
# callers (src/mkpatch/kept.c), which differs here. The test above is the
# other side: there main counts on nothing of report, and is kept.
test_build_refuses_to_exclude_a_caller_counting_on_callee_registers() {
	mkdir -p "$WORK/src"
	cat >"$WORK/src/loop.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int rounds = 100;
static int __attribute__((noinline)) g(int x)
{
	return x * 3 + 1;
}
int main(void)
{
	for (;;) {
		int s = 0;
		for (int k = 0; k < rounds; k++)
			s += g(k) ^ k;
		printf("%d\n", s);
		fflush(stdout);
		usleep(20000);
	}
}
C
	fix_loop gcc 's/^\treturn x \* 3 + 1;/\tif (x % 1009 == 1008)\n\t\treturn 0;\n&/'
	assert_contains "x % 1009" "$(cat "$WORK/fix.diff")" "the fix is in the diff"

	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/loop" \
		-o "$WORK/all.opatch" >"$WORK/all.out" 2>&1 || fail "build without --exclude: $(cat "$WORK/all.out")"
	assert_contains "replaced main" "$(cat "$WORK/all.out")" "main's registers changed with the fix"
	expect_fail "build with main excluded" "$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" \
		--binary "$WORK/src/loop" --exclude main -o "$WORK/rest.opatch"
	assert_contains "main (loop.c): excluded, it keeps its old code" "$ERR" "the refusal names main"
	assert_contains "-fno-ipa-ra" "$ERR" "and says why"
	[ ! -e "$WORK/rest.opatch" ] || fail "a patch was written"
}

# clang infers what a function's body allows (it reads no memory, it never
# throws) and lets the callers of its unit count on it, with no flag to stop
# it: an excluded function that the diff changed cannot be checked, and
# the build says so instead of keeping it.
test_build_refuses_to_exclude_a_changed_function_clang_built() {
	mkdir -p "$WORK/src"
	cat >"$WORK/src/loop.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int level = 12;
static int check(int v)
{
	return v > 10;
}
int main(void)
{
	for (;;) {
		printf("main %d\n", check(level));
		fflush(stdout);
		usleep(20000);
	}
}
C
	fix_loop clang 's/return v > 10;/return v > 15;/'
	expect_fail "build with main excluded" "$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" \
		--binary "$WORK/src/loop" --exclude main -o "$WORK/rest.opatch"
	assert_contains "main (loop.c): excluded, it keeps its old code, which the diff changed; its compiler is not gcc" \
		"$ERR" "the refusal names main and clang"
	[ ! -e "$WORK/rest.opatch" ] || fail "a patch was written"
}

# A static the original program never writes is made a constant by gcc
# (-fipa-reference) and placed in .rodata. A fix that writes it, bound to
# the binary's copy, would crash the process at its first write (tried by
# hand: SIGSEGV on the next call). The build refuses, naming the variable
# and its read-only address; a fix writing a variable the program already
# writes is built and applied, and the program runs on.
test_build_refuses_to_write_a_variable_the_binary_keeps_read_only() {
	mkdir -p "$WORK/src" "$WORK/b"
	cat >"$WORK/src/ro.c" <<'C'
static int limits[4] = {5, 6, 7, 8};
int calls;
__attribute__((noinline)) int pick(int i)
{
	return limits[i & 3];
}
__attribute__((noinline)) void tune(int v)
{
	calls += v;
}
C
	cat >"$WORK/src/main.c" <<'C'
#include <stdio.h>
#include <unistd.h>
int pick(int i);
void tune(int v);
int main(void)
{
	printf("ready 0\n");
	for (int n = 0;; n++) {
		tune(n);
		printf("%d\n", pick(n));
		fflush(stdout);
		usleep(20000);
	}
}
C
	with_main ro
	local at
	at=$(readelf -sW "$WORK/src/ro" | awk '$8 == "limits" {print $2}' | sed 's/^0*//')
	[ -n "$at" ] || fail "no limits in the binary"
	start "$WORK/src/ro"

	sed 's/^\tcalls += v;/&\n\tlimits[v \& 3] = 5;/' "$WORK/src/ro.c" >"$WORK/b/ro.c"
	diff_of ro.c
	expect_fail "build of a write to limits" "$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" \
		--binary "$WORK/src/ro" -o "$WORK/ro.opatch"
	assert_contains "limits (ro.c): the patched unit writes it, but the binary keeps it read-only at 0x$at" \
		"$ERR" "the refusal names the variable and where it is"
	[ ! -e "$WORK/ro.opatch" ] || fail "a patch was written"

	sed 's/^\tcalls += v;/&\n\tcalls++;/' "$WORK/src/ro.c" >"$WORK/b/ro.c"
	diff_of ro.c
	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/ro" \
		-o "$WORK/rw.opatch" >"$WORK/rw.out" 2>&1 || fail "build of a write to calls: $(cat "$WORK/rw.out")"
	"$OPUS" apply "$PID" "$WORK/rw.opatch" >/dev/null
	local lines
	lines=$(wc -l <"$START_OUT")
	sleep 0.2
	assert_running "$PID"
	[ "$(wc -l <"$START_OUT")" -gt "$lines" ] || fail "the program stopped answering"
	assert_eq "5 6 7 8" "$(tail -n 4 "$START_OUT" | sort -n | tr '\n' ' ' | sed 's/ $//')" "its answers"
}

# The other way round: main sets mode to 2 at start-up, and a fix that
# takes out that write leaves mode unwritten in the patched unit, so gcc
# compiles get_mode with mode's initial value, 1 (tried by hand: the
# process answered 10 instead of 20 once patched, and nothing warned). The
# build refuses, naming mode; a fix that takes mode out altogether is built,
# and the process answers what the fix says.
test_build_refuses_a_fix_that_freezes_a_variable_the_program_wrote() {
	mkdir -p "$WORK/src" "$WORK/b"
	cat >"$WORK/src/m.c" <<'C'
static int mode = 1;
__attribute__((noinline)) void set_mode(int m)
{
	mode = m;
}
__attribute__((noinline)) int get_mode(void)
{
	return mode * 10;
}
C
	cat >"$WORK/src/main.c" <<'C'
#include <stdio.h>
#include <unistd.h>
void set_mode(int m);
int get_mode(void);
int main(void)
{
	set_mode(2);
	printf("ready 0\n");
	for (;;) {
		printf("%d\n", get_mode());
		fflush(stdout);
		usleep(20000);
	}
}
C
	with_main m
	start "$WORK/src/m"
	sleep 0.1
	assert_eq 20 "$(tail -n 1 "$START_OUT")" "mode as main set it"

	sed 's/^\tmode = m;/\t(void)m;/' "$WORK/src/m.c" >"$WORK/b/m.c"
	diff_of m.c
	expect_fail "build of a fix taking out mode's last write" "$OPUS" build --source "$WORK/src" \
		--diff "$WORK/fix.diff" --binary "$WORK/src/m" -o "$WORK/frozen.opatch"
	assert_contains "mode (m.c): the fix takes out the program's last write to it" "$ERR" "the refusal names mode"
	[ ! -e "$WORK/frozen.opatch" ] || fail "a patch was written"

	sed -e '/^static int mode/d' -e 's/^\tmode = m;/\t(void)m;/' -e 's/return mode \* 10;/return 30;/' \
		"$WORK/src/m.c" >"$WORK/b/m.c"
	diff_of m.c
	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/m" \
		-o "$WORK/gone.opatch" >"$WORK/gone.out" 2>&1 || fail "build without mode: $(cat "$WORK/gone.out")"
	"$OPUS" apply "$PID" "$WORK/gone.opatch" >/dev/null
	sleep 0.1
	assert_eq 30 "$(tail -n 1 "$START_OUT")" "the fix's answer"
	assert_running "$PID"
}

# Whether old and new code may run at once, in different threads (a per-
# thread transition), is judged at build and travels in the patch: only
# where the replaced functions read and write the same shared variables
# as their old code, and the analysis finds no new write to shared state.
# Each reason names the function and the variable.
test_build_judges_whether_old_and_new_code_may_run_at_once() {
	mkdir -p "$WORK/src" "$WORK/b"
	cat >"$WORK/src/s.c" <<'C'
#include <stdio.h>
int limit = 10;
static int hits;
__attribute__((noinline)) int clamp(int v)
{
	return v > 100 ? 100 : v;
}
__attribute__((noinline)) int scale(int v)
{
	return v * limit;
}
__attribute__((noinline)) int count(int v)
{
	hits += v & 1;
	return hits;
}
C
	cat >"$WORK/src/main.c" <<'C'
#include <stdio.h>
int clamp(int v);
int scale(int v);
int count(int v);
int main(int argc, char **argv)
{
	(void)argv;
	printf("%d %d %d\n", clamp(argc * 200), scale(argc), count(argc));
	return 0;
}
C
	with_main s
	local fix verdict
	for fix in 's/v > 100 ? 100 : v;/v > 50 ? 50 : v;/|per-thread|' \
		's/v > 100 ? 100 : v;/v > limit ? limit : v;/|stop-world|clamp reads or writes limit (s.c), which its old code does not' \
		's/return v \* limit;/return v * 10;/|stop-world|scale no longer reads or writes limit (s.c), where its old code does' \
		's/return v > 100 ? 100 : v;/if (v > 100)\n\t\tfprintf(stderr, "clamped\\n");\n\treturn v > 100 ? 100 : v;/|stop-world|clamp reads or writes stderr (s.c)' \
		's/hits += v \& 1;/hits += v \& 3;/|stop-world|the analysis found: s.c:14: info: nonlocal-write: new write to global hits'; do
		IFS='|' read -r sedexp verdict reason <<<"$fix"
		sed "$sedexp" "$WORK/src/s.c" >"$WORK/b/s.c"
		diff_of s.c
		rm -f "$WORK/s.opatch"
		"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/s" \
			-o "$WORK/s.opatch" >"$WORK/build.out" 2>&1 || fail "build of '$sedexp': $(cat "$WORK/build.out")"
		"$OPUS" inspect --json "$WORK/s.opatch" >"$WORK/inspect.json"
		assert_eq "$verdict" "$(jq -r .transition "$WORK/inspect.json")" "the transition of '$sedexp'"
		assert_contains "$reason" "$(jq -r .stop_world "$WORK/inspect.json")" "the reason for '$sedexp'"
		assert_contains "(transition): " "$(cat "$WORK/build.out")" "build says it"
	done
}

# A distribution's binary is stripped; a rebuild of its source stands in for
# it (--binary), and the patch is bound to the installed file (--installed):
# by its build-id when the rebuild has the same, else when every loaded
# section is byte-equal (debug info that differs changes only the build-id).
# A rebuild with other code is refused, naming the sections that differ.
test_build_binds_a_rebuild_to_the_installed_binary() {
	local D=$TARGETS/authsrv inst_id re_id out
	mkdir -p "$WORK/inst"
	cp "$D/authsrv.c" "$WORK/inst/"
	(cd "$WORK/inst" && gcc -O2 -g -fPIE -pthread -fdebug-prefix-map="$WORK/inst=/build/authsrv-1" \
		-c authsrv.c -o authsrv.o && gcc -pie -pthread authsrv.o -o authsrv.full &&
		strip -o authsrv authsrv.full)
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	inst_id=$(readelf -n "$WORK/inst/authsrv" | awk '/Build ID/ {print $3}')
	re_id=$(readelf -n "$WORK/src/authsrv" | awk '/Build ID/ {print $3}')
	[ -n "$inst_id" ] && [ "$inst_id" != "$re_id" ] || fail "the two builds share a build-id"

	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		--installed "$WORK/inst/authsrv" -o "$WORK/fix.opatch" >"$WORK/out"
	assert_contains "bound to its build-id $inst_id" "$(cat "$WORK/out")" "the build says so"
	out=$("$OPUS" inspect --json "$WORK/fix.opatch")
	assert_eq "$inst_id" "$(jq -r .build_id <<<"$out")" "the patch's build-id"
	assert_eq authsrv "$(jq -r .target <<<"$out")" "the patch's target"

	start "$WORK/inst/authsrv"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq OK "$(req 'AUTH admin ')" "reverted"
	assert_running "$PID"

	# The same build-id: bound as it is.
	strip -o "$WORK/same" "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		--installed "$WORK/same" -o "$WORK/same.opatch" >"$WORK/out"
	assert_contains "has its build-id" "$(cat "$WORK/out")" "equal build-ids"

	# Other code: refused, each differing section named.
	(cd "$WORK/src" && gcc -O1 -g -fPIE -pie -pthread authsrv.c -o authsrv.O1)
	expect_fail "a rebuild with other code" "$OPUS" build --source "$WORK/src" \
		--diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv.O1" \
		--installed "$WORK/inst/authsrv" -o "$WORK/x.opatch"
	assert_contains "is not a rebuild of $WORK/inst/authsrv" "$ERR" "the refusal"
	assert_contains ".text: " "$ERR" "names .text"
	[ ! -e "$WORK/x.opatch" ] || fail "a patch was written"
}

# A fix to code this build does not compile (a feature configured out, as
# Debian's memcached leaves out its proxy and its SASL password file) is
# not a failure and not a patch: "nothing to apply", exit status 4. A diff
# that also changes compiled code is built, the rest named and left out.
test_build_says_nothing_to_apply_for_code_the_build_leaves_out() {
	local D=$TARGETS/authsrv status
	build_authsrv "$WORK" -O2 -g
	printf 'int proxy_parse(const char *s)\n{\n\treturn s[0] == 1;\n}\n' >"$WORK/src/proxy.c"
	printf '#ifdef WITH_PWDB\nint pwdb_check(int x)\n{\n\treturn x == 1;\n}\n#endif\n' \
		>>"$WORK/src/authsrv.c"
	(cd "$WORK/src" && gcc -O2 -g -pthread authsrv.c -o authsrv)
	mkdir -p "$WORK/b"
	sed 's/s\[0\] == 1/s[0] == 2/' "$WORK/src/proxy.c" >"$WORK/b/proxy.c"
	sed 's/return x == 1;/return x == 2;/' "$WORK/src/authsrv.c" >"$WORK/b/authsrv.c"
	(cd "$WORK" && diff -u src/proxy.c b/proxy.c | sed -e '1s#.*#--- a/proxy.c#' -e '2s#.*#+++ b/proxy.c#') >"$WORK/proxy.diff" || true
	(cd "$WORK" && diff -u src/authsrv.c b/authsrv.c | sed -e '1s#.*#--- a/authsrv.c#' -e '2s#.*#+++ b/authsrv.c#') >"$WORK/pwdb.diff" || true

	for d in proxy pwdb; do
		status=0
		"$OPUS" build --source "$WORK/src" --diff "$WORK/$d.diff" --binary "$WORK/src/authsrv" \
			-o "$WORK/$d.opatch" >/dev/null 2>"$WORK/err" || status=$?
		assert_eq 4 "$status" "$d: exit status"
		assert_contains "nothing to apply" "$(cat "$WORK/err")" "$d: said so"
		[ ! -e "$WORK/$d.opatch" ] || fail "$d: a patch was written"
		[ $d = pwdb ] || assert_contains "proxy.c has no compile command" "$(cat "$WORK/err")" \
			"names the file"
	done
	status=0
	"$OPUS" analyze --source "$WORK/src" --diff "$WORK/proxy.diff" >/dev/null 2>&1 || status=$?
	assert_eq 4 "$status" "analyze: exit status"

	# With a compiled change beside it: built, proxy.c named and left out.
	cat "$D/fix-auth.diff" "$WORK/proxy.diff" >"$WORK/both.diff"
	"$OPUS" build --source "$WORK/src" --diff "$WORK/both.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/both.opatch" >"$WORK/out"
	assert_contains "replaced serve" "$(cat "$WORK/out")" "the compiled fix"
	assert_contains "proxy.c (diff): no compile command builds it" "$(cat "$WORK/out")" \
		"the rest named"
}
