#!/usr/bin/env bash
# A worker that is almost never outside the code being replaced: nginx's
# epoll module (ngx_epoll_process_events waits in epoll_wait) replaced by
# its own recompiled code in a running worker that gets a request every
# 0.2 s. No stop finds the worker out of that function (the engine before
# src/live/exits.c gave up after 441 attempts in 5 s); apply must catch
# it as it returns with the next event. Then it is reverted under wrk load:
# the event handlers run inside that function too, and the engine before
# gave up after 944 attempts in 10 s; revert must catch it leaving the
# patch's own code. No request may fail, and the worker keeps its pid.
# Both with --stop-world: the catch is what this checks (per thread, the
# default, the worker would be listed and switch by itself).
# Writes build/real/nginx-exits.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}
HERE=$ROOT/tests/real/nginx
JSON=$WORK/nginx-exits.json
EX=$WORK/exits
mkdir -p "$EX"

for p in wrk bear curl libpcre2-dev zlib1g-dev libssl-dev jq; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done

fail() {
	echo "real nginx exits: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
prefix=$WORK/prefix
mkdir -p "$prefix/logs"
HTTP=$(bash "$HERE/conf.sh" "$prefix" "$tree" "$EX/nginx.conf")
# One worker: every request wakes the worker being patched.
sed -i 's/^worker_processes .*/worker_processes 1;/' "$EX/nginx.conf"

"$tree/objs/nginx" -p "$prefix" -c "$EX/nginx.conf" &
master=$!
trap 'kill $master 2>/dev/null || true; wait $master 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	worker=$(pgrep -P "$master" || true)
	[ -n "$worker" ] && curl -sf -o /dev/null "http://127.0.0.1:$HTTP/" && break
	sleep 0.05
done
[ -n "$worker" ] || fail "nginx started no worker"

"$OPUS" build --replace-all --source "$tree" --binary "$tree/objs/nginx" \
	--unit src/event/modules/ngx_epoll_module.c --id exits-epoll -o "$EX/epoll.opatch" \
	>"$EX/build.out" 2>&1 || fail "build of the epoll module: $(tail -3 "$EX/build.out")"
funcs=$(grep -c '^replaced' "$EX/build.out")
grep -q '^replaced ngx_epoll_process_events' "$EX/build.out" ||
	fail "the patch does not replace ngx_epoll_process_events"

# A request every 0.2 s, each counted as served or failed.
(
	for _ in $(seq 100); do
		if curl -sf -m 5 -o /dev/null "http://127.0.0.1:$HTTP/"; then echo ok; else echo failed; fi
		sleep 0.2
	done
) >"$EX/sparse.log" &
sparse=$!
sleep 0.5
"$OPUS" apply --stop-world --timeout 10 --json "$worker" "$EX/epoll.opatch" >"$EX/apply.json" 2>"$EX/apply.err" ||
	fail "apply to the worker between sparse requests: $(cat "$EX/apply.err")"
caught=$(jq '.stats.exits_caught' "$EX/apply.json")
attempts=$(jq '.stats.attempts' "$EX/apply.json")
apply_ms=$(jq '.stats.total_ms' "$EX/apply.json")
[ "$caught" -ge 1 ] || fail "the worker was not caught leaving the epoll module: $(cat "$EX/apply.json")"
wait "$sparse"
sparse_ok=$(grep -c '^ok' "$EX/sparse.log" || true)
sparse_failed=$(grep -c '^failed' "$EX/sparse.log" || true)
[ "$sparse_failed" = 0 ] || fail "$sparse_failed of the sparse requests failed"

wrk -t1 -c4 -d4s "http://127.0.0.1:$HTTP/" >"$EX/wrk.log" 2>&1 &
load=$!
sleep 0.5
"$OPUS" revert --stop-world --timeout 10 --json "$worker" >"$EX/revert.json" 2>"$EX/revert.err" ||
	fail "revert under load: $(cat "$EX/revert.err")"
wait "$load"
revert_caught=$(jq '.stats.exits_caught' "$EX/revert.json")
revert_ms=$(jq '.stats.total_ms' "$EX/revert.json")
load_done=$(awk '/requests in/ {print $1}' "$EX/wrk.log")
load_failed=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$EX/wrk.log")
non2xx=$(awk '/Non-2xx/ {print $5}' "$EX/wrk.log")
load_failed=$((${load_failed:-0} + ${non2xx:-0}))
[ "$load_failed" = 0 ] || fail "$load_failed requests failed under load"
[ "$(pgrep -P "$master")" = "$worker" ] || fail "the worker is not the same process"
curl -sf -o /dev/null "http://127.0.0.1:$HTTP/" || fail "nginx does not serve after the revert"

jq -n --argjson funcs "$funcs" --argjson caught "$caught" --argjson attempts "$attempts" \
	--argjson apply_ms "$apply_ms" --argjson ok "$sparse_ok" --argjson done "${load_done:-0}" \
	--argjson rcaught "$revert_caught" --argjson revert_ms "$revert_ms" \
	'{functions: $funcs, exits_caught: $caught, attempts: $attempts, apply_ms: $apply_ms,
	  revert_exits_caught: $rcaught, revert_ms: $revert_ms,
	  sparse_requests: $ok, sparse_failed: 0, load_requests: $done, load_failed: 0}' >"$JSON"
echo "real nginx exits: the worker caught leaving the epoll module: apply ($funcs functions," \
	"$attempts stops, $caught caught, $apply_ms ms) between $sparse_ok sparse requests," \
	"revert ($revert_caught caught, $revert_ms ms) under load of ${load_done:-0} requests; 0 failed"
