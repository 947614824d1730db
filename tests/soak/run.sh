#!/usr/bin/env bash
# make soak: apply/revert cycles under load, counting what must stay zero.
#  1. authsrv (ticker, waiter, poller threads and a thread per request)
#     while two clients send requests: SOAK_CYCLES (1000) cycles of opus
#     apply + opus revert of fix-auth.diff;
#  2. nginx master + 2 workers under wrk: SOAK_NGINX_CYCLES (200) cycles of
#     opus apply --all + revert --all of Debian's CVE-2026-42945 fix.
# Checks: the processes live, no request fails, no opus mapping is left
# after any revert, memory (VmRSS) stays flat. Writes build/soak.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
CYCLES=${SOAK_CYCLES:-1000}
NGINX_CYCLES=${SOAK_NGINX_CYCLES:-200}
OUT=$ROOT/build/soak
RESULTS=$ROOT/build/soak.json
rm -rf "$OUT" && mkdir -p "$OUT"
export WORK=$OUT
# shellcheck source=../lib.sh
source "$ROOT/tests/lib.sh"
fail() {
	echo "soak: FAIL: $*" >&2
	exit 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Named mappings (files, memfds: opus maps only memfds). Anonymous ones are
# left out: the stacks of authsrv's request threads come and go with load.
maps_count() { awk 'NF >= 6' "/proc/$1/maps" | wc -l; }

# ---- 1. authsrv ----
build_authsrv "$OUT" -O2 -g -fPIE -pie >/dev/null
start "$OUT/src/authsrv"
trap 'stop_all; kill $(jobs -p) 2>/dev/null || true' EXIT
"$OPUS" build --source "$OUT/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
	--binary "$OUT/src/authsrv" -o "$OUT/fix.opatch" >/dev/null

# client N: requests until the stop file appears; "sent failed" into OUT/client.N.
client() {
	local n=0 bad=0 a
	while [ ! -e "$OUT/stop" ]; do
		n=$((n + 1))
		a=$(req 'AUTH admin hunter2' 2>/dev/null || true)
		[ "$a" = OK ] || bad=$((bad + 1))
	done
	echo "$n $bad" >"$OUT/client.$1"
}
# Warm up with the same two clients (glibc caches the stacks of the
# request threads), then take the baseline.
client 1 &
c1=$!
client 2 &
c2=$!
sleep 1
touch "$OUT/stop"
wait "$c1" "$c2"
rm "$OUT/stop"
rss0=$(rss_kb "$PID") maps0=$(maps_count "$PID")
client 1 &
c1=$!
client 2 &
c2=$!
start_ns=$(date +%s%N)
leaked=0 failures=0 max_maps=$maps0
for i in $(seq "$CYCLES"); do
	if ! "$OPUS" apply "$PID" "$OUT/fix.opatch" >/dev/null 2>"$OUT/err" ||
		! "$OPUS" revert "$PID" >/dev/null 2>>"$OUT/err"; then
		failures=$((failures + 1))
		echo "cycle $i: $(tail -1 "$OUT/err")" >&2
	fi
	left=$(opus_mappings "$PID")
	[ "$left" = 0 ] || leaked=$((leaked + 1))
	m=$(maps_count "$PID")
	[ "$m" -le "$max_maps" ] || max_maps=$m
	[ -d "/proc/$PID" ] || fail "authsrv died at cycle $i"
done
secs=$((($(date +%s%N) - start_ns) / 1000000000))
touch "$OUT/stop"
wait "$c1" "$c2"
read -r sent1 bad1 <"$OUT/client.1"
read -r sent2 bad2 <"$OUT/client.2"
rss1=$(rss_kb "$PID") maps1=$(maps_count "$PID")
assert_running "$PID"
echo "authsrv: $CYCLES cycles in ${secs}s, $failures failed cycles, $((sent1 + sent2)) requests, $((bad1 + bad2)) failed, $leaked cycles left a mapping, maps $maps0 -> $maps1 (max $max_maps), VmRSS $rss0 -> $rss1 kB"
jq -n --argjson cycles "$CYCLES" --argjson secs "$secs" --argjson failures "$failures" \
	--argjson requests $((sent1 + sent2)) --argjson failed $((bad1 + bad2)) \
	--argjson leaked "$leaked" --argjson maps0 "$maps0" --argjson maps1 "$maps1" \
	--argjson max_maps "$max_maps" --argjson rss0 "$rss0" --argjson rss1 "$rss1" \
	'{authsrv: {cycles: $cycles, seconds: $secs, failed_cycles: $failures,
	  requests: $requests, failed_requests: $failed, cycles_leaving_a_mapping: $leaked,
	  maps: {before: $maps0, after: $maps1, max: $max_maps},
	  vmrss_kb: {before: $rss0, after: $rss1}}}' >"$RESULTS"
