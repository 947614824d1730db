# New code that reads libc variables the running program never used
# (stderr, stdout, environ, optind, optarg): the executable has no copy of
# them, so they live in libc, gigabytes away from the patch. What the patched
# process logs must be what the same fix, compiled into a program of its
# own and run the same way, logs.
D=$TARGETS/authsrv

# reference_log FLAGS...: the fixed program built normally; its log line
# for a denied login.
reference_log() {
	tree_with_diff "$WORK" "$D/log-extern.diff" "$WORK/fixed"
	(cd "$WORK/fixed" && gcc -g "$@" -pthread authsrv.c -o authsrv)
	AUTHSRV_MARK=m$$ start "$WORK/fixed/authsrv"
	assert_eq DENIED "$(req 'AUTH admin x')" "reference program"
	for _ in $(seq 50); do grep -q '^denied' "$START_OUT" && break; sleep 0.05; done
	grep '^denied\|^stdout denied' "$START_OUT"
	# Run in $(...): stop_all never hears of this process.
	kill -9 "$PID"
}

# extern_data_cycle REPLACED FLAGS...: REPLACED is the one function the
# build must replace (at -O2 the fix is inlined into serve).
extern_data_cycle() {
	local replaced=$1 ref pid out
	shift
	build_authsrv "$WORK" -g "$@"
	ref=$(reference_log "$@")
	[ -n "$ref" ] || fail "the reference program logged nothing"
	cp "$WORK/src/authsrv" "$WORK/running"
	strip "$WORK/running"
	AUTHSRV_MARK=m$$ start "$WORK/running"
	pid=$PID out=$START_OUT
	"$OPUS" build --source "$WORK/src" --diff "$D/log-extern.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >"$WORK/build.out"
	"$OPUS" apply "$pid" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin x')" "denied login after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	for _ in $(seq 50); do grep -q '^denied' "$out" && break; sleep 0.05; done
	assert_eq "$ref" "$(grep '^denied\|^stdout denied' "$out")" "what the patched process logs"
	assert_running "$pid"
	"$OPUS" revert "$pid"
	assert_eq OK "$(req 'AUTH admin hunt')" "old behaviour after revert"
	assert_eq DENIED "$(req 'AUTH admin x')" "old behaviour after revert"
	sleep 0.2
	assert_eq 1 "$(grep -c '^denied' "$out")" "no log line after revert"
	assert_running "$pid"
	# Only the function whose source changed: literals that merely moved
	# and __LINE__ immediates are no change, at -O0 too.
	assert_eq "$replaced" "$(awk '$1 == "replaced" {print $2}' "$WORK/build.out" | sort -u)" \
		"functions replaced"
}

test_extern_data_pie_O2_stripped() {
	extern_data_cycle serve -O2 -fPIE -pie
}

test_extern_data_nonpie_O2_stripped() {
	extern_data_cycle serve -O2 -fno-pie -no-pie
}

test_extern_data_pie_O0_stripped() {
	extern_data_cycle check_password -O0 -fPIE -pie
}

test_extern_data_nonpie_O0_stripped() {
	extern_data_cycle check_password -O0 -fno-pie -no-pie
}
