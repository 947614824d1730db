# Patches stack: the newest code wins, and revert goes newest first.
D=$TARGETS/authsrv

# Tree with the fix applied: the second patch is built on top of it.
test_two_stacked_patches_revert_in_order() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch"
	tree_with_diff "$WORK" "$D/fix-auth.diff" "$WORK/src-fixed"
	# Built on the fixed tree without saying so: its serve is not the
	# binary's, nor any patch's it knows of.
	expect_fail "a patch built on a patched tree without --after" \
		"$OPUS" build --source "$WORK/src-fixed" --diff "$D/stats-v2.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/stats.opatch"
	assert_contains "serve" "$ERR" "the function named"
	"$OPUS" build --source "$WORK/src-fixed" --diff "$D/stats-v2.diff" \
		--binary "$WORK/src/authsrv" --after "$WORK/fix.opatch" -o "$WORK/stats.opatch"
	expect_fail "the second patch without the first" "$OPUS" apply "$PID" "$WORK/stats.opatch"
	assert_contains "built on top of patch fix" "$ERR" "the reason"
	assert_eq 0 "$(opus_mappings "$PID")" "nothing mapped by a refused apply"

	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	"$OPUS" apply "$PID" "$WORK/stats.opatch"
	assert_eq 2 "$(opus_patches_mapped "$PID")" "two patches mapped"
	# Both patches replace serve; the newest holds both changes.
	assert_eq DENIED "$(req 'AUTH admin ')" "fix still in force under the second patch"
	assert_contains "v2 requests=" "$(req STATS)" "second patch in force"
	expect_fail "reverting the older patch first" "$OPUS" revert "$PID" fix
	assert_contains "revert it first" "$ERR" "LIFO refusal"

	"$OPUS" revert "$PID" stats
	assert_contains "requests=" "$(req STATS)" "after reverting the newer patch"
	case "$(req STATS)" in v2*) fail "second patch still in force" ;; esac
	assert_eq DENIED "$(req 'AUTH admin ')" "older patch's code is back, not the original"
	"$OPUS" revert "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "original code after reverting both"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings at the end"
	assert_running "$PID"
}

test_same_patch_twice_is_refused() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	expect_fail "second apply" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "already applied" "$ERR" "error"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "still one patch"
	assert_running "$PID"
}

# A thread whose stack passes through an earlier patch's code (new slow_op,
# sleeping) is still inside serve: a patch replacing serve must wait for it.
test_frames_above_patch_code_are_checked() {
	build_authsrv "$WORK" -O2 -g -fomit-frame-pointer -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/slow-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/slow.opatch"
	tree_with_diff "$WORK" "$D/slow-v2.diff" "$WORK/src-slow"
	"$OPUS" build --source "$WORK/src-slow" --diff "$D/fix-auth.diff" \
		--binary "$WORK/src/authsrv" --after "$WORK/slow.opatch" -o "$WORK/fix.opatch" \
		>"$WORK/build.out"
	assert_contains "replaced serve" "$(cat "$WORK/build.out")" "the fix replaces serve"

	"$OPUS" apply "$PID" "$WORK/slow.opatch"
	req "SLEEP 3" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	expect_fail "replacing serve under a sleeping patched slow_op" \
		"$OPUS" apply --timeout 1 "$PID" "$WORK/fix.opatch"
	assert_contains "inside serve" "$ERR" "error names serve"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "only the first patch"
	"$OPUS" apply --timeout 10 "$PID" "$WORK/fix.opatch"
	wait "$inflight" || true
	assert_eq "slept 103" "$(cat "$WORK/inflight")" "in-flight request"
	assert_eq DENIED "$(req 'AUTH admin ')" "fix applied"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "first patch still in force"
	assert_running "$PID"
}

# Two patches built on the same tree, each unaware of the other, both
# replace serve: the second would drop the first's fix. It is refused.
test_patch_unaware_of_an_applied_one_is_refused() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >/dev/null
	"$OPUS" build --source "$WORK/src" --diff "$D/stats-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/stats.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	expect_fail "a patch that would undo another's fix" "$OPUS" apply "$PID" "$WORK/stats.opatch"
	assert_contains "serve is replaced by patch fix" "$ERR" "the reason"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "still one patch"
	assert_eq DENIED "$(req 'AUTH admin ')" "the fix still in force"
	assert_running "$PID"
}
