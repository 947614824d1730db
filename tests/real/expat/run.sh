#!/usr/bin/env bash
# Real-world suite, shared library: Debian 12's libexpat (expat source
# package, the original tarball plus Debian's non-CVE patches) loaded by
# Debian's own python3 in two XML servers (tests/real/expat/xmlserver.py,
# pyexpat over libexpat.so.1). Debian's fix for CVE-2024-45490
# (debian/patches/CVE-2024-45490.patch: XML_ParseBuffer accepted a negative
# length) is built with opus and applied with `opus apply --all` while both
# servers answer requests; a third python3 on the system's libexpat (another
# build-id) must stay untouched. The second server also runs /bin/true
# over and over from a thread (subprocess, which vforks): that thread is
# often waiting for a child that runs in the process's memory, and the
# child, until its exec, maps libexpat too. Writes build/real/expat.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}/expat
HERE=$ROOT/tests/real/expat
JSON=$WORK/../expat.json
CVE=CVE-2024-45490
mkdir -p "$WORK/logs"

fail() {
	echo "real expat: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
version=$(cat "$WORK/source/version")
lib=$(readlink -f "$tree/build/libexpat.so.1")

# start_server [LD_LIBRARY_PATH] [SPAWN]: prints "pid port".
start_server() {
	local out
	out=$(mktemp "$WORK/logs/server.XXXXXX")
	XMLSERVER_SPAWN=${2:-} LD_LIBRARY_PATH=$1 /usr/bin/python3 "$HERE/xmlserver.py" >"$out" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		grep -q '^ready' "$out" && break
		sleep 0.05
	done
	grep -q '^ready' "$out" || fail "xmlserver did not start: $(cat "$out")"
	echo "$pid $(awk '/^ready/ {print $2}' "$out")"
}

# ask PORT REQUEST: one request, its answer line.
ask() {
	local answer=""
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf '%s\n' "$2" >&3
	IFS= read -r -t 10 answer <&3 || true
	exec 3<&-
	printf '%s\n' "$answer"
}

read -r pid1 port1 < <(start_server "$tree/build")
read -r pid2 port2 < <(start_server "$tree/build" spawn)
read -r pid3 port3 < <(start_server "")
trap 'kill $pid1 $pid2 $pid3 2>/dev/null || true' EXIT
for p in "$port1" "$port2"; do
	[ "$(ask "$p" LIB)" = "$lib" ] || fail "server on $p does not map $lib: $(ask "$p" LIB)"
done
[ "$(ask "$port3" LIB)" != "$lib" ] || fail "the third server should map the system's libexpat"

doc='PARSE <doc><a x="1"/><b>text</b></doc>'
before=$(ask "$port1" NEGLEN)
[ "$(ask "$port1" "$doc")" = "OK 3" ] || fail "parse before the patch"

start=$(date +%s%N)
"$OPUS" build --source "$tree" --diff "$tree/debian/patches/$CVE.patch" --binary "$lib" \
	--cdb "$tree/build/compile_commands.json" --id "$CVE" -o "$WORK/$CVE.opatch" \
	>"$WORK/logs/build.out" 2>&1 || fail "opus build: $(tail -3 "$WORK/logs/build.out")"
build_ms=$((($(date +%s%N) - start) / 1000000))
funcs=$(awk '$1 == "replaced" {print $2}' "$WORK/logs/build.out" | jq -R . | jq -s -c .)

# Requests to both servers all through the apply: none may fail.
rm -f "$WORK/stop"
(
	n=0 bad=0
	while [ ! -e "$WORK/stop" ]; do
		for p in "$port1" "$port2"; do
			n=$((n + 1))
			[ "$(ask "$p" "$doc")" = "OK 3" ] || bad=$((bad + 1))
		done
	done
	echo "$n $bad" >"$WORK/load"
) &
loader=$!
sleep 0.5
read -r spawned0 _ < <(ask "$port2" SPAWNS)
"$OPUS" apply --all --json "$WORK/$CVE.opatch" >"$WORK/logs/apply.json" ||
	fail "opus apply --all: $(cat "$WORK/logs/apply.json")"
sleep 0.5
touch "$WORK/stop"
wait "$loader"
read -r requests failed <"$WORK/load"
read -r spawned spawn_failed < <(ask "$port2" SPAWNS)
spawned=$((spawned - spawned0))

patched=$(jq -r '.processes[] | select(.state == "patched") | .pid' "$WORK/logs/apply.json" |
	sort -n | xargs)
[ "$patched" = "$(printf '%s\n' "$pid1" "$pid2" | sort -n | xargs)" ] ||
	fail "apply --all patched '$patched', expected the two servers $pid1 $pid2"
grep -q '/memfd:opus-livepatch:' "/proc/$pid3/maps" && fail "the system-libexpat server was touched"
after1=$(ask "$port1" NEGLEN)
after2=$(ask "$port2" NEGLEN)
[ "$(ask "$port1" "$doc")" = "OK 3" ] || fail "parse after the patch"
third=$(ask "$port3" NEGLEN)

"$OPUS" revert --all "$CVE" >"$WORK/logs/revert.out" || fail "revert: $(cat "$WORK/logs/revert.out")"
reverted=$(ask "$port1" NEGLEN)

# The spawning server alone, 20 applies and reverts while it spawns: a stop
# that meets its thread waiting for a vfork child waits for the child's
# exec (up to the 1 ms tick; longer, it tries again), and no child of it
# may fail.
read -r spawned0 _ < <(ask "$port2" SPAWNS)
: >"$WORK/logs/cycle-pauses"
for _ in $(seq 20); do
	"$OPUS" apply --json "$pid2" "$WORK/$CVE.opatch" >"$WORK/logs/cycle.json" ||
		fail "apply to the spawning server: $(cat "$WORK/logs/cycle.json")"
	[ "$(ask "$port2" NEGLEN)" = "$after2" ] || fail "the spawning server is not patched"
	jq .stats.pause_us "$WORK/logs/cycle.json" >>"$WORK/logs/cycle-pauses"
	"$OPUS" revert "$pid2" >"$WORK/logs/cycle.out" 2>&1 ||
		fail "revert from the spawning server: $(cat "$WORK/logs/cycle.out")"
	[ "$(ask "$port2" NEGLEN)" = "$before" ] || fail "the spawning server is not reverted"
done
read -r cycle_spawned cycle_spawn_failed < <(ask "$port2" SPAWNS)
cycle_spawned=$((cycle_spawned - spawned0))
max_pause=$(sort -n "$WORK/logs/cycle-pauses" | tail -1)
[ "$cycle_spawn_failed" = 0 ] || fail "$cycle_spawn_failed of server $pid2's children failed"
for p in $pid1 $pid2 $pid3; do
	[ -d "/proc/$p" ] || fail "server $p is gone"
done

jq -n --arg version "$version" --arg date "$(date -u +%F)" --arg cve "$CVE" \
	--argjson funcs "$funcs" --argjson build_ms "$build_ms" \
	--argjson apply "$(cat "$WORK/logs/apply.json")" --arg before "$before" \
	--arg after "$after1" --arg reverted "$reverted" --arg third "$third" \
	--argjson requests "$requests" --argjson failed "$failed" \
	--argjson spawned "$spawned" --argjson spawn_failed "$spawn_failed" \
	--argjson cycle_spawned "$cycle_spawned" --argjson max_pause "$max_pause" \
	'{expat: $version, date: $date, cve: $cve, functions: $funcs, build_ms: $build_ms,
	  processes: [$apply.processes[] | select(.state == "patched") | {pid, pause_us}],
	  apply_ms: $apply.summary.total_ms,
	  neglen: {before: $before, after: $after, after_revert: $reverted,
		   system_libexpat: $third},
	  requests_during_apply: $requests, failed_requests: $failed,
	  spawned_during_apply: $spawned, failed_spawns: $spawn_failed,
	  spawning_server_cycles: {cycles: 20, spawned: $cycle_spawned, max_pause_us: $max_pause},
	  with_parent: [$apply.processes[] | select(.state == "with its parent") | .pid]}' >"$JSON"
echo "expat $version, $CVE in $funcs on pids $patched: NEGLEN before '$before', after '$after1' / '$after2', after revert '$reverted'; $requests requests, $failed failed; $spawned children spawned by $pid2 meanwhile, $spawn_failed failed, $(jq '.with_parent | length' "$JSON") met before their exec; 20 applies and reverts on $pid2 alone: $cycle_spawned children spawned, none failed, longest pause $max_pause us"

[ "$requests" -gt 0 ] || fail "no request was made during the apply"
[ "$failed" = 0 ] || fail "$failed requests failed during the apply"
[ "$spawned" -gt 0 ] || fail "server $pid2 spawned no child during the apply"
[ "$spawn_failed" = 0 ] || fail "$spawn_failed of server $pid2's children failed"
[ "$before" != "$after1" ] || fail "no change in behaviour: '$after1'"
[ "$after1" = "$after2" ] || fail "the two servers differ after the patch: '$after1' vs '$after2'"
[ "$reverted" = "$before" ] || fail "revert did not restore the old behaviour: '$reverted'"
bash "$ROOT/tests/real/render.sh" >"$ROOT/docs/real-world.md"
echo "real expat: $CVE applied live to 2 python3 processes, 0 failed requests"
