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

# The thread inside returns, switches, answers and ends while opus is
# descheduled between reading the switch table and looking for threads
# that ended (a stall at that step, as on a loaded machine): it switched
# before it ended, so the apply goes on and finishes.
test_a_thread_that_switches_and_ends_while_opus_is_away_is_not_taken_for_one_that_ended_inside() {
	local tid
	build_slow_patch
	ls "/proc/$PID/task" | sort >"$WORK/before"
	req "SLEEP 1" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	tid=$(ls "/proc/$PID/task" | sort | comm -13 "$WORK/before" - | head -1)
	[ -n "$tid" ] || fail "no thread came with the request"
	OPUS_FAULT_AT="waiting for threads to switch" OPUS_FAULT_ACTION=stall:2000 \
		"$OPUS" apply --timeout 10 "$PID" "$WORK/slow.opatch" >"$WORK/apply.out" 2>&1 ||
		fail "apply: $(cat "$WORK/apply.out")"
	assert_contains "1 thread(s) inside the replaced code kept the old code" \
		"$(cat "$WORK/apply.out")" "the thread serving the request was listed"
	[ ! -e "/proc/$PID/task/$tid" ] || fail "thread $tid did not end during the stall"
	wait "$inflight" || true
	assert_eq "slept 1" "$(cat "$WORK/inflight")" "in-flight request"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "request after the apply"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "patches mapped"
	"$OPUS" revert "$PID"
	assert_eq "slept 0" "$(req 'SLEEP 0')" "request after the revert"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the revert"
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

# One busy thread among 64 idle ones, most of them created after it: each
# thread's stack is checked as it stops, while later ones are still on
# their way, and the busy one is found wherever it is in the list.
test_busy_thread_among_many_idle_ones_is_found() {
	build_slow_patch
	local fds=() fd i tid threads
	for i in $(seq 16); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		fds+=("$fd")
	done
	sleep 0.3
	ls "/proc/$PID/task" | sort >"$WORK/before"
	req "SLEEP 3" >"$WORK/inflight" &
	local inflight=$!
	sleep 0.3
	# The thread serving it: the one that came with it.
	tid=$(ls "/proc/$PID/task" | sort | comm -13 "$WORK/before" - | head -1)
	for i in $(seq 48); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		fds+=("$fd")
	done
	for _ in $(seq 50); do
		threads=$(ls "/proc/$PID/task" | wc -l)
		[ "$threads" -ge 65 ] && break
		sleep 0.05
	done
	[ "$threads" -ge 65 ] || fail "only $threads threads"
	expect_fail "apply while one of $threads threads is in slow_op" \
		"$OPUS" apply --timeout 1 "$PID" "$WORK/slow.opatch"
	assert_contains "inside slow_op" "$ERR" "error names the busy function"
	assert_contains "thread $tid is inside" "$ERR" "error names the busy thread"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the failed apply"
	for fd in "${fds[@]}"; do
		exec {fd}<&-
	done
	wait "$inflight" || true
	assert_eq "slept 3" "$(cat "$WORK/inflight")" "in-flight request"
	"$OPUS" apply --timeout 10 "$PID" "$WORK/slow.opatch" >/dev/null
	assert_eq "slept 100" "$(req 'SLEEP 0')" "applied once it returned"
	assert_running "$PID"
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

# napped_mixed FILE [FIRST THEN]: the answer to NAPS 8 in FILE came from
# calls of slow_op answering FIRST (default 1: the old code) and then
# calls answering THEN (default 101: the new code): some of each.
napped_mixed() {
	local napped first=${2:-1} then=${3:-101} k
	napped=$(sed -n 's/^napped //p' "$1")
	[ -n "$napped" ] || fail "the in-flight NAPS request got no answer"
	for k in 1 2 3 4 5 6 7; do
		[ "$napped" = $((k * first + (8 - k) * then)) ] && return 0
	done
	fail "NAPS 8 answered $napped: not $first each, then $then each"
}

# A thread out of slow_op only for microseconds between calls: no stop finds
# it out (the previous engine gave up after its timeout), so a stop-world
# apply catches it as it returns, stopped on its way out (src/live/exits.c).
# (By default it would be listed and switch by itself: test_transition.sh.)
test_busy_function_caught_as_it_returns() {
	build_slow_patch
	req "NAPS 8" >"$WORK/inflight" &
	local inflight=$! caught
	sleep 0.3
	"$OPUS" apply --stop-world --timeout 5 --json "$PID" "$WORK/slow.opatch" >"$WORK/apply.json"
	caught=$(sed -n 's/.*"exits_caught": \([0-9]*\).*/\1/p' "$WORK/apply.json")
	[ "${caught:-0}" -ge 1 ] || fail "no thread was caught leaving slow_op ($(cat "$WORK/apply.json"))"
	assert_eq "slept 100" "$(req 'SLEEP 0')" "a request after the apply"
	wait "$inflight" || true
	napped_mixed "$WORK/inflight"
	assert_running "$PID"
	# Revert catches it leaving the patch's own code, which has no CFI:
	# by the return address after the call to slow_op's old entry.
	req "NAPS 8" >"$WORK/inflight" &
	inflight=$!
	sleep 0.3
	"$OPUS" revert --stop-world --timeout 5 --json "$PID" >"$WORK/revert.json"
	caught=$(sed -n 's/.*"exits_caught": \([0-9]*\).*/\1/p' "$WORK/revert.json")
	[ "${caught:-0}" -ge 1 ] || fail "revert caught no thread ($(cat "$WORK/revert.json"))"
	assert_eq "slept 0" "$(req 'SLEEP 0')" "a request after the revert"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the revert"
	wait "$inflight" || true
	napped_mixed "$WORK/inflight" 101 1
	assert_running "$PID"
}

# A catch that fails or is killed at any of its steps leaves the target as
# it was: the thread sent to a stub still returns where it should, the
# request finishes, and recover (or the failed apply itself) takes every
# stub and the mapping out.
test_catch_fails_or_is_killed_at_every_step() {
	build_slow_patch
	local points n name status inflight
	req "NAPS 8" >"$WORK/inflight" &
	inflight=$!
	sleep 0.3
	points=$(OPUS_FAULT_LIST=1 "$OPUS" apply --stop-world --timeout 5 "$PID" "$WORK/slow.opatch" 2>&1 >/dev/null |
		sed -n 's/^opus fault point \([0-9]*\): \(.*exit.*\)$/\1:\2/p')
	wait "$inflight" || true
	"$OPUS" revert "$PID" >/dev/null
	[ "$(echo "$points" | grep -c .)" -ge 3 ] || fail "the catch passed no fault points: '$points'"
	while IFS=: read -r n name; do
		for action in fail kill; do
			req "NAPS 4" >"$WORK/inflight" &
			inflight=$!
			sleep 0.3
			status=0
			env OPUS_FAULT_ACTION=$action OPUS_FAULT_AT="$n" "$OPUS" apply --stop-world --timeout 5 "$PID" \
				"$WORK/slow.opatch" >/dev/null 2>"$WORK/err" || status=$?
			[ "$status" != 0 ] || fail "$action at '$name' ($n): the apply succeeded"
			[ "$action" = fail ] || [ "$status" = 137 ] || fail "$action at '$name': status $status"
			assert_running "$PID"
			wait "$inflight" || true
			assert_eq "napped 4" "$(cat "$WORK/inflight")" "NAPS 4 with a $action at '$name'"
			"$OPUS" recover "$PID" >/dev/null || fail "recover after a $action at '$name'"
			assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after a $action at '$name'"
			assert_eq "slept 0" "$(req 'SLEEP 0')" "old code after a $action at '$name'"
		done
	done <<<"$points"
	"$OPUS" apply --timeout 5 "$PID" "$WORK/slow.opatch" >/dev/null
	assert_eq "slept 100" "$(req 'SLEEP 0')" "the apply after all that"
	# The same for revert, whose stubs are in the patch that stays.
	req "NAPS 8" >"$WORK/inflight" &
	inflight=$!
	sleep 0.3
	points=$(OPUS_FAULT_LIST=1 "$OPUS" revert --stop-world --timeout 5 "$PID" 2>&1 >/dev/null |
		sed -n 's/^opus fault point \([0-9]*\): \(.*exit.*\)$/\1:\2/p')
	wait "$inflight" || true
	"$OPUS" apply "$PID" "$WORK/slow.opatch" >/dev/null
	[ "$(echo "$points" | grep -c .)" -ge 3 ] || fail "the revert's catch passed no fault points"
	while IFS=: read -r n name; do
		for action in fail kill; do
			req "NAPS 4" >"$WORK/inflight" &
			inflight=$!
			sleep 0.3
			env OPUS_FAULT_ACTION=$action OPUS_FAULT_AT="$n" "$OPUS" revert --stop-world --timeout 5 "$PID" \
				>/dev/null 2>&1 && fail "$action at '$name' ($n): the revert succeeded"
			assert_running "$PID"
			wait "$inflight" || true
			assert_eq "napped 404" "$(cat "$WORK/inflight")" "NAPS 4 with a revert's $action at '$name'"
			assert_eq "slept 100" "$(req 'SLEEP 0')" "still patched after a $action at '$name'"
		done
	done <<<"$points"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq "slept 0" "$(req 'SLEEP 0')" "the revert after all that"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the revert"
	assert_running "$PID"
}

# FIELD: field N of process PID's stat (3: its state; 41: the scheduling
# policy of its main thread, 0 SCHED_OTHER, 1 SCHED_FIFO, 5 SCHED_IDLE).
# Read by builtins into a variable, no fork: a forked reader is one more
# thread that wants a CPU, where opus counts them to choose the background.
stat_field() {
	local stat
	read -r stat <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	# Split after the two arguments: positional K is then field K.
	# shellcheck disable=SC2086
	set -- "$1" "$2" $stat
	FIELD=${*:$2:1}
}

# opus works in the background (SCHED_IDLE, src/live/boost.h) until it
# holds a thread, and no longer than its watchdog allows. A first apply
# stalls inside its stop, every thread held: it runs at its own priority
# (SCHED_OTHER, or real-time where the CPUs look busy), never idle. A
# revert started meanwhile waits for the first one's lock in the
# background (SCHED_IDLE), until its watchdog brings it back after
# OPUS_BACKGROUND_MS while it still waits, holding nothing. Then both
# finish: patched, reverted, the target's threads still counting.
test_opus_waits_in_the_background_and_holds_threads_at_its_own_priority() {
	local S=$TARGETS/spinners first second seen=""
	build_target spinners "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$S/answer-2.diff" --binary "$WORK/src/spinners" \
		--id answer-2 -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/spinners" 1 sleeping
	OPUS_FAULT_AT="stopping every thread" OPUS_FAULT_ACTION=stall:4000 \
		"$OPUS" apply --json "$PID" "$WORK/fix.opatch" >"$WORK/apply.json" 2>&1 &
	first=$!
	for _ in $(seq 400); do
		stat_field "$PID" 3 && [ "$FIELD" = t ] && break
		sleep 0.01
	done
	stat_field "$PID" 3
	assert_eq t "$FIELD" "the target, stopped"
	stat_field "$first" 41
	[ "$FIELD" = 0 ] || [ "$FIELD" = 1 ] || fail "opus held the threads with policy $FIELD"
	OPUS_BACKGROUND_MS=1000 "$OPUS" revert --timeout 30 "$PID" >"$WORK/revert.out" 2>&1 &
	second=$!
	# Its policy, each time it changes, until it is back from the
	# background while the first one still holds the lock.
	while kill -0 "$first" 2>/dev/null && stat_field "$second" 41; do
		[ "$FIELD" = "${seen##* }" ] || seen="$seen $FIELD"
		[[ "$seen" == *" 5 0" ]] && break
	done
	# (0 first if it was read before its first transaction began)
	[[ "$seen" == " 5 0" || "$seen" == " 0 5 0" ]] ||
		fail "the waiting opus's policies, in turn:$seen (5 then 0 expected)"
	kill -0 "$first" 2>/dev/null || fail "the first opus ended before the second came back"
	wait "$first" || fail "apply: $(cat "$WORK/apply.json")"
	assert_eq true "$(jq '.stats.background_ms > 0 and
		.stats.background_ms < .stats.total_ms' "$WORK/apply.json")" \
		"the apply's time in the background: $(jq .stats.background_ms "$WORK/apply.json") ms"
	wait "$second" || fail "revert: $(cat "$WORK/revert.out")"
	assert_eq 1 "$(req ANSWER)" "patched, then reverted by the opus that waited"
	counter_advances COUNT 0.1 "the sleeping threads"
	assert_running "$PID"
}

# 100 threads spinning on this machine's CPUs: opus runs real-time while it
# holds the process (src/live/boost.h), and says so; the daemon, which
# lives on, is back to the normal policy after each patch; the target is
# patched and reverted, its threads spinning throughout.
test_realtime_beside_threads_that_oversubscribe_the_cpus() {
	local S=$TARGETS/spinners
	build_target spinners "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$S/answer-2.diff" --binary "$WORK/src/spinners" \
		--id answer-2 -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/spinners" 100
	"$OPUS" apply --json "$PID" "$WORK/fix.opatch" >"$WORK/apply.json"
	assert_eq true "$(jq .stats.realtime "$WORK/apply.json")" "opus real-time beside 100 spinners"
	assert_eq 2 "$(req ANSWER)" "patched"
	counter_advances COUNT 0.1 "the spinning threads"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq 1 "$(req ANSWER)" "reverted"
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	start_daemon "$WORK/store"
	wait_log "patched $PID (spinners) with answer-2"
	assert_eq 2 "$(req ANSWER)" "patched by the daemon"
	# Field 41 of /proc/PID/stat is the scheduling policy: 0, SCHED_OTHER.
	assert_eq 0 "$(awk '{sub(/.*\) /, ""); print $(41 - 2)}' "/proc/$DAEMON_PID/stat")" \
		"the daemon's policy after the patch"
	assert_running "$PID"
	stop_daemon
}

# More threads than opus may open files: each thread's children file is
# held open only up to a quarter of the limit, the rest read by path.
# Holding one for every thread ran out of descriptors: with 1101 threads
# and a limit of 1024 the revert failed ("Too many open files").
test_more_threads_than_opus_may_open_files() {
	local S=$TARGETS/spinners
	build_target spinners "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$S/answer-2.diff" --binary "$WORK/src/spinners" \
		--id answer-2 -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/spinners" 400 sleeping
	(ulimit -n 200 && "$OPUS" apply "$PID" "$WORK/fix.opatch") >/dev/null ||
		fail "apply with 401 threads and 200 descriptors"
	assert_eq 2 "$(req ANSWER)" "patched"
	(ulimit -n 200 && "$OPUS" revert "$PID") >/dev/null ||
		fail "revert with 401 threads and 200 descriptors"
	assert_eq 1 "$(req ANSWER)" "reverted"
	counter_advances COUNT 0.1 "the sleeping threads"
	assert_running "$PID"
}

# 40 threads that sleep: with a CPU free, opus goes real-time for the stop
# of every thread of a process with many (src/live/boost.h), patches and
# reverts it; the threads go on waking and counting.
test_realtime_to_stop_many_sleeping_threads() {
	local S=$TARGETS/spinners
	build_target spinners "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$S/answer-2.diff" --binary "$WORK/src/spinners" \
		--id answer-2 -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/spinners" 40 sleeping
	"$OPUS" apply --json "$PID" "$WORK/fix.opatch" >"$WORK/apply.json"
	assert_eq true "$(jq .stats.realtime "$WORK/apply.json")" "opus real-time to stop 41 threads"
	assert_eq 41 "$(jq .stats.threads "$WORK/apply.json")" "threads stopped"
	# Some thread was held from its stop to its release, within the apply.
	assert_eq true "$(jq '.stats.longest_hold_us > 0 and
		.stats.longest_hold_us < .stats.total_ms * 1000' "$WORK/apply.json")" \
		"longest hold of one thread: $(jq .stats.longest_hold_us "$WORK/apply.json") us"
	assert_eq 2 "$(req ANSWER)" "patched"
	counter_advances COUNT 0.1 "the sleeping threads"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq 1 "$(req ANSWER)" "reverted"
	assert_running "$PID"
}
