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
	# serve's old code there is the first patch's, which the patch has no
	# copy of: a per-thread transition would have nowhere to send a
	# thread not yet switched.
	assert_contains "serve: the patch carries no copy of its old code" \
		"$("$OPUS" inspect "$WORK/stats.opatch")" "the stacked patch's transition"
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

# A thread sleeping inside one patch's code (wait_turn, turns-20), whose
# live frame keeps a word that looks like a return address into another
# patch's code (answer, answer-42): its stack is unwound through the first
# patch with that patch's own unwind tables, so the word is not taken for a
# frame. Before, the stack past the first patch's frame was scanned: the
# revert of the second listed the thread with a guessed exit it never
# returned through, and failed at its timeout (nginx, under load, in CI).
test_a_stale_word_past_patch_code_does_not_hold_a_revert() {
	local S=$TARGETS/stale mode
	build_target stale "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$S/turns-20.diff" --binary "$WORK/src/stale" \
		-o "$WORK/turns.opatch" >/dev/null
	"$OPUS" build --source "$WORK/src" --diff "$S/answer-42.diff" --binary "$WORK/src/stale" \
		-o "$WORK/answer.opatch" >/dev/null
	assert_contains ".eh_frame" "$(readelf -S "$WORK/answer.opatch")" "the patch carries unwind tables"
	start "$WORK/src/stale"
	for mode in "" --stop-world; do
		"$OPUS" apply $mode "$PID" "$WORK/turns.opatch" >/dev/null
		"$OPUS" apply $mode "$PID" "$WORK/answer.opatch" >/dev/null
		# A whole round in both patches' code: answer's return address
		# is kept, and the worker sleeps in the new wait_turn.
		last_tick_is "tick 42 20" "both patches in force${mode:+ ($mode)}"
		OPUS_VERBOSE=1 "$OPUS" revert $mode --timeout 3 "$PID" answer >"$WORK/revert.out" 2>&1 ||
			fail "revert of answer beside a stale word${mode:+ ($mode)}: $(grep -v '^opus: ' "$WORK/revert.out")"
		assert_contains "frames, unwind complete" "$(cat "$WORK/revert.out")" \
			"the worker's stack unwound with DWARF${mode:+ ($mode)}"
		assert_not_contains "unwind stopped" "$(cat "$WORK/revert.out")" \
			"every stack unwound through the patch's code${mode:+ ($mode)}"
		last_tick_is "tick 41 20" "answer-42 reverted, turns-20 in force${mode:+ ($mode)}"
		"$OPUS" revert $mode --timeout 10 "$PID" turns >/dev/null
		last_tick_is "tick 41 10" "both reverted${mode:+ ($mode)}"
		assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the reverts${mode:+ ($mode)}"
	done
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

# The first patch adds lines above handle(), whose __LINE__ is then 2
# higher in the tree; it leaves serve alone (only that constant moved). The
# second patch, built on that tree, replaces serve: the tree compiles serve
# with the moved line, the binary has the old one. The patch file carries
# its diff's hunks, and the build maps the binary's line through them.
# Before, the build refused: "serve: the binary's code differs from a
# compile of the tree" (libxml2's CVE-2025-32415 on top of CVE-2024-56171).
test_stacked_patch_binds_past_lines_an_earlier_patch_moved() {
	local line before
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	before=$(req BOGUS)
	"$OPUS" build --source "$WORK/src" --diff "$D/slow-lines.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/lines.opatch" >"$WORK/build.out"
	case "$(cat "$WORK/build.out")" in *"replaced serve"*) fail "serve replaced by the first patch" ;; esac
	tree_with_diff "$WORK" "$D/slow-lines.diff" "$WORK/src-lines"
	cp -a "$WORK/src-lines" "$WORK/src-new"
	sed -i 's/ERR unknown command/ERR no such command/' "$WORK/src-new/authsrv.c"
	(cd "$WORK" && diff -u --label a/authsrv.c --label b/authsrv.c src-lines/authsrv.c \
		src-new/authsrv.c >"$WORK/err.diff") && fail "the second diff is empty"
	"$OPUS" build --source "$WORK/src-lines" --diff "$WORK/err.diff" --binary "$WORK/src/authsrv" \
		--after "$WORK/lines.opatch" -o "$WORK/err.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build on top: $(cat "$WORK/build.out")"
	assert_contains "replaced serve" "$(cat "$WORK/build.out")" "the second patch's change"
	"$OPUS" apply "$PID" "$WORK/lines.opatch"
	"$OPUS" apply "$PID" "$WORK/err.opatch"
	line=$(grep -n '__LINE__' "$WORK/src-new/authsrv.c" | cut -d: -f1)
	assert_eq "ERR no such command (authsrv.c:$line)" "$(req BOGUS)" "the new serve, its own line"
	assert_eq "slept 200" "$(req 'SLEEP 0')" "the first patch still in force"
	"$OPUS" revert "$PID" err
	"$OPUS" revert "$PID" lines
	assert_eq "$before" "$(req BOGUS)" "the original serve after both reverts"
	assert_running "$PID"
}
