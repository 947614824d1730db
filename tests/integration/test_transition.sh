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
