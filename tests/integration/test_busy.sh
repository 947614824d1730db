# A function that is running cannot be replaced: apply waits for it to
# return, or gives up cleanly and leaves the process as it was.
D=$TARGETS/authsrv

build_slow_patch() {
	build_authsrv "$WORK" -O2 -g -fomit-frame-pointer -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/slow-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/slow.opatch"
}

test_busy_function_apply_waits() {
	local attempts
	build_slow_patch
	req "SLEEP 2" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	"$OPUS" apply --timeout 10 --json "$PID" "$WORK/slow.opatch" >"$WORK/apply.json"
	attempts=$(sed -n 's/.*"attempts": \([0-9]*\).*/\1/p' "$WORK/apply.json")
	[ "${attempts:-0}" -gt 1 ] || fail "apply did not have to wait (attempts=$attempts)"
	wait "$inflight" || true
	# The call that was running finished in the old code; new calls use the new.
	assert_eq "slept 2" "$(cat "$WORK/inflight")" "in-flight request"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "request after the apply"
	assert_running "$PID"
}

test_busy_function_timeout_leaves_process_unchanged() {
	build_slow_patch
	local before
	req "SLEEP 3" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	before=$(cat "/proc/$PID/maps")
	expect_fail "apply while slow_op runs" "$OPUS" apply --timeout 1 "$PID" "$WORK/slow.opatch"
	assert_contains "inside slow_op" "$ERR" "error names the busy function"
	assert_contains "thread" "$ERR" "error names the thread"
	assert_contains "$PID" "$ERR" "error names the pid"
	assert_running "$PID"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the failed apply"
	assert_eq "$before" "$(cat "/proc/$PID/maps")" "memory map after the failed apply"
	assert_eq "slept 0" "$(req 'SLEEP 0')" "old code still runs"
	wait "$inflight" || true
	assert_eq "slept 3" "$(cat "$WORK/inflight")" "in-flight request"
	ticks_advance
}

# Revert is refused while the new code is running, and waits for it.
test_revert_waits_for_new_code() {
	build_slow_patch
	"$OPUS" apply "$PID" "$WORK/slow.opatch"
	req "SLEEP 3" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	expect_fail "revert while new slow_op runs" "$OPUS" revert --timeout 0.5 "$PID"
	assert_contains "inside slow" "$ERR" "error names the patch code"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "patch still applied"
	"$OPUS" revert --timeout 10 "$PID"
	wait "$inflight" || true
	assert_eq "slept 103" "$(cat "$WORK/inflight")" "in-flight request ran the new code"
	assert_eq "slept 0" "$(req 'SLEEP 0')" "old code after revert"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after revert"
	assert_running "$PID"
}

# A thread inside step() when a signal arrived, whose handler holds on a
# sigaltstack set inside that thread's own stack, above step()'s frame:
# step() is active, though no word from the handler's stack pointer up is
# an address in it (the interrupted pc is in libc's raise).
test_function_under_a_handler_on_an_alternate_stack_is_busy() {
	build_target altstack "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/altstack" 3000
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/altstack/step-20.diff" \
		--binary "$WORK/src/altstack" -o "$WORK/step.opatch"
	assert_eq 10 "$(req VALUE)" "step before the patch"
	req STEP >"$WORK/inflight" &
	local inflight=$!
	sleep 0.5
	expect_fail "replacing step while its thread is in the handler" \
		"$OPUS" apply --timeout 1 "$PID" "$WORK/step.opatch"
	assert_contains "inside step" "$ERR" "the error names step"
	assert_eq 0 "$(opus_mappings "$PID")" "nothing left mapped"
	wait "$inflight" || true
	assert_eq 11 "$(cat "$WORK/inflight")" "the interrupted call finished in the old code"
	"$OPUS" apply "$PID" "$WORK/step.opatch"
	assert_eq 20 "$(req VALUE)" "step after the patch"
	assert_running "$PID"
}
