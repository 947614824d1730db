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
	for _ in $(seq 100); do
		[ "$(grep -cx "$1" "$START_OUT")" -ge "${2:-1}" ] && return 0
		sleep 0.05
	done
	fail "the target never printed '$1' ${2:-1} time(s): $(tail -5 "$START_OUT")"
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
