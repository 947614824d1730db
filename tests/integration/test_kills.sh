# opus SIGKILLed at random moments of apply and revert, on a target with
# 100 threads spinning on both CPUs: the target must never be harmed, and
# opus recover must leave it exactly patched or exactly unpatched.
# OPUS_KILLS (default 5) kills of each; make soak runs 100.
S=$TARGETS/spinners

# spinners_state: "patched" or "unpatched", checked three ways: the answer
# of the patched function, the mappings, opus list.
spinners_state() {
	local answer mapped
	answer=$(req ANSWER)
	mapped=$(opus_mappings "$PID")
	case "$answer:$mapped" in
	1:0) echo unpatched ;;
	2:[1-9]*) "$OPUS" list "$PID" | grep answer-2 >/dev/null && echo patched || echo "listed wrong" ;;
	*) echo "inconsistent (answer '$answer', $mapped mappings)" ;;
	esac
}

# still_spinning: the spinning threads all run on.
still_spinning() {
	counter_advances COUNT 0.1 "the spinning threads"
	local tasks=("/proc/$PID/task/"*)
	assert_eq 100 $((${#tasks[@]} - 1)) "spinning threads"
}

# what_is_left: everything a failure needs to be understood: what the
# killed opus and the recover said, the opus-named mappings, opus list.
what_is_left() {
	echo "killed opus said:"
	cat "$WORK/killed.out"
	echo "recover said:"
	cat "$WORK/recover.out"
	echo "mappings:"
	grep memfd: "/proc/$PID/maps"
	echo "opus list:"
	OPUS_VERBOSE=1 "$OPUS" list "$PID" 2>&1
}

# kill_at_random KIND WINDOW_US: opus KIND, SIGKILLed at a random moment in
# the first WINDOW_US microseconds; prints "killed" or "finished".
kill_at_random() {
	local kind=$1 window=$2 delay op secs
	delay=$(((RANDOM * 32768 + RANDOM) % window))
	printf -v secs '%d.%06d' $((delay / 1000000)) $((delay % 1000000))
	if [ "$kind" = apply ]; then
		"$OPUS" apply --timeout 30 "$PID" "$WORK/fix.opatch" >"$WORK/killed.out" 2>&1 &
	else
		"$OPUS" revert --timeout 30 "$PID" >"$WORK/killed.out" 2>&1 &
	fi
	op=$!
	# bash's own timed read, not sleep(1): beside 100 busy threads a fork
	# and exec takes longer than most applies, and the kill came late.
	read -r -t "$secs" -u 9 || true
	kill -9 "$op" 2>/dev/null || true
	if wait "$op"; then echo finished; else echo killed; fi
}

random_kills() {
	local kind=$1 n=$2 window=$3 killed=0 state outcome
	# A FIFO open both ways never has data: a read on it only times out.
	[ -p "$WORK/never" ] || mkfifo "$WORK/never"
	exec 9<>"$WORK/never"
	for i in $(seq "$n"); do
		outcome=$(kill_at_random "$kind" "$window")
		[ "$outcome" = killed ] && killed=$((killed + 1))
		assert_running "$PID"
		still_spinning
		OPUS_VERBOSE=1 "$OPUS" recover "$PID" >"$WORK/recover.out" 2>&1 ||
			fail "$kind kill $i: recover failed: $(what_is_left)"
		state=$(spinners_state)
		case "$state" in
		patched) [ "$kind" = revert ] || "$OPUS" revert "$PID" >/dev/null ;;
		unpatched) [ "$kind" = apply ] || "$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null ;;
		*) fail "$kind kill $i: after recover the target is $state: $(what_is_left)" ;;
		esac
	done
	echo "    $kind: $n runs, $killed killed before the end, 0 targets harmed"
}

test_random_kills_on_a_busy_target() {
	local n=${OPUS_KILLS:-5} t0 apply_us revert_us
	build_target spinners "$WORK" -O2 -g -fPIE -pie
	# Built before the spinners start: beside them the build took 18 s.
	"$OPUS" build --source "$WORK/src" --diff "$S/answer-2.diff" --binary "$WORK/src/spinners" \
		--id answer-2 -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/src/spinners" 100
	# How long each takes here: kills land anywhere within that. Timed by
	# bash itself: beside 100 busy threads a date(1) takes longer to start
	# than opus takes to apply.
	t0=${EPOCHREALTIME/./}
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	apply_us=$((${EPOCHREALTIME/./} - t0))
	t0=${EPOCHREALTIME/./}
	"$OPUS" revert "$PID" >/dev/null
	revert_us=$((${EPOCHREALTIME/./} - t0))
	echo "    apply takes $apply_us us, revert $revert_us us"
	random_kills apply "$n" "$apply_us"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	random_kills revert "$n" "$revert_us"
	assert_running "$PID"
}
