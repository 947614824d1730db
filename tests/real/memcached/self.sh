#!/usr/bin/env bash
# Self-replacement of a server nobody here wrote, checked by its own test
# suite: every function of Debian's memcached (tests/real/memcached/
# build.sh) that is not on a thread's stack for good is replaced by its own
# recompiled code in a running memcached holding a warm cache, under load.
# Two servers run alike: LIVE is patched and reverted, REF never is.
# memcached's own tests (t/*.t, pointed at a running server by its harness's
# T_MEMD_USE_DAEMON) run against both, each file after a flush_all of both;
# every file must give LIVE the outcome it gives REF. The warm cache must
# hold every key through apply and revert, and no request of the load may
# fail. Before the apply, LIVE's LRU crawler has run and exited (as
# lru-crawler.t makes it do): glibc keeps the dead thread's stack, stale
# return addresses in it, which opus must know for what it is.
# Writes build/real/memcached-self.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}/memcached
HERE=$ROOT/tests/real/memcached
JSON=$WORK/../memcached-self.json
WARM=5000
# Test files of memcached 1.6.18 that can run against a server they did not
# start (T_MEMD_USE_DAEMON): the others start servers with options of their
# own, restart or stop it, or read its statistics since start (issue_14.t
# compares the memory it allocated, which the load and the warm cache
# change).
TESTS="binary-get bogus-commands cas flags getandtouch incrdecr issue_108 issue_152
issue_192 issue_22 issue_3 issue_68 issue_70 line-lengths malicious-commands multiversioning
noreply quit strtol-testing touch getset"
mkdir -p "$WORK/logs"
# shellcheck source=tests/real/port.sh
. "$ROOT/tests/real/port.sh"
# shellcheck source=tests/real/replace-all.sh
. "$ROOT/tests/real/replace-all.sh"

for p in bear libevent-dev libsasl2-dev libssl-dev pkg-config jq python3; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done

