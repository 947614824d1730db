# opus install + opus daemon: stored patches reach processes started later,
# through the netlink process connector or by polling /proc.

# daemon_patches_new_processes ARGS...: with the daemon started with ARGS,
# two programs started afterwards are patched, the other build is not.
daemon_patches_new_processes() {
	fleet_setup
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	start_daemon "$WORK/store" "$@"
	start_other_build ""
	start "$WORK/src/authd"
	start_poll "$WORK/poll.out" ""
	wait_log "patched $POLL_PID (authpoll) with $PATCH_ID"
	wait_log "patched $PID (authd) with $PATCH_ID"
	grep "ms after it appeared" "$WORK/daemon.log" | sed 's/^/    /'
	assert_eq DENIED "$(req 'AUTH admin ')" "authd started after the daemon"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$POLL_PID" DENIED)" "authpoll likewise"
	assert_contains "$PATCH_ID" "$("$OPUS" list "$POLL_PID")" "list"
	# By now the daemon has looked at the other build more than once.
	sleep 0.5
	assert_eq 0 "$(opus_mappings "$OTHER_PID")" "a different build-id is never patched"
	assert_eq OK "$(wait_line "$WORK/other.out" "$OTHER_PID" OK)" "other build's behaviour"
	assert_running "$PID"
	assert_running "$POLL_PID"
	stop_daemon
}

test_daemon_patches_processes_started_later() {
	daemon_patches_new_processes
	grep -q "netlink process connector" "$WORK/daemon.log" ||
		echo "    (netlink unavailable here: $(head -1 "$WORK/daemon.log"))"
}

test_daemon_polling_fallback() {
	daemon_patches_new_processes --no-netlink --poll-ms 20
	assert_contains "polling /proc" "$(head -1 "$WORK/daemon.log")" "the daemon says it polls"
}

# Running processes are patched when the daemon starts and when a patch is
# installed; uninstall --revert takes it out and the daemon leaves it out.
test_daemon_follows_the_store() {
	fleet_setup
	start_poll "$WORK/poll.out" ""
	start_daemon "$WORK/store"
	assert_eq OK "$(wait_line "$WORK/poll.out" "$POLL_PID" OK)" "nothing installed yet"
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	assert_contains "$PATCH_ID" "$("$OPUS" list --installed --store "$WORK/store")" "installed"
	expect_fail "installing twice" "$OPUS" install --store "$WORK/store" "$WORK/fix.opatch"
	assert_contains "already installed" "$ERR" "message"
	wait_log "patched $POLL_PID (authpoll) with $PATCH_ID"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$POLL_PID" DENIED)" "patched by the sweep"

	"$OPUS" uninstall --store "$WORK/store" --revert "$PATCH_ID" >"$WORK/uninstall.out"
	assert_contains "1 reverted" "$(tail -1 "$WORK/uninstall.out")" "uninstall --revert"
	assert_eq OK "$(wait_line "$WORK/poll.out" "$POLL_PID" OK)" "reverted"
	local late
	start_poll "$WORK/late.out" ""
	late=$POLL_PID
	sleep 0.5
	assert_eq 0 "$(opus_mappings "$late")" "an uninstalled patch is not applied to new processes"
	assert_contains "no patches installed" "$("$OPUS" list --installed --store "$WORK/store")" \
		"store empty"
	expect_fail "uninstalling twice" "$OPUS" uninstall --store "$WORK/store" "$PATCH_ID"
	assert_contains "not installed" "$ERR" "message"
	stop_daemon
}

# Processes that exit at any moment, some while being patched, must not
# take the daemon down.
test_daemon_survives_processes_that_exit() {
	fleet_setup
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	start_daemon "$WORK/store"
	local i
	for i in $(seq 40); do
		"$WORK/src/authpoll" "" >/dev/null 2>&1 &
		local p=$!
		sleep "0.00$((i % 10))"
		kill -9 "$p" 2>/dev/null || true
	done
	kill -0 "$DAEMON_PID" || fail "the daemon died: $(tail -5 "$WORK/daemon.log")"
	start_poll "$WORK/poll.out" ""
	wait_log "patched $POLL_PID (authpoll) with $PATCH_ID"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$POLL_PID" DENIED)" "still patching"
	stop_daemon
}

test_daemon_refuses_bad_store_files() {
	fleet_setup
	mkdir -p "$WORK/store"
	head -c 300 "$WORK/fix.opatch" >"$WORK/store/000001-broken.opatch"
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	expect_fail "install of a truncated file" "$OPUS" install --store "$WORK/store" \
		"$WORK/store/000001-broken.opatch"
	assert_contains "000001-broken.opatch" "$ERR" "names the file"
	start_daemon "$WORK/store"
	assert_contains "skipping $WORK/store/000001-broken.opatch" "$(cat "$WORK/daemon.log")" \
		"the daemon says what it skips"
	start_poll "$WORK/poll.out" ""
	wait_log "patched $POLL_PID (authpoll) with $PATCH_ID"
	stop_daemon
}

