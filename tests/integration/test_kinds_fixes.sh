# Fixes to tests/targets/kinds that reach corners of the object diff: a
# hidden function (local in the linked binary), a cold part that goes away
# or appears, a new thread-local variable (refused, named). What the patched
# process answers is what the fixed program, built normally, answers.
K=$TARGETS/kinds

# kask PORT LINE: one request, its answer.
kask() {
	local a=""
	exec 3<>"/dev/tcp/127.0.0.1/$1"
	printf '%s\n' "$2" >&3
	IFS= read -r -t 10 a <&3 || true
	exec 3<&-
	printf '%s\n' "$a"
}

# kinds_fix_cycle DIFF REQUEST...: kinds (PIE -O2) running and the fixed
# program running beside it; after the patch, the running one answers each
# REQUEST as the fixed one does; after the revert, as before.
kinds_fix_cycle() {
	local diff=$1 r before=() i=0
	shift
	build_kinds "$WORK" pie -O2 -g
	mkdir -p "$WORK/fixed/src"
	cp "$K"/*.[ch] "$WORK/fixed/src/"
	patch -s -p1 -d "$WORK/fixed/src" <"$diff"
	build_kinds "$WORK/fixed" pie -O2 -g
	start "$WORK/fixed/src/kinds"
	local ref_port=$PORT
	start "$WORK/src/kinds"
	for r in "$@"; do
		before+=("$(kask "$PORT" "$r")")
	done
	"$OPUS" build --source "$WORK/src" --diff "$diff" --binary "$WORK/src/kinds" \
		-o "$WORK/fix.opatch" >"$WORK/build.out"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	for r in "$@"; do
		assert_eq "$(kask "$ref_port" "$r")" "$(kask "$PORT" "$r")" "'$r' after the patch"
	done
	"$OPUS" revert "$PID"
	for r in "$@"; do
		assert_eq "${before[i]}" "$(kask "$PORT" "$r")" "'$r' after the revert"
		i=$((i + 1))
	done
	assert_running "$PID"
}

# kinds_hidden has hidden visibility: a global of its unit, local in the
# linked executable (as Lua's LUAI_FUNC functions are in a program that
# embeds Lua). A fix to it alone must be built and applied, not reported
# as "no change".
test_fix_to_a_hidden_function() {
	kinds_fix_cycle "$K/hidden.diff" "hidden 7" "hidden 100"
	assert_contains "replaced kinds_hidden (data.c)" "$(cat "$WORK/build.out")" "build report"
	[ "$(kask "$PORT" 'hidden 7')" != "$(kask "$PORT" 'hidden 8')" ] || fail "hidden answers nothing"
}

# The old kinds_cold has a .cold part, the new one none: the old part is
# still checked for activeness, with its function.
test_cold_part_that_goes_away() {
	kinds_fix_cycle "$K/cold-gone.diff" "cold 5" "cold -3"
	readelf -sW "$WORK/src/kinds" | grep -w 'kinds_cold.cold' >/dev/null ||
		fail "the compiler made no kinds_cold.cold: the test proves nothing"
	assert_contains "replaced kinds_cold (data.c)" "$(cat "$WORK/build.out")" "build report"
}

# The new kinds_weak gains a cold part the old one lacked: it comes along.
test_cold_part_that_appears() {
	kinds_fix_cycle "$K/cold-new.diff" "weak 5" "table 9 weak"
	readelf -sW "$WORK/fixed/src/kinds" | grep -w 'kinds_weak.cold' >/dev/null ||
		fail "the compiler made no kinds_weak.cold: the test proves nothing"
	assert_contains "replaced kinds_weak (data.c)" "$(cat "$WORK/build.out")" "build report"
}

# Existing threads have no room for a new __thread variable: refused at
# build, naming it.
test_new_thread_local_variable_is_refused() {
	build_kinds "$WORK" pie -O2 -g
	expect_fail "a patch adding a __thread variable" \
		"$OPUS" build --source "$WORK/src" --diff "$K/new-tls.diff" --binary "$WORK/src/kinds" \
		-o "$WORK/fix.opatch"
	assert_contains "tls_fresh" "$ERR" "the variable named"
	assert_contains "new thread-local variable" "$ERR" "the reason"
	[ ! -e "$WORK/fix.opatch" ] || fail "a patch was written"
}

# Link-time optimisation moves code across units: refused, with the reason,
# from the binary's DWARF and from the compile database.
test_lto_build_is_refused() {
	build_authsrv "$WORK" -O2 -g -flto
	expect_fail "an LTO binary" "$OPUS" build --source "$WORK/src" \
		--diff "$TARGETS/authsrv/fix-auth.diff" --binary "$WORK/src/authsrv" -o "$WORK/fix.opatch"
	assert_contains "was linked with -flto" "$ERR" "the reason"
	# Without DWARF in the binary, the compile database still tells.
	build_authsrv "$WORK/nodebug" -O2 -flto
	expect_fail "an LTO build without debug info" "$OPUS" build --source "$WORK/nodebug/src" \
		--diff "$TARGETS/authsrv/fix-auth.diff" --binary "$WORK/nodebug/src/authsrv" \
		-o "$WORK/fix.opatch"
	assert_contains "is compiled with -flto" "$ERR" "the reason"
}
