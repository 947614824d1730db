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