# The shipped unit: systemd accepts it, and its ExecStart patches new
# processes with no more than the capabilities the unit leaves it.
test_daemon_systemd_unit() {
	fleet_setup
	sed "s#@BINDIR@#$(dirname "$OPUS")#" "$ROOT/contrib/systemd/opus.service.in" >"$WORK/opus.service"
	systemd-analyze verify "$WORK/opus.service" || fail "systemd-analyze rejects the unit"
	local exec caps
	exec=$(sed -n 's/^ExecStart=//p' "$WORK/opus.service")
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$WORK/opus.service" |
		tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
	[ -n "$caps" ] || fail "the unit sets no capability bounding set"
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	# shellcheck disable=SC2086
	setpriv --bounding-set "-all,$caps" $exec --store "$WORK/store" >"$WORK/daemon.log" 2>&1 &
	DAEMON_PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $DAEMON_PID"
	wait_log "store $WORK/store"
	start_poll "$WORK/poll.out" ""
	wait_log "patched $POLL_PID (authpoll) with $PATCH_ID"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$POLL_PID" DENIED)" "patched"
	stop_daemon
}

# --max-pause: a process the daemon cannot patch within it (coro with 512
# MB of heap, scanned as it imports makecontext: about 90 ms here) is left
# as it was, said once and not tried again at each sweep; a small one next
# to it (0.3 MB scanned, about 1 ms) is patched. The limit, 20 ms, leaves
# both sides room on a loaded machine: at 5 ms, CI once saw the small one
# take 5.5 ms and be given up on too.
test_daemon_gives_up_on_a_process_it_cannot_patch_within_max_pause() {
	local big big_port small small_port
	build_target coro "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/coro/step-3.diff" \
		--binary "$WORK/src/coro" -o "$WORK/step.opatch" >/dev/null
	mkdir -p "$WORK/store"
	"$OPUS" install --store "$WORK/store" "$WORK/step.opatch" >/dev/null
	start "$WORK/src/coro" 512
	big=$PID big_port=$PORT
	assert_eq finished "$(req FINISH)" "the big one's coroutine leaves step"
	start "$WORK/src/coro" 0
	small=$PID small_port=$PORT
	assert_eq finished "$(req FINISH)" "the small one's coroutine leaves step"
	start_daemon "$WORK/store" --max-pause 20 --sweep-ms 100
	wait_log "patched $small (coro) with step"
	wait_log "gave up on $big (coro) for step"
	sleep 1 # ten sweeps
	assert_eq 1 "$(grep -c "past --max-pause 20 ms" "$WORK/daemon.log")" \
		"said once, not tried at every sweep"
	assert_eq 0 "$(opus_mappings "$big")" "nothing left in the big one"
	PORT=$big_port
	assert_eq restarted "$(req RESTART)" "a new coroutine in the big one"
	assert_eq 3 "$(req RESUME)" "its old step runs (2 * 1 + 1)"
	PORT=$small_port
	assert_eq restarted "$(req RESTART)" "a new coroutine in the small one"
	assert_eq 5 "$(req RESUME)" "its new step runs (2 * 1 + 3)"
	stop_daemon
	assert_running "$big"
	assert_running "$small"
}

# store_fix TARGET DIFF ID: TARGET built in $WORK (-O2 -g), its fix DIFF
# built with id ID and installed into $WORK/store.
store_fix() {
	build_target "$1" "$WORK" -O2 -g
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/$1/$2.diff" \
		--binary "$WORK/src/$1" --id "$3" -o "$WORK/fix.opatch" >/dev/null
	mkdir -p "$WORK/store"
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
}

# The daemon outlives its applies. A thread that still waits for its vfork
# child when the daemon gives up on a try keeps the interrupt opus sent it;
# the daemon's thread that made the try exits, and the kernel drops that
# interrupt, rather than leave the thread stopped once its child is done.
test_daemon_lets_a_thread_waiting_for_its_vfork_child_go() {
	store_fix vforker value-2000 vfix
	start "$WORK/src/vforker"
	vfork_child
	start_daemon "$WORK/store" --timeout 0.5 --sweep-ms 100
	sleep 1.5
	grep -q "patched $PID" "$WORK/daemon.log" && fail "patched while a thread waited for its vfork child"
	case "$(last_tick_value)" in 100?) ;; *) fail "value changed: $(last_tick_value)" ;; esac
	kill "$CHILD"
	wait_line "$START_OUT" reaped "$CHILD" >/dev/null
	wait_log "patched $PID (vforker) with vfix"
	sleep 0.2
	case "$(last_tick_value)" in 200?) ;; *) fail "not patched: $(last_tick_value)" ;; esac
	assert_no_thread_traced "$PID"
	stop_daemon
	assert_running "$PID"
}

