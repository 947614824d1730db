# Issue 15's per-thread transition, piece by piece. A thread not yet
# switched runs the patch's copy of the old code (src/mkpatch/assemble.c,
# assemble_old_copies): that copy must be the running program's code,
# linked to its state as the original is. OPUS_TEST_OLD_COPIES makes apply
# send every entry to that copy instead of the new code.
D=$TARGETS/authsrv

# answers: the server's answers to requests the fix changes and some it
# does not.
answers() {
	local r
	for r in 'AUTH admin ' 'AUTH admin hunt' 'AUTH admin hunter2' 'AUTH nobody x'; do
		printf '%s -> %s\n' "$r" "$(req "$r")"
	done
}

test_copies_of_old_code_answer_as_the_original_and_the_fix_does_not() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	local pid=$PID before copies fixed
	before=$(answers)
	assert_contains "AUTH admin  -> OK" "$before" "the exploit works before any patch"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >"$WORK/build.out"
	assert_eq "[]" "$("$OPUS" inspect --json "$WORK/fix.opatch" |
		jq -c '[.functions[] | select(.cold | not) | select(.old_copy | not) | .name]')" \
		"replaced functions without a copy of their old code"
	OPUS_TEST_OLD_COPIES=1 "$OPUS" apply "$pid" "$WORK/fix.opatch"
	assert_eq 1 "$(opus_patches_mapped "$pid")" "the patch is mapped"
	copies=$(answers)
	assert_eq "$before" "$copies" "answers through the copies of the old code"
	"$OPUS" revert "$pid"
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the revert"
	"$OPUS" apply "$pid" "$WORK/fix.opatch"
	fixed=$(answers)
	assert_contains "AUTH admin  -> DENIED" "$fixed" "the new code, applied after"
	[ "$fixed" != "$before" ] || fail "the fix changed no answer: the test proves nothing"
	"$OPUS" revert "$pid"
	assert_eq "$before" "$(answers)" "answers after the last revert"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# wait_for LINE [N]: the target printed LINE N times (1), within 5 s.
wait_for() {
	wait_printed -x "$1" "${2:-1}"
}

# wait_printed GREP_FLAG PATTERN N: the target's output has N lines that
# grep GREP_FLAG (-x: the whole line; -G: a regex in it) matches, within 5 s.
wait_printed() {
	for _ in $(seq 100); do
		[ "$(grep -c "$1" -e "$2" "$START_OUT")" -ge "$3" ] && return 0
		sleep 0.05
	done
	fail "the target never printed '$2' $3 time(s): $(tail -5 "$START_OUT")"
}

