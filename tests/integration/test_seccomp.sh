# Targets under seccomp, as sandboxed services run: opus reads the mode and
# the filters, and never injects a syscall they would kill, trap or fail
# it for; it refuses, naming the syscall and the action, and the target
# runs on untouched. tests/targets/seccomp/launch.c installs the filters.
L=$TARGETS/seccomp

# seccomp_setup RULE: authsrv running under launch RULE, its fix built.
seccomp_setup() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	gcc -O2 -o "$WORK/launch" "$L/launch.c"
	start "$WORK/launch" "$1" "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch" >/dev/null
	MAPS_BEFORE=$(cat "/proc/$PID/maps")
}

# refused_untouched WHAT: apply refused with WHAT in the message, and the
# target exactly as it was.
refused_untouched() {
	expect_fail "apply under seccomp" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	for w in "$@"; do
		assert_contains "$w" "$ERR" "the refusal"
	done
	assert_running "$PID"
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "memory map unchanged"
	assert_eq OK "$(req 'AUTH admin ')" "still the old code"
	assert_eq hello "$(req HELLO)" "serving"
}

test_seccomp_filter_that_kills_on_memfd_create() {
	seccomp_setup kill-memfd
	refused_untouched memfd_create "kill the process"
}

test_seccomp_filter_that_traps_memfd_create() {
	seccomp_setup trap-memfd
	refused_untouched memfd_create "raise SIGSYS"
}

test_seccomp_filter_that_fails_mmap_with_noreplace() {
	seccomp_setup errno-noreplace
	refused_untouched mmap "fail with errno 1"
}

# A filter that allows what opus does does not stop it.
test_seccomp_filter_that_allows_everything() {
	seccomp_setup allow
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "fixed under seccomp"
	"$OPUS" revert "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "reverted under seccomp"
	assert_running "$PID"
}

# Strict mode allows read, write, exit and sigreturn only.
test_seccomp_strict_mode() {
	build_target seccomp "$WORK" -O2 -g -fPIE -pie
	mkfifo "$WORK/in"
	"$WORK/src/seccomp" strict <"$WORK/in" >"$WORK/out" 2>&1 &
	PID=$!
	STARTED_PIDS="$PID"
	exec 4>"$WORK/in"
	for _ in $(seq 100); do grep -q '^ready' "$WORK/out" && break; sleep 0.05; done
	grep -q "Seccomp:.*1" "/proc/$PID/status" || fail "not in strict mode"
	"$OPUS" build --source "$WORK/src" --diff "$L/usage.diff" --binary "$WORK/src/seccomp" \
		-o "$WORK/usage.opatch" >/dev/null
	expect_fail "apply in strict mode" "$OPUS" apply "$PID" "$WORK/usage.opatch"
	assert_contains "strict mode" "$ERR" "the refusal"
	assert_running "$PID"
	printf 'x' >&4
	for _ in $(seq 100); do grep -q 'x' "$WORK/out" && break; sleep 0.02; done
	assert_eq "ready 0x" "$(tr -d '\n' <"$WORK/out")" "it still echoes"
	exec 4>&-
}

# A filter that kills on getpid: a busy thread is never sent to an exit stub
# (whose getpid would kill the process); a stop-world apply waits as before,
# and gives up naming the busy function when the thread stays in it.
test_seccomp_filter_that_kills_on_getpid_keeps_threads_from_exit_stubs() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	gcc -O2 -o "$WORK/launch" "$L/launch.c"
	start "$WORK/launch" kill-getpid "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/slow-v2.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/slow.opatch" >/dev/null
	req "NAPS 3" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	expect_fail "apply while slow_op runs" "$OPUS" apply --stop-world --timeout 1.5 "$PID" \
		"$WORK/slow.opatch"
	assert_contains "inside slow_op" "$ERR" "the error names the busy function"
	wait "$inflight" || true
	assert_eq "napped 3" "$(cat "$WORK/inflight")" "the in-flight request, all in the old code"
	assert_running "$PID"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the failed apply"
	# Per thread (the default), the thread inside is listed: its switch
	# stub makes no syscall, so the filter never sees one.
	req "NAPS 3" >"$WORK/inflight" &
	inflight=$!
	sleep 0.3
	"$OPUS" apply --timeout 10 "$PID" "$WORK/slow.opatch" >"$WORK/apply.out"
	assert_contains "per-thread: 1 thread(s) inside the replaced code" "$(cat "$WORK/apply.out")" \
		"apply lets the thread inside switch as it leaves"
	wait "$inflight" || true
	assert_contains "napped" "$(cat "$WORK/inflight")" "the in-flight request"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "a request after the apply"
	assert_running "$PID"
}

# A filter that kills on making memory read-write near the program: a
# per-thread apply that finds a thread inside may not make the patch's
# dispatchers' table writable (it is mapped read-only until then), so it
# lists no thread, waits for the thread to leave as --stop-world does, and
# says why; the in-flight request ends in the old code, the process lives.
test_seccomp_filter_that_kills_on_mprotect_keeps_the_apply_stop_world() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	gcc -O2 -o "$WORK/launch" "$L/launch.c"
	start "$WORK/launch" kill-mprotect-rw-low "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/slow-v2.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/slow.opatch" >/dev/null
	req "NAPS 3" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	"$OPUS" apply --timeout 10 "$PID" "$WORK/slow.opatch" >"$WORK/apply.out" ||
		fail "apply: $(cat "$WORK/apply.out")"
	assert_contains "stop-world: the dispatchers' table cannot be made writable" \
		"$(cat "$WORK/apply.out")" "apply says why it stopped every thread"
	assert_contains "mprotect" "$(cat "$WORK/apply.out")" "the syscall the filter forbids"
	wait "$inflight" || true
	# Three naps of 1 s: the first, running at the stop, in the old code
	# (1), each later one in the old or, once patched, the new (101).
	case "$(cat "$WORK/inflight")" in
	"napped 3" | "napped 103" | "napped 203") ;;
	*) fail "the in-flight request: '$(cat "$WORK/inflight")'" ;;
	esac
	assert_eq "slept 100" "$(req 'SLEEP 0')" "a request after the apply"
	assert_running "$PID"
}
