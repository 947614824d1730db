# A coroutine's stack, suspended inside a function, is on no thread's
# unwind: replacing that function would crash the program when the
# coroutine resumes. opus finds the suspended stack and refuses, naming
# the function; once the coroutine is gone, the patch goes in. Stacks
# switched by ucontext or by longjmp are found from what the process
# imports; a switcher written in assembly imports nothing, and
# --scan-memory asks for the scan. A large heap is scanned by a thread per
# CPU, and the stack among it is found all the same.
C=$TARGETS/coro

# coroutine_keeps_its_function FLAGS [SCAN] [MB]: coro built with FLAGS;
# SCAN is passed to apply and revert; MB megabytes of heap around the
# coroutine's stack.
coroutine_keeps_its_function() {
	local flags=$1 scan=${2:-} mb=${3:-0}
	# shellcheck disable=SC2086
	build_target coro "$WORK" -O2 -g -fPIE -pie $flags
	start "$WORK/src/coro" "$mb"
	"$OPUS" build --source "$WORK/src" --diff "$C/step-3.diff" --binary "$WORK/src/coro" \
		-o "$WORK/step.opatch" >/dev/null
	assert_eq 3 "$(req RESUME)" "the coroutine runs"
	# shellcheck disable=SC2086
	expect_fail "replacing step while a coroutine is suspended in it" \
		"$OPUS" apply --timeout 1 $scan "$PID" "$WORK/step.opatch"
	assert_contains "suspended coroutine" "$ERR" "the reason"
	assert_contains "into step" "$ERR" "the function named"
	assert_eq 0 "$(opus_mappings "$PID")" "nothing left mapped"
	assert_eq 7 "$(req RESUME)" "the coroutine resumes, old code"
	assert_eq finished "$(req FINISH)" "the coroutine leaves step"
	# shellcheck disable=SC2086
	"$OPUS" apply --json $scan "$PID" "$WORK/step.opatch" >"$WORK/apply.json"
	assert_eq true "$(jq ".stats.scanned_bytes >= $mb * 1048576 + 4096" "$WORK/apply.json")" \
		"the heap and the coroutine's stack were read"
	# A new coroutine now suspends in the new step: the patch's code is
	# on its stack, and reverting would unmap it.
	assert_eq restarted "$(req RESTART)" "a new coroutine"
	assert_eq 5 "$(req RESUME)" "the new step runs (2 * 1 + 3)"
	# shellcheck disable=SC2086
	expect_fail "reverting while a coroutine is suspended in the new code" \
		"$OPUS" revert --timeout 1 $scan "$PID"
	assert_contains "suspended coroutine" "$ERR" "the reason"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "the patch stays"
	assert_eq 13 "$(req RESUME)" "the coroutine resumes, new code"
	assert_eq finished "$(req FINISH)" "the coroutine leaves step"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq hello "$(req HELLO)" "serving"
	assert_running "$PID"
}

test_a_suspended_coroutine_keeps_its_function() {
	coroutine_keeps_its_function ""
}

test_a_coroutine_switched_by_longjmp_keeps_its_function() {
	coroutine_keeps_its_function -DCORO_SETJMP
}

test_a_coroutine_among_a_256_mb_heap_keeps_its_function() {
	coroutine_keeps_its_function "" "" 256
}

test_a_coroutine_switched_by_hand_keeps_its_function_with_scan_memory() {
	coroutine_keeps_its_function -DCORO_ASM --scan-memory
}

# --max-pause bounds the pause: a scan that would take longer is cut short,
# every thread resumes and nothing is changed, on apply and on revert. The
# coroutine has left step, so only the limit can refuse.
test_max_pause_leaves_a_process_whose_scan_would_take_longer_as_it_was() {
	build_target coro "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/coro" 256
	"$OPUS" build --source "$WORK/src" --diff "$C/step-3.diff" --binary "$WORK/src/coro" \
		-o "$WORK/step.opatch" >/dev/null
	assert_eq 3 "$(req RESUME)" "the coroutine runs"
	assert_eq finished "$(req FINISH)" "the coroutine leaves step"
	expect_fail "a 256 MB scan within 5 ms" \
		"$OPUS" apply --max-pause 5 "$PID" "$WORK/step.opatch"
	assert_contains "suspended stacks" "$ERR" "what took the pause"
	assert_contains "past --max-pause 5 ms" "$ERR" "the limit"
	assert_eq 0 "$(opus_mappings "$PID")" "nothing left mapped"
	assert_eq restarted "$(req RESTART)" "a new coroutine"
	assert_eq 3 "$(req RESUME)" "the old step runs (2 * 1 + 1)"
	assert_eq finished "$(req FINISH)" "the coroutine leaves step"
	"$OPUS" apply --max-pause 60000 "$PID" "$WORK/step.opatch" >/dev/null
	expect_fail "reverting with a 256 MB scan within 5 ms" \
		"$OPUS" revert --max-pause 5 "$PID"
	assert_contains "past --max-pause 5 ms" "$ERR" "the limit"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "the patch stays"
	assert_eq restarted "$(req RESTART)" "a new coroutine"
	assert_eq 5 "$(req RESUME)" "the new step runs (2 * 1 + 3)"
	assert_eq finished "$(req FINISH)" "the coroutine leaves step"
	expect_fail "a limit that is no number" \
		"$OPUS" apply --max-pause soon "$PID" "$WORK/step.opatch"
	assert_contains "--max-pause 'soon'" "$ERR" "the option named"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq hello "$(req HELLO)" "serving"
	assert_running "$PID"
}

# A thread's own stack with no thread's stack pointer in it: while the
# thread runs elsewhere (on a stack of its own, waiting there), its frames
# on its own stack are suspended, and step's among them keeps step. Once
# the thread has exited, glibc keeps its stack for the next thread, step's
# return address still in it: nothing resumes a dead thread's frames, and
# the thread's descriptor at the top of that stack says it is dead (its
# tid cleared by the kernel), so the patch goes in.
test_a_thread_away_from_its_stack_keeps_its_function_and_a_dead_threads_stack_does_not() {
	build_target coro "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/coro"
	"$OPUS" build --source "$WORK/src" --diff "$C/step-3.diff" --binary "$WORK/src/coro" \
		-o "$WORK/step.opatch" >/dev/null
	assert_eq finished "$(req FINISH)" "the coroutine leaves step"
	assert_eq away "$(req VISIT)" "a thread calls step and waits on another stack"
	expect_fail "replacing step while a live thread's own stack holds its frame" \
		"$OPUS" apply --timeout 1 "$PID" "$WORK/step.opatch"
	assert_contains "suspended coroutine" "$ERR" "the reason"
	assert_contains "into step" "$ERR" "the function named"
	assert_eq 0 "$(opus_mappings "$PID")" "nothing left mapped"
	assert_eq 41 "$(req RETURN)" "the thread comes back through the old step (2 * 20 + 1)"
	"$OPUS" apply --json "$PID" "$WORK/step.opatch" >"$WORK/apply.json"
	assert_eq 1 "$(jq -r .functions "$WORK/apply.json")" "applied beside the dead thread's stack"
	assert_eq true "$(jq '.stats.dead_stacks_skipped >= 1' "$WORK/apply.json")" \
		"the dead thread's stack known for what it is"
	assert_eq away "$(req VISIT)" "a new thread, maybe on the kept stack"
	assert_eq 43 "$(req RETURN)" "it comes back through the new step (2 * 20 + 3)"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq hello "$(req HELLO)" "serving"
	assert_running "$PID"
}
