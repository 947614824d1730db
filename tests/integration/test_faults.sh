# Fault injection: apply and revert fail at each step in turn (OPUS_FAULT_AT,
# src/util/fault.h); every time the target ends running and exactly as it
# was: unpatched after a failed apply, patched after a failed revert.

faults_setup() {
	start_authsrv_with_fix
	# Warm the request threads' stacks so that the map settles.
	for _ in 1 2 3; do req 'AUTH admin hunter2' >/dev/null; done
	MASKS=$(masks)
	assert_contains "SigBlk:	0000000008000800" "$MASKS" "the main thread's own signal mask"
}

# Every thread's blocked signals: a killed opus must leave them as they were.
masks() {
	grep -H SigBlk /proc/"$PID"/task/*/status | sed 's#.*/task/##'
}

# masks_changed BEFORE: the threads that were there before and still are
# whose blocked signals differ now (request threads come and go: only the
# ones in both lists count), and the main thread if it is missing from now.
masks_changed() {
	masks | awk -v before="$1" -v main="$PID" '
		BEGIN { n = split(before, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, "/"); was[f[1]] = l[i] } }
		{ split($0, f, "/"); seen[f[1]] = 1; if (f[1] in was && was[f[1]] != $0) print "now " $0 ", was " was[f[1]] }
		END { if (!(main in seen)) print "main thread " main " gone" }'
}

# state_is unpatched|patched WHAT: exactly that state.
state_is() {
	local want=$1 what=$2 answer=OK mappings=0
	[ "$want" = patched ] && answer=DENIED mappings=$BASE_MAPPINGS_PATCHED
	assert_running "$PID"
	assert_eq "$mappings" "$(opus_mappings "$PID")" "$what: opus mappings"
	assert_eq 0 "$(ls -l "/proc/$PID/fd" | grep -c 'memfd:opus-livepatch' || true)" "$what: stray memfd"
	assert_eq "$answer" "$(req 'AUTH admin ')" "$what: behaviour"
}

# points CMD...: how many fault points the command passes.
points() {
	OPUS_FAULT_LIST=1 "$@" 2>&1 >/dev/null | grep -c '^opus fault point'
}

# op apply|revert [VAR=VALUE...]: that opus command on the target, with
# the given environment.
op() {
	local kind=$1
	shift
	if [ "$kind" = apply ]; then
		env "$@" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	else
		env "$@" "$OPUS" revert "$PID"
	fi
}

# fault_cycle KIND N OLD NEW: runs apply or revert with fault N; a
# failure must leave OLD exactly, a success (the fault came after the last
# step that matters) NEW exactly. Puts the target back in OLD afterwards.
fault_cycle() {
	local kind=$1 i=$2 old=$3 new=$4
	if ERR=$(op "$kind" OPUS_FAULT_AT="$i" 2>&1 >/dev/null); then
		state_is "$new" "$kind fault $i (succeeded)"
		if [ "$kind" = apply ]; then op revert >/dev/null; else op apply >/dev/null; fi
	else
		assert_contains "injected fault $i" "$ERR" "$kind fault $i"
		state_is "$old" "after $kind fault $i"
	fi
}

test_apply_and_revert_fail_cleanly_at_every_step() {
	faults_setup
	local n i
	n=$(points "$OPUS" apply "$PID" "$WORK/fix.opatch")
	BASE_MAPPINGS_PATCHED=$(opus_mappings "$PID")
	"$OPUS" revert "$PID" >/dev/null
	[ "$n" -ge 8 ] || fail "only $n fault points in apply"
	echo "    apply passes $n fault points"
	for i in $(seq "$n"); do
		fault_cycle apply "$i" unpatched patched
	done
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	n=$(points "$OPUS" revert "$PID")
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	echo "    revert passes $n fault points"
	for i in $(seq "$n"); do
		fault_cycle revert "$i" patched unpatched
	done
}

# kill_cycle KIND N: SIGKILLs opus at fault point N of apply or revert;
# the target must run on, and opus recover must leave it exactly unpatched
# or exactly patched (the kill came after the last jump). Puts it back to
# unpatched (apply) or patched (revert) afterwards.
kill_cycle() {
	local kind=$1 i=$2 status=0 answer
	op "$kind" OPUS_FAULT_ACTION=kill OPUS_FAULT_AT="$i" >/dev/null 2>&1 || status=$?
	[ "$status" = 137 ] || fail "$kind: opus was not killed at point $i (status $status)"
	assert_running "$PID"
	assert_eq "" "$(masks_changed "$MASKS")" "$kind kill $i: signal masks"
	answer=$(req 'AUTH admin ')
	case "$answer" in OK | DENIED) ;; *) fail "$kind kill $i: target answers '$answer'" ;; esac
	"$OPUS" recover "$PID" >"$WORK/recover.out" || fail "recover after $kind kill $i"
	if [ "$(opus_mappings "$PID")" = 0 ]; then
		state_is unpatched "recovered after $kind kill $i"
		[ "$kind" = apply ] || op apply >/dev/null
	else
		state_is patched "recovered after $kind kill $i"
		[ "$kind" = revert ] || op revert >/dev/null
	fi
}

test_opus_killed_at_every_step_then_recover() {
	faults_setup
	local n i
	n=$(points "$OPUS" apply "$PID" "$WORK/fix.opatch")
	BASE_MAPPINGS_PATCHED=$(opus_mappings "$PID")
	"$OPUS" revert "$PID" >/dev/null
	for i in $(seq "$n"); do
		kill_cycle apply "$i"
	done
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	n=$(points "$OPUS" revert "$PID")
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	for i in $(seq "$n"); do
		kill_cycle revert "$i"
	done
	assert_contains "nothing to recover" "$("$OPUS" recover "$PID")" "a clean process"
	# Without opus recover: the next apply takes the unfinished one out itself.
	"$OPUS" revert "$PID" >/dev/null
	env OPUS_FAULT_ACTION=kill OPUS_FAULT_AT=$((n / 2 + 2)) "$OPUS" apply "$PID" \
		"$WORK/fix.opatch" >/dev/null 2>&1 || true
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	state_is patched "the next apply after a kill"
}