# The dispatcher a per-thread transition puts at each entry (src/live/
# dispatch.h), in a live process: OPUS_TEST_DISPATCH lists one thread as
# not yet switched. That thread keeps the old code while the other worker
# and every thread created afterwards run the new; applied without the
# hook, the same thread runs the new code at once.
test_dispatcher_holds_the_threads_not_yet_switched_on_the_old_code() {
	build_target mixed "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/mixed/value-2000.diff" \
		--binary "$WORK/src/mixed" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/mixed"
	local pid=$PID held
	held=$(awk '/^held/ {print $2}' "$START_OUT")
	[ -n "$held" ] || fail "the target named no thread: $(cat "$START_OUT")"
	wait_for "first 1000"
	wait_for "second 1000"
	wait_for "new 1000"
	OPUS_TEST_DISPATCH=$held "$OPUS" apply "$pid" "$WORK/fix.opatch"
	wait_for "second 2000"
	wait_for "new 2000"
	# The held worker calls value() every millisecond: 500 more calls.
	sleep 0.5
	grep -qx "first 2000" "$START_OUT" &&
		fail "the thread not yet switched ran the new code"
	"$OPUS" revert "$pid"
	wait_for "second 1000" 2
	wait_for "new 1000" 2
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the revert"
	"$OPUS" apply "$pid" "$WORK/fix.opatch"
	wait_for "first 2000"
	"$OPUS" revert "$pid"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# The leaving target with its patch (value() 1000 -> 2000, inside()
# changed too), started: PID, and the apply/revert helpers below.
start_leaving() {
	build_target leaving "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/leaving/value-2000.diff" \
		--binary "$WORK/src/leaving" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/leaving"
	wait_for "inside 1000"
	wait_for "outside 1000"
	wait_for "new 1000"
}

# never_printed LINE WHAT: the target has not printed LINE.
never_printed() {
	if grep -qx "$1" "$START_OUT"; then
		fail "$2: $(cat "$START_OUT")"
	fi
}

# revert_leaving PID: revert, letting the inside worker leave the patch's
# inside() (a revert waits for no thread to be in the new code).
revert_leaving() {
	"$OPUS" revert "$1" >"$WORK/revert.out" 2>&1 &
	local rev=$!
	sleep 0.5
	kill -USR1 "$1"
	wait "$rev" || fail "revert: $(cat "$WORK/revert.out")"
	assert_eq 0 "$(opus_mappings "$1")" "opus mappings after the revert"
}

# A per-thread apply (issue 15) while a thread is inside a replaced
# function: the other threads, and the threads created meanwhile, run the
# new code at once; the thread inside keeps the old code (its calls to
# value() answer 1000) until it leaves, then switches by itself, and the
# apply ends.
test_per_thread_apply_keeps_a_thread_inside_on_the_old_code_until_it_leaves() {
	start_leaving
	local pid=$PID ap
	"$OPUS" apply "$pid" "$WORK/fix.opatch" --per-thread --timeout 30 >"$WORK/apply.out" 2>&1 &
	ap=$!
	wait_for "outside 2000"
	wait_for "new 2000"
	sleep 0.3 # 300 more calls of value() inside
	never_printed "inside 2000" "the thread inside ran the new code before it left"
	kill -0 "$ap" 2>/dev/null || fail "apply ended with a thread still inside: $(cat "$WORK/apply.out")"
	kill -USR1 "$pid"
	wait "$ap" || fail "apply: $(cat "$WORK/apply.out")"
	wait_for "left 1"
	wait_for "inside 2000"
	assert_contains "per-thread: 1 thread(s) inside the replaced code kept the old code" \
		"$(cat "$WORK/apply.out")" "apply says how it went"
	assert_contains "fix" "$("$OPUS" list "$pid")" "opus list after the apply"
	revert_leaving "$pid"
	wait_for "outside 1000" 2
	wait_for "inside 1000" 2
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# A thread interrupted inside a replaced function's first five bytes,
# past its first instruction (the leaving target's signal handler keeps
# its parker thread 1-4 bytes into value()), would run the jump written
# over them from its middle when the handler returns: listed there, it
# killed the process. It is not listed; the apply writes nothing and
# waits for it to leave, as a stop-world apply does, then lists the
# thread inside inside() and goes on per thread.
test_per_thread_apply_waits_for_a_thread_interrupted_inside_the_bytes_of_a_jump() {
	build_target leaving "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/leaving/value-2000.diff" \
		--binary "$WORK/src/leaving" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/leaving" prologue
	local pid=$PID ap parked
	parked=$(awk '/^parked/ {print $2}' "$START_OUT")
	[ "${parked:-0}" -ge 1 ] && [ "$parked" -le 4 ] ||
		fail "the target parked no thread inside value's first bytes: $(cat "$START_OUT")"
	wait_for "outside 1000"
	OPUS_VERBOSE=1 "$OPUS" apply "$pid" "$WORK/fix.opatch" --timeout 30 \
		>"$WORK/apply.out" 2>&1 &
	ap=$!
	sleep 1
	kill -0 "$ap" 2>/dev/null || fail "apply ended with a thread parked: $(cat "$WORK/apply.out")"
	never_printed "outside 2000" "an entry was written while a thread was parked in its bytes"
	assert_contains "interrupted in the first instructions of value" \
		"$(cat "$WORK/apply.out")" "why apply did not list the parked thread"
	kill -WINCH "$pid" # the handler returns into value()
	wait_for "outside 2000"
	kill -USR1 "$pid" # the thread inside inside() leaves it
	wait "$ap" || fail "apply: $(cat "$WORK/apply.out")"
	wait_for "parker 2000"
	wait_for "inside 2000"
	assert_contains "caught as they left" "$(cat "$WORK/apply.out")" "how the parked thread went"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
	revert_leaving "$pid"
	wait_for "parker 1000" 2
	assert_running "$pid"
}

# A thread inside a function whose own loop jumps back into its first
# five bytes (the backedge target's spin(), shaped as nginx's
# ngx_strcasecmp: its loop starts 2 bytes in): listed, it kept the old code
# and ran the jump written over those bytes from its middle at its next
# round, and the process died. It is not listed: the apply writes nothing
# while it is inside, waits for it to leave as a stop-world apply does,
# and then patches.
test_per_thread_apply_waits_for_a_thread_whose_loop_jumps_back_into_the_entry() {
	local pid ap
	build_target backedge "$WORK" -O2 -g
	objdump -d "$WORK/src/backedge" | grep -Eq 'j[a-z]+ +[0-9a-f]+ <spin\+0x[1-4]>' ||
		fail "spin()'s loop does not start in its first bytes: $(objdump -d "$WORK/src/backedge" |
			sed -n '/<spin>:/,/^$/p')"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/backedge/negative.diff" \
		--binary "$WORK/src/backedge" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/backedge"
	pid=$PID
	OPUS_VERBOSE=1 "$OPUS" apply "$pid" "$WORK/fix.opatch" --timeout 30 >"$WORK/apply.out" 2>&1 &
	ap=$!
	sleep 1
	assert_running "$pid"
	kill -0 "$ap" 2>/dev/null || fail "apply ended with the spinner inside: $(cat "$WORK/apply.out")"
	never_printed "main new" "an entry was written while the spinner was inside spin()"
	assert_contains "may jump back into the first bytes of" "$(cat "$WORK/apply.out")" \
		"why apply did not list the spinner"
	kill -USR1 "$pid" # spin() returns
	wait "$ap" || fail "apply: $(cat "$WORK/apply.out")"
	wait_for "spun old"
	wait_for "main new"
	kill -USR1 "$pid"
	wait_for "spun new"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# All or nothing: a thread that does not leave within --timeout undoes the
# transition; the threads that had switched are back on the old code and
# nothing of the patch stays.
test_per_thread_apply_is_undone_when_a_thread_does_not_leave_in_time() {
	start_leaving
	local pid=$PID
	expect_fail "apply with a thread that never leaves" \
		"$OPUS" apply "$pid" "$WORK/fix.opatch" --per-thread --timeout 1
	assert_contains "did not leave the replaced code within 1.0 s" "$ERR" "the error"
	assert_contains "left unchanged" "$ERR" "the error"
	wait_for "outside 2000" # the mixed period happened
	wait_for "outside 1000" 2
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the failed apply"
	assert_contains "no patches" "$("$OPUS" list "$pid")" "opus list after the failed apply"
	kill -USR1 "$pid"
	wait_for "left 1"
	sleep 0.2
	never_printed "inside 2000" "the thread inside ran the new code"
	assert_running "$pid"
}

# opus killed while the threads switch: nothing depends on it. The thread
# inside switches by itself when it leaves; opus recover first says the
# transition is still going, then finishes it; the patch stays applied
# and reverts cleanly.
test_per_thread_apply_killed_while_threads_switch_then_recover() {
	start_leaving
	local pid=$PID ap out
	"$OPUS" apply "$pid" "$WORK/fix.opatch" --per-thread --timeout 30 >/dev/null 2>&1 &
	ap=$!
	wait_for "outside 2000"
	sleep 0.1
	kill -9 "$ap"
	wait "$ap" 2>/dev/null || true
	assert_running "$pid"
	out=$("$OPUS" recover "$pid")
	assert_contains "patch fix is switching threads one at a time: 1 thread(s)" "$out" \
		"recover while the thread is inside"
	expect_fail "another apply while threads switch" "$OPUS" apply "$pid" "$WORK/fix.opatch"
	assert_contains "patch fix is still switching threads" "$ERR" "the refusal"
	never_printed "inside 2000" "the thread inside ran the new code before it left"
	kill -USR1 "$pid"
	wait_for "left 1"
	wait_for "inside 2000"
	out=$("$OPUS" recover "$pid")
	assert_contains "nothing to recover (1 complete patch(es))" "$out" "recover after it left"
	[[ "$out" != *switching* ]] || fail "recover still finds the transition going: $out"
	assert_contains "fix" "$("$OPUS" list "$pid")" "opus list"
	revert_leaving "$pid"
	wait_for "inside 1000" 2
	assert_running "$pid"
}

# A per-thread apply that fails or is killed at each of its own steps
# (the record written again for the dispatchers, the dispatchers' table
# made writable, the switch stub planted, a jump written, the wait) leaves
# the target whole: the thread inside still returns where it should, and
# recover (or the failed apply itself) leaves either no patch or the whole
# patch, in which case the thread switches by itself and the patch reverts
# cleanly.
test_per_thread_apply_fails_or_is_killed_at_every_step() {
	start_leaving
	local pid=$PID points n name action status left=0 old new
	points=$(OPUS_FAULT_LIST=1 "$OPUS" apply "$pid" "$WORK/fix.opatch" --per-thread \
		--timeout 0.2 2>&1 >/dev/null |
		sed -n 's/^opus fault point \([0-9]*\): \(blanking the registry record to write it again\|making the dispatchers. table writable\|planting a switch stub\|writing a jump\|waiting for threads to switch\)$/\1:\2/p' |
		awk -F: '!seen[$2]++')
	[ "$(echo "$points" | grep -c .)" = 5 ] || fail "the per-thread apply passed no fault points: '$points'"
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the listing run"
	while IFS=: read -r n name; do
		for action in fail kill; do
			old=$(grep -cx "inside 1000" "$START_OUT")
			new=$(grep -cx "inside 2000" "$START_OUT")
			status=0
			env OPUS_FAULT_ACTION=$action OPUS_FAULT_AT="$n" "$OPUS" apply "$pid" \
				"$WORK/fix.opatch" --per-thread --timeout 5 >/dev/null 2>"$WORK/err" || status=$?
			[ "$status" != 0 ] || fail "$action at '$name' ($n): the apply succeeded"
			[ "$action" = fail ] || [ "$status" = 137 ] || fail "$action at '$name': status $status"
			assert_running "$pid"
			"$OPUS" recover "$pid" >"$WORK/recover.out" ||
				fail "recover after a $action at '$name': $(cat "$WORK/recover.out")"
			assert_eq "$new" "$(grep -cx "inside 2000" "$START_OUT")" \
				"the thread inside ran the new code before it left ($action at '$name')"
			kill -USR1 "$pid"
			left=$((left + 1))
			wait_for "left $left"
			if [ "$(opus_mappings "$pid")" != 0 ]; then
				# Killed with every jump in (the last write, or the
				# wait): the patch is whole, the thread switched as it
				# left.
				assert_eq kill "$action" "a patch left after a $action at '$name'"
				assert_contains "fix" "$("$OPUS" list "$pid")" "a $action at '$name'"
				wait_for "inside 2000" $((new + 1))
				revert_leaving "$pid"
				left=$((left + 1))
				wait_for "left $left"
				wait_for "inside 1000" $((old + 1))
			fi
			assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after a $action at '$name'"
		done
	done <<<"$points"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# apply_leaving PID: a per-thread apply, the thread inside let go.
apply_leaving() {
	local ap outside inside
	outside=$(grep -cx "outside 2000" "$START_OUT")
	inside=$(grep -cx "inside 2000" "$START_OUT")
	"$OPUS" apply "$1" "$WORK/fix.opatch" --per-thread --timeout 30 >"$WORK/apply.out" 2>&1 &
	ap=$!
	wait_for "outside 2000" $((outside + 1))
	kill -USR1 "$1"
	wait "$ap" || fail "apply: $(cat "$WORK/apply.out")"
	wait_for "inside 2000" $((inside + 1))
}

# A per-thread revert is a transition too: its first stop restores the
# entries, so every other thread and the threads created from then on run
# the old code, while the thread inside the patch's inside() keeps the new
# code until it leaves; only then is the patch unmapped.
test_per_thread_revert_keeps_a_thread_inside_on_the_new_code_until_it_leaves() {
	start_leaving
	local pid=$PID rev
	apply_leaving "$pid"
	"$OPUS" revert "$pid" --per-thread --timeout 30 >"$WORK/revert.out" 2>&1 &
	rev=$!
	wait_for "outside 1000" 2
	wait_for "new 1000" 2
	sleep 0.3
	assert_eq 1 "$(grep -cx "inside 1000" "$START_OUT")" \
		"the thread inside ran the old code before it left the patch"
	kill -0 "$rev" 2>/dev/null || fail "revert ended with a thread still inside: $(cat "$WORK/revert.out")"
	assert_eq 1 "$(opus_patches_mapped "$pid")" "the patch is mapped while a thread runs it"
	kill -USR1 "$pid"
	wait "$rev" || fail "revert: $(cat "$WORK/revert.out")"
	wait_for "inside 1000" 2
	assert_contains "per-thread: 1 thread(s) inside the patch's code kept it" \
		"$(cat "$WORK/revert.out")" "revert says how it went"
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the revert"
	assert_contains "no patches" "$("$OPUS" list "$pid")" "opus list after the revert"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# start_keeper [ROUNDS]: tests/targets/keeper running with its fix built
# into $WORK/fix.opatch and applied, its sleeping thread holding the
# fixed word, a constant of the patch's own, in a register.
start_keeper() {
	build_target keeper "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/keeper/fixed.diff" \
		--binary "$WORK/src/keeper" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/keeper" "$@"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	printed_again "^fixed "
}

# printed_again REGEX: the target prints a line matching REGEX after the
# lines it has printed so far.
printed_again() {
	wait_printed -G "$1" $(($(grep -c -e "$1" "$START_OUT") + 1))
}

# A register that points into the patch while its thread sleeps (the word
# the patch's function returned, kept across a nanosleep) let go of it only
# at the next call, which went to the patch as long as the revert kept the
# entries there: every retry of the revert found it again, and it gave up
# (195 attempts in 2 s). The revert now puts the entries back first and
# unmaps the code in a later stop, once the thread has called the old
# function.
test_per_thread_revert_lets_a_register_let_go_of_the_patch() {
	start_keeper
	local pid=$PID
	"$OPUS" revert "$pid" --timeout 5 >"$WORK/revert.out" 2>&1 ||
		fail "revert: $(cat "$WORK/revert.out")"
	assert_contains "unmapped in a later stop" "$(cat "$WORK/revert.out")" "revert says how it went"
	printed_again "^old "
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the revert"
	assert_contains "no patches" "$("$OPUS" list "$pid")" "opus list after the revert"
	assert_running "$pid"
	assert_no_thread_traced "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# --json's phases add up to its total in a revert of two stops: the
# second stop's figure for the time before it once took the first stop's
# seizing away from its own and printed 18446744073708732 us.
test_json_phases_of_a_revert_in_two_stops_add_up() {
	start_leaving
	local pid=$PID rev
	apply_leaving "$pid"
	"$OPUS" revert "$pid" --per-thread --timeout 30 --json >"$WORK/revert.json" &
	rev=$!
	wait_for "outside 1000" 2
	kill -USR1 "$pid"
	wait "$rev" || fail "revert --json failed"
	assert_eq 1 "$(jq .stats.switched_late "$WORK/revert.json")" "a thread switched late"
	jq -e '.stats as $s | ($s.total_ms * 1000) as $total |
		($s.phases_us | to_entries | all(.value >= 0 and .value <= $total)) and
		([$s.phases_us[]] | add) <= $total + 1000' "$WORK/revert.json" >/dev/null ||
		fail "phases do not add up to the total: $(jq -c .stats "$WORK/revert.json")"
	wait_for "inside 1000" 2
	assert_running "$pid"
}

# revert_undone_while_held [MODE] REASON: tests/targets/keeper holding the
# fixed word for good in MODE (start_keeper 40 MODE): a revert is refused
# for REASON (an extended regex) and undone: the jumps back in, the patch
# whole, the word the patch's.
revert_undone_while_held() {
	local mode=${2:+$1} reason=${!#} pid
	start_keeper 40 $mode
	pid=$PID
	printed_again "^fixed held "
	expect_fail "revert while the fixed word is held${mode:+ ($mode)}" \
		"$OPUS" revert "$pid" --timeout 1
	grep -qE "$reason" <<<"$ERR" || fail "the reason: $ERR"
	assert_contains "left unchanged (the revert was undone)" "$ERR" "the outcome"
	assert_contains "fix" "$("$OPUS" list "$pid")" "opus list after the undone revert"
	assert_eq 1 "$(opus_patches_mapped "$pid")" "the patch stays mapped"
	printed_again "^fixed held "
	assert_running "$pid"
	assert_no_thread_traced "$pid"
}

# The same register held for good (the thread stops calling the function
# and keeps the fixed word): the later stop never finds the code free, and
# the revert is undone as one whose listed thread never leaves. The last
# stop may find the thread in its printf, which saved that register on
# the stack.
test_per_thread_revert_undone_while_a_register_keeps_pointing_into_the_patch() {
	revert_undone_while_held "a register of thread [0-9]+ points into fix|keeps a pointer into fix in"
}

# The same pointer held on the stack alone: the thread sleeps in a
# function that saved the register holding it and cleared them all. The
# revert read the registers and not the live frames, unmapped the patch,
# and the thread's next printf of the word crashed the target. Now a word
# into the patch in the live frames has the stack unwound, the register
# main keeps is found where the sleeping function saved it, and the
# revert is undone as above.
test_per_thread_revert_undone_while_a_saved_register_on_the_stack_points_into_the_patch() {
	revert_undone_while_held spilled "keeps a pointer into fix in r"
}

# The same pointer in a vector register alone, its thread busy (no
# syscall) with every general register cleared, as GCC's -O2 holds a pair
# of pointers in one before storing both. The revert read the general
# registers only, unmapped the patch, and the next print crashed the
# target; now it reads xmm, ymm and zmm too, and is undone.
test_per_thread_revert_undone_while_a_vector_register_points_into_the_patch() {
	revert_undone_while_held vector "points into fix|keeps a pointer into fix"
}

# The same pointer in a local alone: a slot of the sleeping thread's
# frame, every register cleared. The revert counted only registers (a
# local was not told from a stale word), unmapped the patch, and the
# next print crashed the target. Now a word of a frame's own part of the
# stack that points into the patch, other than a return address, counts
# (a stale one too: in doubt), and the revert is undone.
test_per_thread_revert_undone_while_a_local_points_into_the_patch() {
	revert_undone_while_held local "keeps a pointer into fix (at 0x[0-9a-f]+ in the frame of [a-z_]+ at|in r)"
}

# The same pointer below the stack pointer alone, in the red zone, as a
# function that calls nothing keeps a local, its thread busy with every
# register cleared. The revert read from the stack pointer up, unmapped
# the patch, and the target died at its next print. Now the red zone of a
# thread stopped in its own code is part of its innermost frame.
test_per_thread_revert_undone_while_the_red_zone_points_into_the_patch() {
	revert_undone_while_held redzone "keeps a pointer into fix at 0x[0-9a-f]+ in the frame of hold_in_red_zone at"
}

# The same pointer in the frame of a signal's handler that never returns
# (it naps, every register cleared), directly inside the signal frame.
# The check left the part of the stack inside the signal's trampoline
# unread, for the signal frame's stale words, and that part was the
# handler's own frame too: the revert unmapped the patch, and the target
# died at its next print. Only the signal frame is left unread now.
test_per_thread_revert_undone_while_a_handler_s_local_points_into_the_patch() {
	revert_undone_while_held handler "keeps a pointer into fix at 0x[0-9a-f]+ in the frame of hold_in_frame at"
}

# A per-thread revert whose thread does not leave in time is undone: the
# jumps go back in (in a stop with no thread in the old code) and the
# patch is whole again, the thread inside never off it. One whose opus is
# killed while it waits has the entries back already, so the patch's code
# stays mapped for the thread still in it, and recover takes it out once
# that thread has left.
test_per_thread_revert_cut_short_is_finished_by_recover() {
	start_leaving
	local pid=$PID rev
	apply_leaving "$pid"
	expect_fail "revert with a thread that does not leave" \
		"$OPUS" revert "$pid" --per-thread --timeout 1
	assert_contains "did not leave" "$ERR" "the error"
	assert_contains "left unchanged (the revert was undone)" "$ERR" "the error"
	wait_for "outside 1000" 2 # the others ran the old code while it waited
	wait_for "outside 2000" 2 # and the patch's again once undone
	assert_contains "fix" "$("$OPUS" list "$pid")" "opus list after the undone revert"
	assert_eq 1 "$(grep -cx "inside 1000" "$START_OUT")" "the thread inside stayed on the patch's code"
	revert_leaving "$pid"
	wait_for "inside 1000" 2
	# Killed while it waits.
	apply_leaving "$pid"
	"$OPUS" revert "$pid" --per-thread --timeout 30 >/dev/null 2>&1 &
	rev=$!
	wait_for "outside 1000" 4
	sleep 0.1
	kill -9 "$rev"
	wait "$rev" 2>/dev/null || true
	assert_running "$pid"
	assert_eq 2 "$(grep -cx "inside 1000" "$START_OUT")" "the thread inside stayed on the patch's code"
	kill -USR1 "$pid"
	wait_for "inside 1000" 3
	"$OPUS" recover "$pid" >/dev/null
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after recover"
	assert_running "$pid"
}

# let_go PID: the inside worker leaves inside() once, and has.
let_go() {
	local n
	n=$(grep -c '^left ' "$START_OUT" || true)
	kill -USR1 "$1"
	wait_for "left $((n + 1))"
}

# A per-thread revert that fails or is killed at each of its own steps
# (the switch stub planted, an entry restored, the wait): the thread inside
# returns where it should, and once it has left, recover leaves either the
# whole patch (cut short before its entries were restored) or none.
test_per_thread_revert_fails_or_is_killed_at_every_step() {
	start_leaving
	local pid=$PID points n name action status
	apply_leaving "$pid"
	points=$(OPUS_FAULT_LIST=1 "$OPUS" revert "$pid" --per-thread --timeout 0.2 2>&1 >/dev/null |
		sed -n 's/^opus fault point \([0-9]*\): \(planting a switch stub\|restoring an entry\|waiting for threads to switch\)$/\1:\2/p' |
		awk -F: '!seen[$2]++')
	[ "$(echo "$points" | grep -c .)" = 3 ] || fail "the per-thread revert passed no fault points: '$points'"
	let_go "$pid"
	"$OPUS" recover "$pid" >/dev/null
	while IFS=: read -r n name; do
		for action in fail kill; do
			[ "$(opus_mappings "$pid")" != 0 ] || apply_leaving "$pid"
			status=0
			env OPUS_FAULT_ACTION=$action OPUS_FAULT_AT="$n" "$OPUS" revert "$pid" --per-thread \
				--timeout 5 >/dev/null 2>"$WORK/err" || status=$?
			[ "$status" != 0 ] || fail "$action at '$name' ($n): the revert succeeded"
			[ "$action" = fail ] || [ "$status" = 137 ] || fail "$action at '$name': status $status"
			assert_running "$pid"
			let_go "$pid"
			"$OPUS" recover "$pid" >"$WORK/recover.out" ||
				fail "recover after a $action at '$name': $(cat "$WORK/recover.out")"
			case "$(opus_patches_mapped "$pid"):$("$OPUS" list "$pid")" in
			0:*"no patches"*) ;;
			1:*fix*) ;;
			*) fail "after a $action at '$name': $(opus_mappings "$pid") mapping(s), $("$OPUS" list "$pid")" ;;
			esac
		done
	done <<<"$points"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# The daemon with --per-thread: a process whose thread is inside a
# replaced function is patched all the same, that thread switching as it
# leaves.
test_daemon_per_thread_patches_a_process_with_a_thread_inside() {
	start_leaving
	local pid=$PID
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	start_daemon "$WORK/store" --per-thread --timeout 30
	wait_for "outside 2000"
	wait_for "new 2000"
	never_printed "inside 2000" "the thread inside ran the new code before it left"
	let_go "$pid"
	wait_for "inside 2000"
	wait_log "patched $pid (leaving) with fix"
	stop_daemon
	assert_contains "fix" "$("$OPUS" list "$pid")" "opus list"
	revert_leaving "$pid"
	assert_running "$pid"
}

# A thread whose thread pointer does not lead to itself (it set its own
# with arch_prctl) would be misread by the dispatchers: with a thread
# inside the replaced code, the apply lists none (no thread runs the new
# code while one is inside), stops every thread until none is, and says
# why.
test_apply_beside_a_thread_pointer_that_is_not_the_thread_stops_every_thread() {
	build_target leaving "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/leaving/value-2000.diff" \
		--binary "$WORK/src/leaving" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/leaving" odd-tp
	local pid=$PID odd ap
	wait_for "outside 1000"
	wait_for "inside 1000"
	odd=$(awk '/^odd/ {print $2}' "$START_OUT")
	[ -n "$odd" ] || fail "the target named no odd thread: $(cat "$START_OUT")"
	"$OPUS" apply "$pid" "$WORK/fix.opatch" --timeout 30 >"$WORK/apply.out" 2>&1 &
	ap=$!
	sleep 0.5
	never_printed "outside 2000" "a thread ran the new code while a thread was inside"
	kill -0 "$ap" 2>/dev/null || fail "apply ended with a thread still inside: $(cat "$WORK/apply.out")"
	kill -USR1 "$pid"
	wait "$ap" || fail "apply: $(cat "$WORK/apply.out")"
	assert_contains "stop-world: thread $odd's thread pointer does not lead to itself" \
		"$(cat "$WORK/apply.out")" "apply says why it stopped every thread"
	wait_for "outside 2000"
	wait_for "inside 2000"
	assert_contains "fix" "$("$OPUS" list "$pid")" "opus list after the apply"
	assert_running "$pid"
}

# More threads inside one replaced function than a page of switch stubs
# holds (64): the one stop lists each with a stub of its own, and each
# switches as it returns; the revert lists them the same way.
test_per_thread_apply_and_revert_list_a_hundred_threads_inside() {
	build_target leaving "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/leaving/crowd.diff" \
		--binary "$WORK/src/leaving" -o "$WORK/crowd.opatch" >/dev/null
	start "$WORK/src/leaving" crowd 100
	local pid=$PID late
	wait_for "outside 1000"
	"$OPUS" apply "$pid" "$WORK/crowd.opatch" --timeout 20 --json >"$WORK/apply.json"
	assert_eq per-thread "$(jq -r .stats.mode "$WORK/apply.json")" "the apply's mode"
	late=$(jq .stats.switched_late "$WORK/apply.json")
	[ "$late" -gt 64 ] || fail "the apply listed $late thread(s): $(cat "$WORK/apply.json")"
	assert_contains crowd "$("$OPUS" list "$pid")" "opus list after the apply"
	"$OPUS" revert "$pid" --timeout 20 --json >"$WORK/revert.json"
	late=$(jq .stats.switched_late "$WORK/revert.json")
	[ "$late" -gt 64 ] || fail "the revert listed $late thread(s): $(cat "$WORK/revert.json")"
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after the revert"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

# An apply that found no thread inside leaves the dispatchers' table as it
# is mapped, read-only; a revert that finds one makes it writable before
# it lists the thread, whose switch stub marks it there as it leaves (a
# stub writing a read-only table would kill the process). The request in
# flight runs its first nap in the patch's code, the later ones in the
# old code, and the process answers on.
test_per_thread_revert_lists_a_thread_after_an_apply_that_listed_none() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/slow-v2.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/slow.opatch" >/dev/null
	start "$WORK/src/authsrv"
	local inflight
	"$OPUS" apply --per-thread "$PID" "$WORK/slow.opatch" >"$WORK/apply.out"
	assert_contains "per-thread: no thread was inside" "$(cat "$WORK/apply.out")" "the apply"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "patched"
	req "NAPS 3" >"$WORK/inflight" &
	inflight=$!
	sleep 0.3
	"$OPUS" revert --per-thread --timeout 10 "$PID" >"$WORK/revert.out" ||
		fail "revert: $(cat "$WORK/revert.out")"
	assert_contains "per-thread: 1 thread(s) inside the patch's code kept it" \
		"$(cat "$WORK/revert.out")" "the revert listed the thread inside"
	wait "$inflight" || true
	assert_eq "napped 103" "$(cat "$WORK/inflight")" "the in-flight request"
	assert_eq "slept 0" "$(req 'SLEEP 0')" "a request after the revert"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the revert"
	assert_running "$PID"
}

# request_churn: every request a thread of its own that ends once it
# answers (authsrv's serve), 8 at a time, and one thread always in a
# longer request, until $WORK/stop-churn exists; CHURN holds their pids.
# A wrong answer to the longer one goes to $WORK/bad.
request_churn() {
	local a
	while [ ! -e "$WORK/stop-churn" ] && kill -0 "$PID" 2>/dev/null; do
		for _ in 1 2 3 4 5 6 7 8; do
			req 'SLEEP 0' >/dev/null &
		done
		wait
	done &
	CHURN=$!
	while [ ! -e "$WORK/stop-churn" ] && kill -0 "$PID" 2>/dev/null; do
		a=$(req 'NAPS 1')
		case "$a" in napped*) ;; *) echo "NAPS 1 -> '$a'" >>"$WORK/bad" ;; esac
	done &
	CHURN="$CHURN $!"
}

# A per-thread revert while request threads come and go: the fix is
# inlined into serve, the function each request's thread runs and then
# ends in, so every revert lists threads inside the patch's code. Their
# exits are guessed (no CFI describes that code), and a guess can be a
# stale copy of a return address in serve's frame: such a thread ends
# without being seen to switch. A listed thread that has ended has left
# the patch's code, and nothing leads back into it: the revert finishes.
# It used to be undone ("ended inside the replaced code before it could
# switch") in 26 of 30 reverts.
test_per_thread_revert_while_request_threads_come_and_go() {
	start_authsrv_with_fix
	"$OPUS" inspect --json "$WORK/fix.opatch" | jq -r '.functions[].name' | grep -qx serve ||
		fail "the fix does not replace serve: this test proves nothing"
	request_churn
	local i
	for i in 1 2 3 4 5; do
		"$OPUS" apply "$PID" "$WORK/fix.opatch" >"$WORK/out" 2>&1 ||
			fail "apply $i: $(cat "$WORK/out")"
		assert_eq DENIED "$(req 'AUTH admin ')" "the exploit after apply $i"
		"$OPUS" revert "$PID" >"$WORK/out" 2>&1 || fail "revert $i: $(cat "$WORK/out")"
		assert_eq OK "$(req 'AUTH admin ')" "the exploit after revert $i"
	done
	touch "$WORK/stop-churn"
	wait $CHURN
	[ ! -e "$WORK/bad" ] || fail "answers during the cycles: $(sort "$WORK/bad" | uniq -c)"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the last revert"
	assert_running "$PID"
}