[ "$failures" = 0 ] || fail "$failures cycles failed"
[ $((bad1 + bad2)) = 0 ] || fail "$((bad1 + bad2)) requests failed"
[ "$leaked" = 0 ] || fail "$leaked cycles left an opus mapping"
[ "$maps1" -le "$maps0" ] || fail "the memory map grew: $maps0 -> $maps1 lines"
# Flat: within 1 MB (allocator noise), whatever the number of cycles.
[ $((rss1 - rss0)) -le 1024 ] || fail "VmRSS grew $rss0 -> $rss1 kB"
stop_all

# ---- 2. nginx ----
for p in wrk bear libpcre2-dev zlib1g-dev libssl-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
real=${REAL_WORK:-$ROOT/build/real}
tree=$(bash "$ROOT/tests/real/nginx/build.sh" "$real")
prefix=$OUT/nginx
mkdir -p "$prefix"/{body,fastcgi,proxy,scgi,uwsgi,html/dav}
"$OPUS" build --source "$tree" --diff "$tree/debian/patches/CVE-2026-42945.patch" \
	--binary "$tree/objs/nginx" --id soak-42945 -o "$OUT/nginx.opatch" >/dev/null
HTTP=$(bash "$ROOT/tests/real/nginx/conf.sh" "$prefix" "$tree" "$prefix/nginx.conf")
"$tree/objs/nginx" -p "$prefix" -c "$prefix/nginx.conf" &
master=$!
trap 'kill $master 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ "$(pgrep -c -P "$master" || true)" -ge 2 ] && break
	sleep 0.1
done
pids="$master $(pgrep -P "$master" | xargs)"
sleep 0.5
declare -A nrss0
for p in $pids; do nrss0[$p]=$(rss_kb "$p"); done
wrk -t2 -c8 -d600s "http://127.0.0.1:$HTTP/proxy" >"$OUT/wrk.out" 2>&1 &
wrk=$!
sleep 0.5
start_ns=$(date +%s%N)
nfail=0 nleaked=0
for i in $(seq "$NGINX_CYCLES"); do
	a=$("$OPUS" apply --all --json "$OUT/nginx.opatch" 2>"$OUT/err" | jq -r .summary.patched || true)
	r=$("$OPUS" revert --all --json soak-42945 2>>"$OUT/err" | jq -r .summary.reverted || true)
	if [ "$a" != 3 ] || [ "$r" != 3 ]; then
		nfail=$((nfail + 1))
		echo "nginx cycle $i: patched $a, reverted $r: $(tail -1 "$OUT/err")" >&2
	fi
	for p in $pids; do
		[ -d "/proc/$p" ] || fail "nginx process $p died at cycle $i"
		[ "$(opus_mappings "$p")" = 0 ] || nleaked=$((nleaked + 1))
	done
done
nsecs=$((($(date +%s%N) - start_ns) / 1000000000))
kill -INT "$wrk" 2>/dev/null || true
wait "$wrk" || true
done_reqs=$(awk '/requests in/ {print $1}' "$OUT/wrk.out")
errs=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$OUT/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $5}' "$OUT/wrk.out")
nbad=$((${errs:-0} + ${non2xx:-0}))
rss_json=$(for p in $pids; do
	jq -n --argjson p "$p" --argjson a "${nrss0[$p]}" --argjson b "$(rss_kb "$p")" \
		'{pid: $p, before: $a, after: $b}'
done | jq -s .)
echo "nginx: $NGINX_CYCLES cycles on $(wc -w <<<"$pids") processes in ${nsecs}s, $nfail failed cycles, ${done_reqs:-0} requests, $nbad failed, $nleaked mappings left, VmRSS $(jq -c '[.[] | "\(.before)->\(.after)"]' <<<"$rss_json")"
jq --argjson cycles "$NGINX_CYCLES" --argjson secs "$nsecs" --argjson failures "$nfail" \
	--argjson requests "${done_reqs:-0}" --argjson failed "$nbad" --argjson leaked "$nleaked" \
	--argjson rss "$rss_json" \
	'. + {nginx: {cycles: $cycles, seconds: $secs, failed_cycles: $failures,
	  requests: $requests, failed_requests: $failed, mappings_left: $leaked,
	  vmrss_kb: $rss}}' "$RESULTS" >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
[ "$nfail" = 0 ] || fail "$nfail nginx cycles failed"
[ "$nbad" = 0 ] || fail "$nbad requests failed under wrk"
[ "$nleaked" = 0 ] || fail "$nleaked opus mappings left in nginx"
for row in $(jq -c '.[]' <<<"$rss_json"); do
	[ $(($(jq .after <<<"$row") - $(jq .before <<<"$row"))) -le 1024 ] ||
		fail "nginx VmRSS grew: $row"
done
# opus SIGKILLed at random moments of apply and revert on a 100-thread
# busy target (make check runs the short form in tests/run.sh).
if [ "${SOAK_KILLS:-100}" != 0 ]; then
	OPUS_KILLS=${SOAK_KILLS:-100} OPUS_TEST_PLAIN_ONLY=1 bash "$ROOT/tests/run.sh" \
		'test_random_kills_on_a_busy_target' | tee "$OUT/kills.out"
	grep -q '^1 passed, 0 failed' "$OUT/kills.out" || fail "random kills harmed the target"
fi
echo "soak: passed"
