# Odd and hostile targets: each gets a clear error and stays exactly as it
# was, or (threads coming and going) is patched correctly.

hostile_setup() {
	start_authsrv_with_fix
	MAPS_BEFORE=$(cat "/proc/$PID/maps")
}

untouched() {
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "$1: memory map unchanged"
	assert_running "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "$1: original code still runs"
	# A request may map a thread stack: the next check starts from here.
	MAPS_BEFORE=$(cat "/proc/$PID/maps")
}

test_unprivileged_user_may_not_trace() {
	hostile_setup
	chmod 755 "$WORK"
	chmod 644 "$WORK/fix.opatch"
	expect_fail "apply as nobody" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=-all "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "process $PID" "$ERR" "names the pid"
	assert_contains "ermission denied" "$ERR" "says why"
	untouched "unprivileged"
	# --all as nobody may not look into root's processes: each is listed
	# as failed, with the reason, and the run fails (root can redo it).
	local out status=0
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
		"$OPUS" apply --all --json "$WORK/fix.opatch" 2>/dev/null) || status=$?
	[ "$status" != 0 ] || fail "apply --all as nobody succeeded"
	assert_eq "failed" \
		"$(jq -r --argjson p "$PID" '.processes[] | select(.pid == $p) | .state' <<<"$out")" \
		"the target listed as failed"
	assert_contains "another user's process" \
		"$(jq -r --argjson p "$PID" '.processes[] | select(.pid == $p) | .reason' <<<"$out")" \
		"with the reason"
	untouched "unprivileged --all"
}

test_process_traced_by_gdb() {
	hostile_setup
	gdb -q -batch -p "$PID" -ex 'shell sleep 3' >/dev/null 2>&1 &
	local gdb=$!
	for _ in $(seq 100); do
		[ "$(awk '/^TracerPid/ {print $2}' "/proc/$PID/status")" != 0 ] && break
		sleep 0.05
	done
	expect_fail "apply under gdb" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "traced by gdb" "$ERR" "names the debugger"
	wait "$gdb" || true
	untouched "after gdb detached"
}

test_stopped_process() {
	hostile_setup
	kill -STOP "$PID"
	# kill returns before the stop has happened.
	for _ in $(seq 100); do
		[ "$(awk '{print $3}' "/proc/$PID/stat")" = T ] && break
		sleep 0.01
	done
	expect_fail "apply to a stopped process" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "is stopped" "$ERR" "says so"
	assert_eq T "$(awk '{print $3}' "/proc/$PID/stat")" "still stopped"
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "memory map unchanged"
	kill -CONT "$PID"
	untouched "continued"
}

# A POSIX timer fires SIGRTMIN every 100 us with a pointer as its payload
# (tests/targets/timer). Signals keep arriving while opus stops the
# threads and while it runs syscalls in one of them, and each must reach
# the handler as it was sent. Measured before: a signal taken during an
# injected syscall was sent again with tgkill, its sival_ptr NULL, and the
# target (dereferencing it, as timer_create's users do) died of SIGSEGV
# on the first apply; a signal's stop took the place of opus's interrupt,
# and opus then waited forever for a thread that ran free, the other
# thread held (4 applies or reverts of 80 hung, so the test makes 60).
test_signals_keep_their_siginfo_through_apply_and_revert() {
	build_target timer "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/timer/value-2000.diff" \
		--binary "$WORK/src/timer" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/timer"
	local i last fired
	for i in $(seq 30); do
		timeout 20 "$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null || fail "apply $i"
		sleep 0.05
		assert_eq 2 "$(tail -n 1 "$START_OUT" | cut -c1)" "the fix answers after apply $i"
		timeout 20 "$OPUS" revert "$PID" >/dev/null || fail "revert $i"
		sleep 0.05
		assert_eq 1 "$(tail -n 1 "$START_OUT" | cut -c1)" "the old code answers after revert $i"
	done
	assert_running "$PID"
	last=$(tail -n 1 "$START_OUT")
	assert_eq 0 "${last##* }" "signals that came without their payload"
	fired=$(echo "$last" | awk '{print $2}')
	[ "$fired" -gt 1000 ] || fail "the timer's signals stopped arriving: $last"
}

