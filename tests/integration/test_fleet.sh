# One patch, every process that maps the object: opus apply --all, revert
# --all and list without a pid, on libauth.so loaded by two programs.

# forked_child OUT PARENT: the pid of the first child authpoll reported in
# OUT (it prints "PID ANSWER" lines).
forked_child() {
	local child=""
	for _ in $(seq 100); do
		child=$(awk -v p="$2" '$1 != p {print $1}' "$1" | head -1)
		[ -n "$child" ] && break
		sleep 0.05
	done
	[ -n "$child" ] || fail "authpoll $2 did not fork"
	echo "$child"
}

test_apply_all_patches_every_program_that_maps_the_library() {
	fleet_setup
	start "$WORK/src/authd"
	start_poll "$WORK/poll.out" hun
	assert_eq OK "$(req 'AUTH admin ')" "authd: empty password before"
	assert_eq OK "$(wait_line "$WORK/poll.out" "$POLL_PID" OK)" "authpoll: prefix before"

	start_other_build hun
	local other=$OTHER_PID

	# Replaced on disk: the running processes still map the old file.
	rm "$WORK/src/libauth.so"

	local dry
	dry=$("$OPUS" apply --all --dry-run --json "$WORK/fix.opatch")
	assert_eq "$(printf '%s\n' "$PID" "$POLL_PID" | sort -n)" \
		"$(jq -r '.processes[] | select(.state == "would patch") | .pid' <<<"$dry" | sort -n)" \
		"dry run lists both programs, and only them"
	assert_eq 0 "$(opus_mappings "$PID")" "dry run changed nothing"
	assert_eq OK "$(req 'AUTH admin ')" "authd after the dry run"

	"$OPUS" apply --all "$WORK/fix.opatch" >"$WORK/apply.out"
	cat "$WORK/apply.out"
	assert_contains "2 patched" "$(tail -1 "$WORK/apply.out")" "summary"
	assert_eq DENIED "$(req 'AUTH admin ')" "authd: empty password after"
	assert_eq OK "$(req 'AUTH admin hunter2')" "authd: right password after"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$POLL_PID" DENIED)" "authpoll: prefix after"
	assert_eq OK "$(awk -v p="$other" '$1 == p {w = $2} END {print w}' "$WORK/other.out")" \
		"the other build still answers the old way"
	assert_eq 0 "$(opus_mappings "$other")" "the other build-id is untouched"
	assert_running "$PID"
	assert_running "$POLL_PID"

	local listed
	listed=$("$OPUS" list --json)
	assert_eq "$PATCH_ID" "$(jq -r ".processes[] | select(.pid == $PID) | .patches[0].id" <<<"$listed")" \
		"list without a pid shows authd"
	assert_eq "$PATCH_ID" \
		"$(jq -r ".processes[] | select(.pid == $POLL_PID) | .patches[0].id" <<<"$listed")" \
		"list without a pid shows authpoll"
	assert_contains "$PATCH_ID" "$("$OPUS" list | grep -w "$PID")" "text list"

	"$OPUS" apply --all "$WORK/fix.opatch" >"$WORK/again.out"
	assert_contains "2 already patched" "$(tail -1 "$WORK/again.out")" "second run"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "applied once"

	"$OPUS" revert --all "$PATCH_ID" >"$WORK/revert.out"
	assert_contains "2 reverted" "$(tail -1 "$WORK/revert.out")" "revert summary"
	assert_eq OK "$(req 'AUTH admin ')" "authd: old behaviour after revert"
	assert_eq OK "$(wait_line "$WORK/poll.out" "$POLL_PID" OK)" "authpoll after revert"
	assert_eq 0 "$(opus_mappings "$PID")" "no mapping left in authd"
	assert_eq 0 "$(opus_mappings "$POLL_PID")" "no mapping left in authpoll"
	assert_running "$PID"
	assert_running "$POLL_PID"
}

test_children_forked_after_the_patch_inherit_it() {
	fleet_setup
	start_poll "$WORK/poll.out" ""
	"$OPUS" apply --all "$WORK/fix.opatch" >/dev/null
	wait_line "$WORK/poll.out" "$POLL_PID" DENIED >/dev/null
	kill -USR1 "$POLL_PID"
	local child
	child=$(forked_child "$WORK/poll.out" "$POLL_PID")
	STARTED_PIDS="${STARTED_PIDS:-} $child"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$child" '*')" "the child runs the new code"
	assert_contains "$PATCH_ID" "$("$OPUS" list "$child")" "the child lists the patch"
	assert_contains "$PATCH_ID" "$("$OPUS" list | grep -w "$child")" "and so does list"

	# Each process reverts on its own; the child's copy goes with it.
	"$OPUS" revert --all "$PATCH_ID" >"$WORK/revert.out"
	assert_contains "2 reverted" "$(tail -1 "$WORK/revert.out")" "revert summary"
	assert_eq OK "$(wait_line "$WORK/poll.out" "$child" OK)" "child after revert"
	assert_eq OK "$(wait_line "$WORK/poll.out" "$POLL_PID" OK)" "parent after revert"
	assert_eq 0 "$(opus_mappings "$child")" "no mapping left in the child"
}