# A thread no stop reaches (a kernel copy into a userfaultfd page whose
# handler answers only when told) fails the daemon's try at its process.
# The daemon cannot let that thread go, and does not wait for it: it goes
# on patching processes started later, leaves no thread of the first one
# traced or held, and patches it at the next sweep once its read is done.
test_daemon_goes_on_past_a_thread_no_stop_reaches() {
	local stuck stuck_out stuck_go
	store_fix uffd value-2000 ufix
	start "$WORK/src/uffd"
	stuck=$PID stuck_out=$START_OUT stuck_go=$PORT
	uffd_waits_for_its_fault
	# One sweep, at the start: no later one tries the stuck process
	# again (and traces it) until SIGHUP asks.
	start_daemon "$WORK/store" --timeout 0.5 --sweep-ms 600000
	wait_log "$stuck (uffd)"
	assert_contains "does not stop" "$(grep "$stuck (uffd)" "$WORK/daemon.log")" "says why"
	# A process started now, its fault answered at once.
	start "$WORK/src/uffd"
	printf x >"/proc/$PID/fd/$PORT"
	wait_log "patched $PID (uffd) with ufix"
	tick_value_becomes 2 "the later process runs the fix"
	# The first one: not traced, not held, still unpatched.
	assert_no_thread_traced "$stuck"
	START_OUT=$stuck_out
	local before
	before=$(grep -c '^tick' "$START_OUT")
	sleep 0.5
	[ $(($(grep -c '^tick' "$START_OUT") - before)) -ge 10 ] || fail "$stuck does not tick"
	case "$(last_tick_value)" in 100?) ;; *) fail "$stuck changed: $(last_tick_value)" ;; esac
	printf x >"/proc/$stuck/fd/$stuck_go"
	wait_line "$START_OUT" read "$(wc -c </etc/hostname)" >/dev/null
	kill -HUP "$DAEMON_PID"
	wait_log "patched $stuck (uffd) with ufix"
	tick_value_becomes 2 "the first process runs the fix once its read is done"
	stop_daemon
	assert_running "$stuck"
	assert_running "$PID"
}

# daemon_try_killed_at N: a daemon started with the authsrv fix in its
# store, SIGKILLed at fault point N of its threads (each try counts its
# own). Returns 1 if it patched the process without reaching point N.
daemon_try_killed_at() {
	local status=0
	env OPUS_FAULT_ACTION=kill OPUS_FAULT_AT="$1" "$OPUS" daemon --store "$WORK/store" \
		--sweep-ms 600000 >"$WORK/daemon.log" 2>&1 &
	DAEMON_PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $DAEMON_PID"
	for _ in $(seq 200); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		grep -q "patched $PID" "$WORK/daemon.log" && break
		sleep 0.05
	done
	if grep -q "patched $PID" "$WORK/daemon.log"; then
		stop_daemon
		return 1
	fi
	# Neither: a wait for it would last until the suite's timeout.
	kill -0 "$DAEMON_PID" 2>/dev/null &&
		fail "the daemon neither patched $PID nor was killed at point $1 in 10 s: $(tail -2 "$WORK/daemon.log")"
	wait "$DAEMON_PID" || status=$?
	assert_eq 137 "$status" "the daemon killed at point $1 ($(tail -2 "$WORK/daemon.log"))"
}

# The daemon is opus too, and a service manager may kill it at any moment.
# Killed at each fault point of its try at a process, it leaves that
# process running, untraced, answering either as before or as patched
# (killed after the jumps were written), and the daemon started after it
# leaves the process patched once, as one try would have.
test_daemon_killed_at_every_step_of_a_try() {
	local i answer patched_maps
	start_authsrv_with_fix
	mkdir -p "$WORK/store"
	"$OPUS" install --store "$WORK/store" "$WORK/fix.opatch" >/dev/null
	start_daemon "$WORK/store" --sweep-ms 600000
	wait_log "patched $PID"
	stop_daemon
	patched_maps=$(opus_mappings "$PID")
	"$OPUS" revert "$PID" >/dev/null
	for i in $(seq 100); do
		daemon_try_killed_at "$i" || break
		assert_running "$PID"
		assert_no_thread_traced "$PID"
		answer=$(req 'AUTH admin ')
		case "$answer" in OK | DENIED) ;; *) fail "killed at $i: the target answers '$answer'" ;; esac
		start_daemon "$WORK/store" --sweep-ms 600000
		for _ in $(seq 100); do
			[ "$(req 'AUTH admin ')" = DENIED ] && break
			sleep 0.05
		done
		assert_eq DENIED "$(req 'AUTH admin ')" "killed at $i, then a new daemon: the fix runs"
		assert_eq 1 "$("$OPUS" list --json "$PID" | jq '.patches | length')" "killed at $i: one patch"
		assert_eq "$patched_maps" "$(opus_mappings "$PID")" "killed at $i: the mappings of one apply"
		stop_daemon
		"$OPUS" revert "$PID" >/dev/null
		assert_eq OK "$(req 'AUTH admin ')" "killed at $i: reverted"
		assert_eq 0 "$(opus_mappings "$PID")" "killed at $i: no mapping after the revert"
	done
	[ "$i" -gt 5 ] || fail "the daemon's try passed only $((i - 1)) fault points"
	echo "    killed at each of $((i - 1)) points"
	assert_running "$PID"
}