fail() {
	echo "real memcached self-replacement: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
exe=$tree/memcached
mc() { python3 "$HERE/mc.py" "$@"; }

# start_server: a memcached with four workers; prints "pid port".
start_server() {
	local port user=()
	port=$(free_port)
	[ "$(id -u)" != 0 ] || user=(-u root)
	"$exe" "${user[@]}" -l 127.0.0.1 -p "$port" -U 0 -t 4 -m 64 >"$WORK/logs/server.$port" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		mc cmd "$port" version >/dev/null 2>&1 && break
		sleep 0.05
	done
	mc cmd "$port" version | grep -q '^VERSION' || fail "memcached did not start: $(cat "$WORK/logs/server.$port")"
	echo "$pid $port"
}

read -r live live_port < <(start_server)
read -r ref ref_port < <(start_server)
trap 'touch "$WORK/stop"; kill $live $ref 2>/dev/null || true' EXIT

# The LRU crawler runs once and its thread exits, on both.
for port in $live_port $ref_port; do
	mc cmd "$port" "lru_crawler crawl all" | grep -q OK || fail "the LRU crawler did not start"
	mc cmd "$port" "lru_crawler disable" | grep -q OK || fail "the LRU crawler did not stop"
done
[ "$(mc warm "$live_port" $WARM)" = $WARM ] || fail "the warm cache was not stored"

# suite NAME PORT: memcached's test files against the server at PORT, each
# after a flush_all, their outcomes (ok N / not ok N) in $WORK/NAME/.
suite() {
	local name=$1 port=$2 t
	rm -rf "${WORK:?}/$name"
	mkdir -p "$WORK/$name"
	for t in $TESTS; do
		mc flush "$port" >/dev/null
		(cd "$tree" && T_MEMD_USE_DAEMON=127.0.0.1:$port timeout 120 setsid -w \
			perl -It/lib "t/$t.t" >"$WORK/$name/$t.log" 2>&1) || true
		grep -aE '^(not )?ok [0-9]+' "$WORK/$name/$t.log" | sed 's/ - .*//' >"$WORK/$name/$t.out" || true
	done
}

# same_outcomes NAME: LIVE's outcomes under NAME are REF's.
same_outcomes() {
	local t
	for t in $TESTS; do
		diff "$WORK/ref/$t.out" "$WORK/$1/$t.out" >"$WORK/$1.diff" ||
			fail "t/$t.t against the $1 server differs from the reference: $(head -5 "$WORK/$1.diff"); log: $WORK/$1/$t.log"
	done
}

# The patch: every function, but those some thread never leaves.
replace_all memcached-self "$live" "$WORK/self.opatch" "$WORK/logs/build" --source "$tree" --binary "$exe"
excludes=("${EXCLUDES[@]}") replaced=$REPLACED

suite ref "$ref_port"
ref_ok=$(cat "$WORK"/ref/*.out | grep -c '^ok' || true)
[ "$ref_ok" -gt 1000 ] || fail "memcached's tests pass $ref_ok checks against the reference server"

rm -f "$WORK/stop"
mc load "$live_port" "$WORK/stop" "$WORK/load.apply" &
loader=$!
sleep 0.5
"$OPUS" apply --json "$live" "$WORK/self.opatch" >"$WORK/logs/apply.json" ||
	fail "apply to LIVE under load: $(cat "$WORK/logs/apply.json")"
sleep 0.5
touch "$WORK/stop"
wait "$loader"
read -r apply_requests apply_failed <"$WORK/load.apply"
[ "$(mc check "$live_port" $WARM)" = $WARM ] || fail "the warm cache lost keys in the apply"

suite patched "$live_port"
same_outcomes patched
[ "$(mc warm "$live_port" $WARM)" = $WARM ] || fail "the warm cache was not stored again"

rm -f "$WORK/stop"
mc load "$live_port" "$WORK/stop" "$WORK/load.revert" &
loader=$!
sleep 0.5
"$OPUS" revert "$live" >"$WORK/logs/revert" 2>&1 || fail "revert under load: $(cat "$WORK/logs/revert")"
sleep 0.5
touch "$WORK/stop"
wait "$loader"
read -r revert_requests revert_failed <"$WORK/load.revert"
[ "$(mc check "$live_port" $WARM)" = $WARM ] || fail "the warm cache lost keys in the revert"
grep -q '/memfd:opus-livepatch:' "/proc/$live/maps" && fail "the patch is still mapped"

suite reverted "$live_port"
same_outcomes reverted
for p in $live $ref; do
	[ -d "/proc/$p" ] || fail "server $p is gone"
done
[ "$apply_failed" = 0 ] && [ "$revert_failed" = 0 ] ||
	fail "requests failed: $apply_failed of $apply_requests in the apply, $revert_failed of $revert_requests in the revert"

checks=$(cat "$WORK"/patched/*.out | wc -l)
jq -n --arg date "$(date -u +%F)" --arg version "$(cat "$WORK/source/version")" \
	--argjson replaced "$replaced" \
	--argjson kept "$(printf '%s\n' "${excludes[@]}" | grep -v -- --exclude | jq -R . | jq -s .)" \
	--argjson tests "$(echo "$TESTS" | wc -w)" --argjson checks "$checks" --argjson ref_ok "$ref_ok" \
	--argjson apply "$(jq .stats "$WORK/logs/apply.json")" \
	--argjson ar "$apply_requests" --argjson af "$apply_failed" \
	--argjson rr "$revert_requests" --argjson rf "$revert_failed" --argjson warm $WARM \
	'{date: $date, version: $version, replaced: $replaced, kept_busy: $kept,
	  test_files: $tests, checks: $checks, checks_passed_by_reference: $ref_ok,
	  warm_keys: $warm, apply_stats: $apply,
	  load: {apply: {requests: $ar, failed: $af}, revert: {requests: $rr, failed: $rf}}}' >"$JSON"
echo "memcached self-replacement: $replaced functions replaced (kept: $(printf '%s\n' "${excludes[@]}" | grep -v -- --exclude | xargs)); memcached's $(echo "$TESTS" | wc -w) test files, $checks checks, the same patched and reverted as on the reference ($ref_ok passed); $WARM warm keys kept; $apply_requests + $revert_requests requests under load, $apply_failed + $revert_failed failed; dead threads' stacks skipped: $(jq .stats.dead_stacks_skipped "$WORK/logs/apply.json")"