# A fleet of programs that share the library but not an executable (150
# copies of authpoll, each its own file): apply --all keeps only so many
# files open from one process to the next, so that opus, allowed 100
# descriptors here, does not run out of them half-way; every one is patched.
test_apply_all_over_programs_that_share_only_the_library() {
	fleet_setup
	local i p pids=() out=$WORK/many.out
	for i in $(seq 150); do
		cp "$WORK/src/authpoll" "$WORK/src/authpoll.$i"
		"$WORK/src/authpoll.$i" hun >>"$out" 2>&1 &
		pids+=($!)
		STARTED_PIDS="${STARTED_PIDS:-} $!"
	done
	for p in "${pids[@]}"; do
		assert_eq OK "$(wait_line "$out" "$p" OK)" "authpoll copy $p before"
	done
	(
		ulimit -n 100
		"$OPUS" apply --all --jobs 1 --json "$WORK/fix.opatch"
	) >"$WORK/apply.json" || fail "apply --all: $(jq -c '.processes[] | select(.state != "patched")' "$WORK/apply.json" | head -3)"
	assert_eq 150 "$(jq .summary.patched "$WORK/apply.json")" "every copy patched"
	for p in "${pids[@]}"; do
		assert_eq DENIED "$(wait_line "$out" "$p" DENIED)" "authpoll copy $p after"
		assert_running "$p"
	done
}

test_apply_all_with_no_process_and_bad_input() {
	fleet_setup
	local out
	out=$("$OPUS" apply --all "$WORK/fix.opatch")
	assert_contains "no process" "$out" "nothing maps the library"
	expect_fail "missing patch" "$OPUS" apply --all "$WORK/nope.opatch"
	assert_contains "nope.opatch" "$ERR" "names the file"
	expect_fail "revert of an id nobody has" "$OPUS" revert --all no-such-patch
	assert_contains "no process" "$("$OPUS" revert --all no-such-patch 2>&1 || true)" "message"
	expect_fail "--dry-run needs --all" "$OPUS" apply --dry-run 1 "$WORK/fix.opatch"
}

# A child forked while an apply waits (its function busy) inherits the
# patch's mapping and record but not the jumps: opus must see that the
# record is inactive, and a later apply must replace it, not skip it.
test_child_forked_during_an_apply_keeps_an_inert_record() {
	fleet_setup
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/libauth/linger-cap.diff" \
		--binary "$WORK/src/authpoll" --id linger -o "$WORK/linger.opatch" >/dev/null
	"$WORK/src/authpoll" "" 1500 >"$WORK/poll.out" 2>&1 &
	POLL_PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $POLL_PID"
	wait_line "$WORK/poll.out" "$POLL_PID" OK >/dev/null
	sleep 0.1 # now inside linger for 1.5 s
	# Stop-world: mapped, no jump written while linger runs (per thread,
	# the jumps would be in before the fork).
	"$OPUS" apply --stop-world --timeout 10 "$POLL_PID" "$WORK/linger.opatch" >"$WORK/apply.out" 2>&1 &
	local apply=$! child
	sleep 0.3 # mapped, waiting for linger to return
	grep -q '/memfd:opus-livepatch:linger' "/proc/$POLL_PID/maps" || fail "apply has not mapped the patch yet"
	kill -USR1 "$POLL_PID" # forks in the handler, on top of linger
	wait "$apply" || fail "apply: $(cat "$WORK/apply.out")"
	child=$(forked_child "$WORK/poll.out" "$POLL_PID")
	STARTED_PIDS="${STARTED_PIDS:-} $child"
	assert_eq true "$("$OPUS" list --json "$POLL_PID" | jq '.patches[0].active')" "parent active"
	# The child's inherited record has no jumps and no opus is applying it
	# there: not a patch in force, not opus's to take apart; said so.
	assert_eq 0 "$("$OPUS" list --json "$child" | jq '.patches | length')" "no patch in force"
	assert_contains "never written" "$("$OPUS" list --json "$child" | jq -r '.not_opus[0].why')" \
		"list says what it is"
	"$OPUS" apply "$child" "$WORK/linger.opatch" >/dev/null
	assert_eq true "$("$OPUS" list --json "$child" | jq '.patches[0].active')" "child patched now"
	"$OPUS" revert "$child" >/dev/null
	assert_eq 0 "$("$OPUS" list --json "$child" | jq '.patches | length')" "reverted"
	assert_contains "never written" "$("$OPUS" list --json "$child" | jq -r '.not_opus[0].why')" \
		"the inherited record left alone"
	assert_running "$child"
	assert_running "$POLL_PID"
}

# A process started while apply --all is busy with another one is picked up
# by the next round of the same run.
test_apply_all_picks_up_processes_started_during_the_run() {
	fleet_setup
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/libauth/linger-cap.diff" \
		--binary "$WORK/src/authpoll" --id linger -o "$WORK/linger.opatch" >/dev/null
	"$WORK/src/authpoll" "" 2000 >"$WORK/a.out" 2>&1 &
	local a=$! b
	STARTED_PIDS="${STARTED_PIDS:-} $a"
	wait_line "$WORK/a.out" "$a" OK >/dev/null
	# a stays inside linger() for 2 s: the first round waits for it.
	"$OPUS" apply --all --json --timeout 10 "$WORK/linger.opatch" >"$WORK/all.json" &
	local run=$!
	sleep 0.5
	"$WORK/src/authpoll" "" >"$WORK/b.out" 2>&1 &
	b=$!
	STARTED_PIDS="$STARTED_PIDS $b"
	wait "$run" || fail "apply --all: $(cat "$WORK/all.json")"
	assert_eq "$(printf '%s\n' "$a" "$b" | sort -n | xargs)" \
		"$(jq -r '.processes[] | select(.state == "patched") | .pid' "$WORK/all.json" | sort -n | xargs)" \
		"both the busy process and the one started during the run"
	assert_contains "linger" "$("$OPUS" list "$b")" "the late one lists the patch"
}
