# Helpers for the integration tests: build a target tree with a compile
# database, run it, talk to it, and assert what a user would check.
# Sourced by tests/run.sh; every test runs in a subshell with set -e.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
TARGETS=$ROOT/tests/targets

fail() {
	echo "    FAIL: $*" >&2
	exit 1
}

# build_target NAME DIR CFLAGS...: copy tests/targets/NAME to DIR/src, write
# its compile_commands.json, compile each .c and link DIR/src/NAME.
build_target() {
	local name=$1 dir=$2
	shift 2
	mkdir -p "$dir/src"
	cp "$TARGETS/$name"/*.[ch] "$dir/src/"
	local entries="" c args a objs=()
	for c in "$dir/src"/*.c; do
		c=$(basename "$c")
		args=""
		for a in gcc "$@" -pthread -c "$c" -o "${c%.c}.o"; do
			args="$args${args:+, }\"$a\""
		done
		entries="$entries${entries:+,
}{\"directory\": \"$dir/src\", \"file\": \"$c\", \"arguments\": [$args]}"
		(cd "$dir/src" && gcc "$@" -pthread -c "$c" -o "${c%.c}.o")
		objs+=("${c%.c}.o")
	done
	printf '[%s]\n' "$entries" >"$dir/src/compile_commands.json"
	(cd "$dir/src" && gcc "$@" -pthread "${objs[@]}" -o "$name")
}

# build_kinds DIR MODE FLAGS...: tests/targets/kinds built in DIR/src (its
# sources copied there unless DIR/src has them already, e.g. with a fix
# applied), MODE pie, nopie (executable + libkinds.so) or static (lib.c
# linked in), with its compile database.
build_kinds() {
	local dir=$1 mode=$2 exe lib entries="" c flags
	shift 2
	mkdir -p "$dir/src"
	[ -e "$dir/src/kinds.h" ] || cp "$TARGETS/kinds"/*.[ch] "$dir/src/"
	case $mode in
	pie) exe="-fPIE" ;;
	nopie) exe="-fno-pie" ;;
	static) exe="-fno-pie" ;;
	esac
	for c in main.c data.c tls.c lib.c; do
		flags="$* $exe"
		[ "$c" = data.c ] && flags="$flags -fcommon"
		[ "$c" = lib.c ] && [ "$mode" != static ] && flags="$* -fPIC"
		entries="$entries${entries:+,}{\"directory\": \"$dir/src\", \"file\": \"$c\", \"arguments\": [$(printf '"%s", ' gcc $flags)\"-c\", \"$c\", \"-o\", \"${c%.c}.o\"]}"
		# shellcheck disable=SC2086
		(cd "$dir/src" && gcc $flags -c "$c" -o "${c%.c}.o")
	done
	printf '[%s]\n' "$entries" >"$dir/src/compile_commands.json"
	case $mode in
	pie) lib=-pie ;;
	nopie) lib=-no-pie ;;
	static) lib=-static ;;
	esac
	cd "$dir/src"
	if [ "$mode" = static ]; then
		gcc "$@" $lib main.o data.o tls.o lib.o -pthread -o kinds
	else
		gcc "$@" -shared lib.o -o libkinds.so
		gcc "$@" $lib main.o data.o tls.o -L. -lkinds -Wl,-rpath,"$dir/src" -pthread -o kinds
	fi
	cd - >/dev/null
}

# build_libauth DIR EXE-FLAGS...: libauth.so (-fPIC, plus $LIB_CFLAGS) and
# the two programs that load it, authd and authpoll, linked with EXE-FLAGS.
build_libauth() {
	local dir=$1 lib_flags="-O2 -g -fPIC ${LIB_CFLAGS:-}"
	shift
	mkdir -p "$dir/src"
	cp "$TARGETS/libauth"/*.[ch] "$dir/src/"
	cat >"$dir/src/compile_commands.json" <<JSON
[{"directory": "$dir/src", "file": "auth.c",
  "arguments": [$(printf '"%s", ' gcc $lib_flags)"-c", "auth.c", "-o", "auth.o"]},
 {"directory": "$dir/src", "file": "authd.c",
  "arguments": ["gcc", "-O2", "-g", $(printf '"%s", ' "$@")"-c", "authd.c", "-o", "authd.o"]},
 {"directory": "$dir/src", "file": "authpoll.c",
  "arguments": ["gcc", "-O2", "-g", $(printf '"%s", ' "$@")"-c", "authpoll.c", "-o", "authpoll.o"]}]
JSON
	(cd "$dir/src" &&
		gcc $lib_flags -c auth.c -o auth.o &&
		gcc -shared -Wl,-soname,libauth.so auth.o -o libauth.so &&
		for p in authd authpoll; do
			gcc -O2 -g "$@" -c $p.c -o $p.o &&
				gcc "$@" $p.o -L. -lauth -Wl,-rpath,"$dir/src" -o $p || exit 1
		done)
}

# fleet_setup: libauth.so with auth_check and its static helper compare as
# two functions (not inlined), both fixed by fix-check.diff; the patch is
# built into $WORK/fix.opatch.
fleet_setup() {
	LIB_CFLAGS=-fno-inline build_libauth "$WORK" -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/libauth/fix-check.diff" \
		--binary "$WORK/src/libauth.so" -o "$WORK/fix.opatch" >"$WORK/build.out"
	assert_contains "replaced auth_check" "$(cat "$WORK/build.out")" "build report"
	assert_contains "replaced compare" "$(cat "$WORK/build.out")" "build report"
	PATCH_ID=$("$OPUS" inspect --json "$WORK/fix.opatch" | jq -r .id)
}

# start_poll OUT PASS: authpoll in the background; sets POLL_PID.
start_poll() {
	"$WORK/src/authpoll" "$2" >"$1" 2>&1 &
	POLL_PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $POLL_PID"
	wait_line "$1" "$POLL_PID" '[A-Z]*' >/dev/null
}

# wait_line FILE PID WORD: waits until FILE's last line for PID is
# "PID WORD" (a pattern), prints that word.
wait_line() {
	local last=""
	for _ in $(seq 200); do
		last=$(awk -v p="$2" '$1 == p {w = $2} END {print w}' "$1")
		# shellcheck disable=SC2254
		case "$last" in $3) echo "$last" && return 0 ;; esac
		sleep 0.05
	done
	fail "process $2 never answered $3 (last: '$last')"
}

# vfork_child: vforker's next child, once its spawner thread waits for it;
# its pid in CHILD.
vfork_child() {
	local old
	old=$(awk '$1 == "vforked" {p = $2} END {print p}' "$START_OUT")
	kill -USR1 "$PID"
	for _ in $(seq 100); do
		CHILD=$(awk '$1 == "vforked" {p = $2} END {print p}' "$START_OUT")
		# The spawner sleeps in vfork (syscall 58) until the child is done.
		[ -n "$CHILD" ] && [ "$CHILD" != "$old" ] &&
			grep -q '^58 ' "/proc/$PID/task/"*/syscall && return
		sleep 0.05
	done
	fail "vforker did not vfork: $(cat "$START_OUT")"
}