# io_uring's workers of PID: threads of the process that run only in the
# kernel (PF_IO_WORKER, 0x10 in the flags of /proc/TID/stat).
io_workers() {
	local stat flags
	for stat in /proc/"$1"/task/*/stat; do
		flags=$(awk '{print $9}' "$stat" 2>/dev/null) || continue
		[ $((flags & 0x10)) = 0 ] || basename "$(dirname "$stat")"
	done
}

# Threads blocked in the kernel (tests/targets/waiters): one in
# epoll_wait, one in io_uring_enter waiting for a read that an io_uring
# worker has in hand. A stop makes both calls fail with EINTR where no
# handler ran, and the program takes that error for fatal, as many do.
# Measured before: the first apply's stops made one of them fail, and the
# program exited ("failed epoll_wait: Interrupted system call"). Now each
# runs again, and after every apply and revert both waits still end when
# their pipes are written to. The worker, whose stack and instruction
# pointers the kernel zeroes, is not unwound: libdwfl spent 70 ms of the
# pause on it, to find nothing.
test_calls_blocked_in_the_kernel_do_not_fail_from_the_stops() {
	build_target waiters "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/waiters/value-2000.diff" \
		--binary "$WORK/src/waiters" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/waiters"
	local epoll_fd uring_fd workers mode w flags
	read -r _ epoll_fd uring_fd < <(grep '^ready' "$START_OUT")
	workers=$(io_workers "$PID")
	[ -n "$workers" ] || fail "the kernel made no io_uring worker for the read"
	for mode in default --stop-world default --stop-world; do
		flags=()
		[ "$mode" = default ] || flags=("$mode")
		OPUS_VERBOSE=1 "$OPUS" apply "${flags[@]}" "$PID" "$WORK/fix.opatch" >/dev/null \
			2>"$WORK/apply.err" || fail "apply $mode: $(tail -3 "$WORK/apply.err")"
		tick_value_becomes 2 "the fix answers after apply $mode"
		for w in $workers; do
			assert_contains "thread $w: an io_uring worker" "$(cat "$WORK/apply.err")" \
				"the worker is known for what it is"
		done
		"$OPUS" revert "$PID" >/dev/null || fail "revert after apply $mode"
		tick_value_becomes 1 "the old code answers after revert"
	done
	assert_not_contains "failed" "$(cat "$START_OUT")" "no call failed"
	assert_running "$PID"
	printf x >"/proc/$PID/fd/$epoll_fd"
	printf hello >"/proc/$PID/fd/$uring_fd"
	for _ in $(seq 100); do
		grep -q '^read ' "$START_OUT" && grep -q '^epoll ' "$START_OUT" && break
		sleep 0.02
	done
	assert_eq "epoll x" "$(grep '^epoll ' "$START_OUT")" "epoll_wait still waits on its pipe"
	assert_eq "read 5" "$(grep '^read ' "$START_OUT")" "the worker's read completed whole"
}

# A main thread that runs restartable sequences (rseq(2)) back to back
# (tests/targets/rseq), stopped by opus to run syscalls in, and held there
# 100 ms (a stall at the first). The kernel sends a thread preempted inside
# a section to its abort handler as it returns to its code; opus's gadget
# came first, and the kernel forgot the section there. Measured before:
# one apply in three let a section commit after 300 ms held inside it
# ("held 1"), which a per-CPU cache (tcmalloc's) takes for done without
# preemption. Now the thread goes on at the abort handler, where the kernel
# would have sent it.
test_a_restartable_sequence_opus_stops_in_is_aborted_not_committed() {
	build_target rseq "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/rseq/value-2000.diff" \
		--binary "$WORK/src/rseq" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/rseq"
	local i aborted
	for i in $(seq 4); do
		OPUS_FAULT_AT="setting up an injected syscall" OPUS_FAULT_ACTION=stall:100 \
			"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null || fail "apply $i"
		tick_value_becomes 2 "the fix answers after apply $i"
		OPUS_FAULT_AT="setting up an injected syscall" OPUS_FAULT_ACTION=stall:100 \
			"$OPUS" revert "$PID" >/dev/null || fail "revert $i"
		tick_value_becomes 1 "the old code answers after revert $i"
	done
	assert_running "$PID"
	assert_eq 0 "$(awk '$1 == "tick" {h = $9} END {print h}' "$START_OUT")" \
		"sections committed after the thread was held inside"
	aborted=$(awk '$1 == "tick" {a = $7} END {print a}' "$START_OUT")
	[ "$aborted" -gt 0 ] || fail "no section was ever aborted: the stops missed them all"
}

# A thread that no stop reaches until another thread acts
# (tests/targets/uffd): the kernel's copy of a read() into a
# userfaultfd page waits for the handler thread, which answers only when
# told. Asked to stop, the reader never does while opus holds the handler.
# Measured before: apply waited for it forever, every other thread held,
# and the program stopped ticking until opus was killed. Now a thread
# that has not stopped 20 ms after it was asked, asleep in the kernel or
# running there, lets the others go, the stop is tried again until the
# timeout, and apply fails naming it; the program ticks on meanwhile, and
# the read completes once answered. Then the apply goes in.
test_a_thread_no_stop_reaches_does_not_hold_the_others() {
	build_target uffd "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/uffd/value-2000.diff" \
		--binary "$WORK/src/uffd" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/uffd"
	local go_fd before after status=0
	go_fd=$PORT
	uffd_waits_for_its_fault
	MAPS_BEFORE=$(cat "/proc/$PID/maps")
	before=$(grep -c '^tick' "$START_OUT")
	timeout 30 "$OPUS" apply --timeout 1 "$PID" "$WORK/fix.opatch" >/dev/null 2>"$WORK/apply.err" ||
		status=$?
	after=$(grep -c '^tick' "$START_OUT")
	[ "$status" != 124 ] || fail "apply did not return"
	[ "$status" != 0 ] || fail "apply succeeded with a thread it could not stop"
	assert_contains "does not stop" "$(cat "$WORK/apply.err")" "says why"
	# About 100 ticks in that second; held, the program makes none.
	[ $((after - before)) -ge 20 ] || fail "the program ticked $((after - before)) times while apply waited"
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "memory map unchanged"
	printf x >"/proc/$PID/fd/$go_fd"
	for _ in $(seq 100); do
		grep -q '^read ' "$START_OUT" && break
		sleep 0.02
	done
	assert_eq "read $(wc -c </etc/hostname)" "$(grep '^read ' "$START_OUT")" "the read completed whole"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null || fail "apply once the reader is done"
	tick_value_becomes 2 "the fix answers"
	assert_running "$PID"
}

# The process dies while apply waits for a busy function.
test_process_exits_during_apply() {
	hostile_setup
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/slow-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/slow.opatch" >/dev/null
	(req 'SLEEP 30' >/dev/null) &
	sleep 0.3
	"$OPUS" apply --timeout 20 "$PID" "$WORK/slow.opatch" >"$WORK/apply.out" 2>&1 &
	local apply=$! status=0
	sleep 0.5
	kill -9 "$PID"
	wait "$apply" || status=$?
	[ "$status" != 0 ] || fail "apply succeeded on a process that died"
	assert_contains "process $PID" "$(cat "$WORK/apply.out")" "names the pid"
	# And nothing of opus is left waiting or tracing.
	pgrep -f "$OPUS apply" >/dev/null && fail "opus apply still running"
	true
}

test_threads_come_and_go_during_apply() {
	build_target spawner "$WORK" -O2 -g
	start "$WORK/src/spawner"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/spawner/answer-2.diff" \
		--binary "$WORK/src/spawner" -o "$WORK/answer.opatch" >/dev/null
	sleep 0.3
	local i
	# Threads exit between opus listing and seizing them: 20 cycles.
	for i in $(seq 20); do
		"$OPUS" apply "$PID" "$WORK/answer.opatch" >/dev/null
		"$OPUS" revert "$PID" >/dev/null
	done
	"$OPUS" apply "$PID" "$WORK/answer.opatch" >/dev/null
	local c1 t1 c2 t2
	sleep 0.3
	read -r c1 t1 < <(tail -1 "$START_OUT")
	sleep 0.5
	read -r c2 t2 < <(tail -1 "$START_OUT")
	[ $((c2 - c1)) -gt 0 ] || fail "no thread ran after the patch"
	assert_eq $((2 * (c2 - c1))) $((t2 - t1)) "every call since the patch answered 2"
	assert_running "$PID"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "one patch mapped"
}

# Threads are created at every moment (8 threads each create one and join
# it, back to back), also while opus stops the others: those it finds in
# the middle of the stop are stopped and checked like the rest. The record
# of where each thread's stack leaves the replaced code was sized before
# the stop, and a thread found during it was written past its end: opus
# corrupted its own heap (AddressSanitizer: 4 overflows in 30 cycles).
test_threads_created_while_opus_stops_the_others() {
	build_target spawner "$WORK" -O2 -g
	start "$WORK/src/spawner" 8
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/spawner/answer-2.diff" \
		--binary "$WORK/src/spawner" -o "$WORK/answer.opatch" >/dev/null
	local i c1 t1 c2 t2
	for i in $(seq 40); do
		"$OPUS" apply "$PID" "$WORK/answer.opatch" >"$WORK/out" 2>&1 ||
			fail "apply $i: $(cat "$WORK/out")"
		"$OPUS" revert "$PID" >"$WORK/out" 2>&1 || fail "revert $i: $(cat "$WORK/out")"
	done
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the last revert"
	"$OPUS" apply "$PID" "$WORK/answer.opatch" >/dev/null
	sleep 0.3
	read -r c1 t1 < <(tail -1 "$START_OUT")
	sleep 0.5
	read -r c2 t2 < <(tail -1 "$START_OUT")
	[ $((c2 - c1)) -gt 0 ] || fail "no thread ran after the patch"
	# Each call adds 2 now, 1 before; a few calls are counted in one
	# figure and not yet in the other.
	[ $((2 * (t2 - t1))) -gt $((3 * (c2 - c1))) ] ||
		fail "calls since the patch: $((c2 - c1)), their total $((t2 - t1))"
	assert_running "$PID"
}

# A thread waiting for its vfork child sleeps until the child execs or
# exits, and no stop reaches it before then; the child runs in the
# process's memory. opus neither holds the other threads meanwhile (it
# used to, for as long as the child lived) nor writes: it tries again, as
# for a busy thread, and at its timeout says why. The thread goes on once
# its child is done, not left stopped by the interrupt opus sent it.
test_thread_waiting_for_its_vfork_child() {
	local status=0 ticks apply
	build_target vforker "$WORK" -O2 -g
	start "$WORK/src/vforker"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/vforker/value-2000.diff" \
		--binary "$WORK/src/vforker" -o "$WORK/fix.opatch" >/dev/null
	vfork_child
	ticks=$(grep -c '^tick' "$START_OUT")
	timeout 20 "$OPUS" apply --timeout 1 "$PID" "$WORK/fix.opatch" >/dev/null 2>"$WORK/err" ||
		status=$?
	[ "$status" != 124 ] || fail "opus apply waited for the vfork child"
	[ "$status" != 0 ] || fail "applied while a thread waited for its vfork child"
	assert_contains "is waiting for its vfork child" "$(cat "$WORK/err")" "the error says why"
	assert_contains "$PID" "$(cat "$WORK/err")" "the error names the process"
	# 50 ms a tick: a second of trying held the main thread for none of it.
	[ $(($(grep -c '^tick' "$START_OUT") - ticks)) -ge 10 ] ||
		fail "the main thread was held while opus tried ($ticks ticks before)"
	assert_running "$PID"
	assert_no_thread_traced "$PID"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the failed apply"
	# The child runs in its parent's memory: patching it would write there
	# with the parent's threads running.
	expect_fail "apply to the vfork child" "$OPUS" apply --timeout 1 "$CHILD" "$WORK/fix.opatch"
	assert_contains "process $CHILD shares its memory with its parent, process $PID" "$ERR" \
		"the child is refused"
	case "$(last_tick_value)" in 100?) ;; *) fail "value changed: $(last_tick_value)" ;; esac
	kill "$CHILD"
	wait_line "$START_OUT" reaped "$CHILD" >/dev/null
	case "$(last_tick_value)" in 100?) ;; *) fail "value changed: $(last_tick_value)" ;; esac

	# Waited for, it is patched once the child is done.
	vfork_child
	"$OPUS" apply --timeout 20 --json "$PID" "$WORK/fix.opatch" >"$WORK/apply.json" &
	apply=$!
	sleep 0.5
	kill -0 "$apply" 2>/dev/null || fail "applied while a thread waited for its vfork child"
	kill "$CHILD"
	wait "$apply" || fail "apply after the vfork child exited"
	[ "$(jq .stats.attempts "$WORK/apply.json")" -gt 1 ] || fail "apply did not wait"
	wait_line "$START_OUT" reaped "$CHILD" >/dev/null
	for _ in $(seq 100); do
		case "$(last_tick_value)" in 200?) break ;; esac
		sleep 0.05
	done
	case "$(last_tick_value)" in 200?) ;; *) fail "not patched: $(last_tick_value)" ;; esac
	assert_running "$PID"
	"$OPUS" revert "$PID" >/dev/null
	assert_running "$PID"
}

# apply --all finds a vfork child before its exec as a process that maps
# the object. It is no target of its own (it runs in its parent's memory),
# and no failure of the run: its parent, waited for until the child is
# done, is patched, and with it the child's memory. It used to count as
# failed, and the run exited 1.
test_apply_all_counts_a_vfork_child_with_its_parent() {
	local all status=0
	build_target vforker "$WORK" -O2 -g
	start "$WORK/src/vforker"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/vforker/value-2000.diff" \
		--binary "$WORK/src/vforker" -o "$WORK/fix.opatch" >/dev/null
	vfork_child
	# Two workers: one waits on the parent while the other meets the child.
	"$OPUS" apply --all --jobs 2 --timeout 20 "$WORK/fix.opatch" >"$WORK/all.out" 2>&1 &
	all=$!
	for _ in $(seq 100); do
		grep -q "^with its parent *$CHILD " "$WORK/all.out" && break
		sleep 0.05
	done
	grep -q "^with its parent *$CHILD " "$WORK/all.out" ||
		{ kill "$CHILD"; fail "the vfork child is not counted with its parent: $(cat "$WORK/all.out")"; }
	assert_contains "shares its memory with its parent, process $PID" "$(cat "$WORK/all.out")" \
		"the line says why"
	kill -0 "$all" 2>/dev/null || fail "apply --all did not wait for the parent"
	kill "$CHILD"
	wait "$all" || status=$?
	assert_eq 0 "$status" "apply --all's exit status ($(cat "$WORK/all.out"))"
	grep -q "^patched *$PID " "$WORK/all.out" || fail "the parent is not patched: $(cat "$WORK/all.out")"
	assert_contains "1 patched, 1 with its parent" "$(tail -1 "$WORK/all.out")" "the summary"
	for _ in $(seq 100); do
		case "$(last_tick_value)" in 200?) break ;; esac
		sleep 0.05
	done
	case "$(last_tick_value)" in 200?) ;; *) fail "not patched: $(last_tick_value)" ;; esac
	"$OPUS" revert "$PID" >/dev/null
	assert_running "$PID"
}

# A helper cloned with CLONE_VM alone (neither a thread nor a vfork child)
# runs the server's code as a process of its own, which opus does not stop
# with the server: patching the server would change the code under the
# helper's feet. apply refuses naming the helper; apply --all fails for the
# server (the helper, which maps the binary too, counts with its parent);
# both run on untouched.
test_a_child_that_shares_the_memory_refuses_the_patch() {
	local helper status=0
	build_target vmchild "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/vmchild"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/vmchild/step-2.diff" \
		--binary "$WORK/src/vmchild" -o "$WORK/fix.opatch" >/dev/null
	helper=$(req HELPER)
	[ "$helper" -gt 0 ] || fail "no helper: $helper"
	expect_fail "patching a process whose child shares its memory" \
		"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "process $PID shares its memory with process $helper" "$ERR" \
		"the error names both"
	assert_contains "CLONE_VM" "$ERR" "the error says how"
	"$OPUS" apply --all "$WORK/fix.opatch" >"$WORK/all.out" 2>&1 || status=$?
	assert_eq 1 "$status" "apply --all's exit status ($(cat "$WORK/all.out"))"
	grep -q "^failed *$PID " "$WORK/all.out" || fail "the server not failed: $(cat "$WORK/all.out")"
	grep -q "^with its parent *$helper " "$WORK/all.out" ||
		fail "the helper not with its parent: $(cat "$WORK/all.out")"
	for p in "$PID" "$helper"; do
		assert_eq 0 "$(opus_mappings "$p")" "opus mappings in $p"
		assert_running "$p"
	done
	assert_eq 1 "$(req STEP)" "the old code runs"
	counter_advances TICKS 0.1 "the helper"
}

# The same helper cloned while opus is at work: an apply waits for main to
# leave (it never does; opus waits at main's return) and, finding the new
# child in that wait, stops the server again at once, not at --timeout;
# the helper, started between the two stops, is refused inside the second,
# where no thread can clone. Without that look the apply gave up as for a
# busy function, and would have written the jumps had main left.
test_a_child_that_shares_the_memory_found_between_two_stops() {
	local helper apply status=0
	build_target vmchild "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/vmchild" later
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/vmchild/main.diff" \
		--binary "$WORK/src/vmchild" -o "$WORK/fix.opatch" >/dev/null
	assert_eq 0 "$(req HELPER)" "no helper yet"
	"$OPUS" apply --stop-world --timeout 120 "$PID" "$WORK/fix.opatch" >/dev/null \
		2>"$WORK/err" &
	apply=$!
	sleep 0.5
	kill -0 "$apply" 2>/dev/null || fail "apply did not wait for main: $(cat "$WORK/err")"
	helper=$(req SPAWN)
	[ "$helper" -gt 0 ] || fail "no helper: $helper"
	# Found in the wait: the apply ends long before its --timeout.
	for _ in $(seq 200); do
		kill -0 "$apply" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$apply" 2>/dev/null; then
		kill "$apply"
		fail "the apply still waits at main's return 20 s after the helper was cloned"
	fi
	wait "$apply" || status=$?
	[ "$status" != 0 ] || fail "applied with a helper sharing the memory"
	assert_contains "process $PID shares its memory with process $helper" "$(cat "$WORK/err")" \
		"the error names both"
	assert_not_contains "gave up" "$(cat "$WORK/err")" "found, not taken for a busy function"
	for p in "$PID" "$helper"; do
		assert_eq 0 "$(opus_mappings "$p")" "opus mappings in $p"
		assert_running "$p"
	done
	counter_advances TICKS 0.1 "the helper"
}

# The main thread called pthread_exit while the others serve on: the
# process lives, its leader is a zombie, and /proc/PID shows nothing of its
# memory. opus works through a live thread, by pid and with apply --all.
test_process_whose_main_thread_exited() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	AUTHSRV_MAIN_EXITS=1 start "$WORK/src/authsrv"
	for _ in $(seq 50); do
		[ "$(awk '{print $3}' "/proc/$PID/stat")" = Z ] && break
		sleep 0.05
	done
	assert_eq Z "$(awk '{print $3}' "/proc/$PID/stat")" "the leader exited"
	assert_eq hello "$(req HELLO)" "the process serves on"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "patched by pid"
	assert_contains fix "$("$OPUS" list "$PID")" "listed"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq OK "$(req 'AUTH admin ')" "reverted"
	"$OPUS" apply --all --json "$WORK/fix.opatch" >"$WORK/all.json"
	assert_eq patched "$(jq -r --argjson p "$PID" '.processes[] | select(.pid == $p) | .state' \
		"$WORK/all.json")" "patched by apply --all"
	assert_eq DENIED "$(req 'AUTH admin ')" "the fix in force"
	"$OPUS" revert --all fix >/dev/null
	assert_eq OK "$(req 'AUTH admin ')" "reverted by revert --all"
}

# A target at its address-space limit (RLIMIT_AS): the patch cannot be
# mapped; apply says so, naming the pid, leaves no memfd behind, and the
# same apply goes in once the limit is raised.
test_address_space_limit_refuses_cleanly() {
	hostile_setup
	local vm limit
	limit=$(prlimit --pid "$PID" --as --raw --noheadings -o SOFT)
	vm=$(awk '/^VmSize/ {print $2}' "/proc/$PID/status")
	prlimit --pid "$PID" --as=$((vm * 1024 + 4096)):
	expect_fail "apply at the limit" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "process $PID" "$ERR" "names the pid"
	assert_contains "Cannot allocate memory" "$ERR" "says why"
	assert_eq "" "$(ls -l "/proc/$PID/fd" | grep memfd || true)" "no memfd descriptor left"
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "memory map unchanged"
	prlimit --pid "$PID" --as="$limit":
	untouched "after the limit"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "applied once the limit is raised"
}

# A target at its limit of open files (RLIMIT_NOFILE): the patch's memfd
# cannot be made in it; apply says so, naming the pid and the limit, leaves
# the target as it was, and goes in once the limit is raised.
test_open_file_limit_refuses_cleanly() {
	hostile_setup
	local limit lowest=0
	limit=$(prlimit --pid "$PID" --nofile --raw --noheadings -o SOFT)
	# The lowest free descriptor is the one memfd_create would take.
	while [ -e "/proc/$PID/fd/$lowest" ]; do lowest=$((lowest + 1)); done
	prlimit --pid "$PID" --nofile="$lowest":
	expect_fail "apply at the limit" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "process $PID has no file descriptor to spare" "$ERR" "names the pid"
	assert_contains "RLIMIT_NOFILE $lowest" "$ERR" "names the limit"
	assert_eq "$MAPS_BEFORE" "$(cat "/proc/$PID/maps")" "memory map unchanged"
	assert_running "$PID"
	prlimit --pid "$PID" --nofile="$limit":
	untouched "after the limit"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "applied once the limit is raised"
}
