# Bad input gets a clear error and leaves the target running, untouched.
D=$TARGETS/authsrv

setup_target_and_patch() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch"
	MAPS_BEFORE=$(cat "/proc/$PID/maps")
}

assert_untouched() {
	assert_running "$PID"
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "memory map"
	assert_eq OK "$(req 'AUTH admin ')" "original code still runs"
}

test_wrong_build_id() {
	setup_target_and_patch
	build_authsrv "$WORK/other" -O0 -g -fno-pie -no-pie
	"$OPUS" build --source "$WORK/other/src" --diff "$D/fix-auth.diff" \
		--binary "$WORK/other/src/authsrv" -o "$WORK/other.opatch"
	expect_fail "patch for another binary" "$OPUS" apply "$PID" "$WORK/other.opatch"
	assert_contains "build-id" "$ERR" "error names the build-id"
	assert_contains "process $PID" "$ERR" "error names the pid"
	assert_untouched
}

test_no_such_pid() {
	setup_target_and_patch
	expect_fail "dead pid" "$OPUS" apply 999999999 "$WORK/fix.opatch"
	assert_contains "999999999" "$ERR" "error names the pid"
	expect_fail "not a pid" "$OPUS" apply abc "$WORK/fix.opatch"
	assert_contains "not a process id" "$ERR" "error"
	assert_untouched
}

test_corrupt_patch_files() {
	local size
	setup_target_and_patch
	size=$(stat -c %s "$WORK/fix.opatch")
	# One flipped byte in the middle (code or relocations).
	cp "$WORK/fix.opatch" "$WORK/flipped.opatch"
	printf '\x5a' | dd of="$WORK/flipped.opatch" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null
	cmp -s "$WORK/fix.opatch" "$WORK/flipped.opatch" && fail "the byte did not change"
	expect_fail "flipped byte" "$OPUS" apply "$PID" "$WORK/flipped.opatch"
	assert_contains "flipped.opatch" "$ERR" "error names the file"
	assert_contains "checksum" "$ERR" "error says why"
	# Truncated.
	head -c $((size / 2)) "$WORK/fix.opatch" >"$WORK/short.opatch"
	expect_fail "truncated" "$OPUS" apply "$PID" "$WORK/short.opatch"
	assert_contains "short.opatch" "$ERR" "error names the file"
	# Not a patch at all.
	expect_fail "an executable" "$OPUS" apply "$PID" "$WORK/src/authsrv"
	assert_contains "not" "$ERR" "error"
	expect_fail "missing file" "$OPUS" apply "$PID" "$WORK/none.opatch"
	assert_contains "none.opatch" "$ERR" "error names the file"
	assert_untouched
	# inspect refuses them the same way.
	expect_fail "inspect flipped" "$OPUS" inspect "$WORK/flipped.opatch"
	"$OPUS" inspect "$WORK/fix.opatch" | grep '^patch *fix$' >/dev/null || fail "inspect of a good patch"
}

test_revert_without_patch() {
	setup_target_and_patch
	expect_fail "revert with nothing applied" "$OPUS" revert "$PID"
	assert_contains "no opus patch" "$ERR" "error"
	expect_fail "revert unknown id" "$OPUS" revert "$PID" nosuch
	assert_untouched
}