# uffd_waits_for_its_fault: the uffd target started last (PID) has a
# thread the kernel holds in its read until the fault is answered.
uffd_waits_for_its_fault() {
	for _ in $(seq 100); do
		grep -q handle_userfault /proc/"$PID"/task/*/wchan 2>/dev/null && return 0
		sleep 0.02
	done
	fail "no thread of $PID waits for its fault"
}

# last_tick_value: the VALUE of the target's last "tick N VALUE" (vforker, waiters, rseq).
last_tick_value() { awk '$1 == "tick" {v = $3} END {print v}' "$START_OUT"; }

# tick_value_becomes D WHAT: the last tick's value starts with D within 2 s.
tick_value_becomes() {
	for _ in $(seq 100); do
		[ "$(last_tick_value | cut -c1)" = "$1" ] && return 0
		sleep 0.02
	done
	fail "$2: the last tick is '$(grep '^tick' "$START_OUT" | tail -1)'"
}

# last_tick_is LINE WHAT: the target's last "tick ..." line is LINE within 5 s.
last_tick_is() {
	for _ in $(seq 250); do
		[ "$(grep '^tick' "$START_OUT" | tail -1)" = "$1" ] && return 0
		sleep 0.02
	done
	fail "$2: the last tick is '$(grep '^tick' "$START_OUT" | tail -1)', not '$1'"
}

# start_other_build PASS: authpoll on the same library built with other
# flags (another build-id), which no patch of ours may touch; sets OTHER_PID.
start_other_build() {
	if [ ! -e "$WORK/other/libauth.so" ]; then
		mkdir -p "$WORK/other"
		cp -a "$WORK/src/." "$WORK/other/"
		(cd "$WORK/other" && gcc -O1 -g -fPIC -shared auth.c -Wl,-soname,libauth.so -o libauth.so)
	fi
	LD_LIBRARY_PATH=$WORK/other "$WORK/other/authpoll" "$1" >>"$WORK/other.out" 2>&1 &
	OTHER_PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $OTHER_PID"
	wait_line "$WORK/other.out" "$OTHER_PID" '[A-Z]*' >/dev/null
	grep -q "$WORK/other/libauth.so" "/proc/$OTHER_PID/maps" || fail "other build not loaded"
}

# start_daemon STORE ARGS...: opus daemon in the background, logging to
# $WORK/daemon.log; sets DAEMON_PID once it has read the store.
start_daemon() {
	local store=$1
	shift
	"$OPUS" daemon --store "$store" "$@" >"$WORK/daemon.log" 2>&1 &
	DAEMON_PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $DAEMON_PID"
	wait_log "store $store"
}

# wait_log TEXT: waits until the daemon's log has a line containing TEXT.
wait_log() {
	for _ in $(seq 200); do
		grep -qF -- "$1" "$WORK/daemon.log" && return 0
		sleep 0.05
	done
	fail "daemon never logged '$1': $(cat "$WORK/daemon.log")"
}

# stop_daemon: SIGTERM; it must exit cleanly (and leak-free under ASan).
stop_daemon() {
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID" || fail "daemon exited with $?: $(tail -5 "$WORK/daemon.log")"
}

build_authsrv() {
	build_target authsrv "$@"
}

# start_authsrv_with_fix: authsrv (PIE) built in $WORK and running (PID,
# PORT), and its fix-auth.diff built into $WORK/fix.opatch.
start_authsrv_with_fix() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch" >/dev/null
}

# tree_with_diff DIR DIFF NEW: a copy of the built tree DIR/src at NEW with
# DIFF applied and its compile database moved along: the source a stacked
# patch is built against.
tree_with_diff() {
	cp -a "$1/src" "$3"
	patch -s -p1 -d "$3" <"$2"
	sed -i "s#$1/src\"#$3\"#" "$3/compile_commands.json"
}

# start BIN: runs it in the background; sets PID, PORT and START_OUT (the
# file its output goes to, in the test's WORK, which goes with it).
start() {
	local out
	out=$(mktemp "${WORK:-${TMPDIR:-/tmp}}/start.XXXXXX")
	START_OUT=$out
	"$@" >"$out" 2>&1 &
	PID=$!
	STARTED_PIDS="${STARTED_PIDS:-} $PID" # killed at the end, even if it never gets ready
	for _ in $(seq 100); do
		grep -q '^ready' "$out" && break
		sleep 0.05
	done
	PORT=$(awk '/^ready/ {print $2}' "$out")
	[ -n "$PORT" ] || fail "target $1 did not start: $(cat "$out")"
}

stop_all() {
	local p
	for p in ${STARTED_PIDS:-}; do
		kill -9 "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}

# req LINE: one request, prints the one-line answer.
req() {
	local answer
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" || fail "cannot connect to port $PORT"
	printf '%s\n' "$1" >&3
	IFS= read -r -t 30 answer <&3 || true
	exec 3<&-
	printf '%s\n' "$answer"
}

assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

assert_contains() {
	case "$2" in
	*"$1"*) ;;
	*) fail "$3: expected to contain '$1', got '$2'" ;;
	esac
}

assert_not_contains() {
	case "$2" in
	*"$1"*) fail "$3: expected not to contain '$1', got '$2'" ;;
	esac
}

# A misspelt command (an assertion that does not exist) fails its test
# rather than pass unseen: a test runs without errexit, which bash ignores
# in a function called as an if's condition. The handler runs in a
# subshell of its own: run.sh reads the mark it leaves.
command_not_found_handle() {
	echo "    FAIL: no such command: $1" >&2
	[ -z "${WORK:-}" ] || echo "$1" >>"$WORK/.no-such-command"
	return 127
}

# The process exists, runs (not stopped), is not traced and has no opus
# mapping left unless told otherwise.
# Read with bash alone: beside a hundred busy threads every fork and exec
# waits for a CPU (test_kills). Each file is read whole in one pass: read
# line by line, bash seeks back after each line and the kernel writes the
# file anew, so a State line that changed length between two reads ("S
# (sleeping)", "R (running)") shifts every line after it (measured: 11
# misread TracerPid lines in 3000 reads of a process that sleeps 1 ms).
assert_running() {
	local pid=$1 stat status state tracer=""
	[ -d "/proc/$pid" ] || fail "process $pid is gone"
	read -r stat <"/proc/$pid/stat" || fail "process $pid is gone"
	stat=${stat##*) } # past the command name, which may hold spaces
	state=${stat%% *}
	case "$state" in
	R | S | D) ;;
	*) fail "process $pid is in state $state" ;;
	esac
	read -r -d '' status <"/proc/$pid/status" || [ -n "$status" ] ||
		fail "process $pid is gone"
	[[ $status =~ TracerPid:[[:space:]]*([0-9]+) ]] && tracer=${BASH_REMATCH[1]}
	assert_eq 0 "$tracer" "process $pid is still traced"
}

# assert_no_thread_traced PID: no thread of PID is traced (assert_running
# looks at the leader alone).
assert_no_thread_traced() {
	grep -q '^TracerPid:[[:space:]]*[1-9]' "/proc/$1/task/"*/status &&
		fail "a thread of $1 is still traced"
	return 0
}

# Mappings opus added, and how many distinct patches they belong to.
opus_mappings() {
	grep -c '/memfd:opus-livepatch:' "/proc/$1/maps" || true
}

opus_patches_mapped() {
	grep -o '/memfd:opus-livepatch:[^ ]*' "/proc/$1/maps" | sort -u | wc -l
}

# counter_advances REQUEST SECONDS WHAT: the number the target answers to
# REQUEST grows within SECONDS, or WHAT stopped.
counter_advances() {
	local a b
	a=$(req "$1")
	sleep "$2"
	b=$(req "$1")
	[ "$b" -gt "$a" ] || fail "$3 stopped advancing ($a -> $b)"
}

# ticks_advance: the target's ticker counter, to check blocked threads still run.
ticks_advance() {
	counter_advances TICKS 0.2 "ticker thread"
}

# expect_fail "what" CMD...: the command must fail; its stderr is in ERR.
expect_fail() {
	local what=$1
	shift
	if ERR=$("$@" 2>&1 >/dev/null); then
		fail "$what: expected failure, it succeeded"
	fi
}
