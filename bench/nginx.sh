#!/usr/bin/env bash
# nginx figures for make bench (called by bench/run.sh): the cost of a fix
# to a running nginx with opus against a restart, and what opus build costs
# against compiling. Args: the nginx tree (tests/real/nginx/build.sh), the
# results file, runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=$ROOT/build/opus
tree=$1 results=$2 runs=$3
work=$(dirname "$tree")
prefix=$work/prefix
out=$ROOT/build/bench/nginx-figures
CVE=CVE-2026-42945
mkdir -p "$out"
put() { jq "$1" "$results" >"$results.tmp" && mv "$results.tmp" "$results"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# ---- opus build against compiling the file, and against a full rebuild ----
file=src/http/ngx_http_script.c
cmd=$(jq -r --arg f "$tree/$file" '.[] | select(.file == $f) | .arguments | @sh' "$tree/compile_commands.json")
start=$(date +%s%N)
(cd "$tree" && eval "$cmd -o $out/one.o")
compile_ms=$(ms_since "$start")
start=$(date +%s%N)
"$OPUS" build --source "$tree" --diff "$tree/debian/patches/$CVE.patch" --binary "$tree/objs/nginx" \
	-o "$out/fix.opatch" --id fix >/dev/null
opus_ms=$(ms_since "$start")
rm -rf "$out/full" && cp -a "$tree" "$out/full"
find "$out/full/objs" -name "*.o" -delete
start=$(date +%s%N)
make -C "$out/full" -j"$(nproc)" >/dev/null 2>&1
full_ms=$(ms_since "$start")
rm -rf "$out/full"
put ".build.one_file = {opus_build_ms: $opus_ms, compile_ms: $compile_ms, full_rebuild_ms: $full_ms} |
     .build.one_file_ratio = ($opus_ms / $compile_ms) | .build.full_rebuild_ratio = ($opus_ms / $full_ms)"
echo "opus build $opus_ms ms, compiling $file $compile_ms ms, full rebuild $full_ms ms"

# ---- the server under load ----
port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
HTTP=$(port)
sed -e "s#@PREFIX@#$prefix#g; s#@TREE@#$tree#g; s#@HTTP@#$HTTP#g" \
	-e "s#@BACKEND@#$(port)#g; s#@SMTP@#$(port)#g; s#@STREAM@#$(port)#g" \
	"$ROOT/tests/real/nginx/nginx.conf.in" | sed 's/^daemon off;/daemon on;/' >"$out/nginx.conf"
start_nginx() {
	"$tree/objs/nginx" -p "$prefix" -c "$out/nginx.conf"
	for _ in $(seq 200); do
		[ -s "$prefix/nginx.pid" ] && [ "$(pgrep -c -P "$(cat "$prefix/nginx.pid")" || true)" -ge 2 ] && return
		sleep 0.01
	done
}
serving() { (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null; }
load() {
	wrk -t2 -c8 -d"$1" "http://127.0.0.1:$HTTP/" >"$out/wrk.$2.out" 2>&1 &
	WRK=$!
	sleep 0.5
}
# Sets DONE and FAILED from the wrk run NAME, in this shell (wrk is its child).
failed() {
	wait "$WRK" || true
	read -r DONE FAILED < <(awk '/Socket errors/ {gsub(",", ""); e = $4 + $6 + $8 + $10}
		/Non-2xx/ {e += $5} /requests in/ {n = $1} END {printf "%d %d\n", n, e}' \
		"$out/wrk.$1.out")
}
stop_nginx() {
	[ -s "$prefix/nginx.pid" ] && kill "$(cat "$prefix/nginx.pid")" 2>/dev/null || true
	for _ in $(seq 200); do serving || break; sleep 0.01; done
	rm -f "$prefix/nginx.pid"
}

# opus: 20 apply/revert cycles on the master and both workers.
stop_nginx
start_nginx
master=$(cat "$prefix/nginx.pid")
pids="$master $(pgrep -P "$master" | tr '\n' ' ')"
load 12 opus
for _ in $(seq 20); do
	for p in $pids; do "$OPUS" apply "$p" "$out/fix.opatch" >/dev/null; done
	for p in $pids; do "$OPUS" revert "$p" >/dev/null; done
done
failed opus
opus_done=$DONE opus_failed=$FAILED
stop_nginx

# restart: stop and start, the way a fix reaches a server without opus.
start_nginx
load 6 restart
start=$(date +%s%N)
stop_nginx
start_nginx
until serving; do sleep 0.001; done
recover_ms=$(ms_since "$start")
failed restart
restart_done=$DONE restart_failed=$FAILED

# binary upgrade: a new master from the (fixed) binary, then the old one quits.
load 6 upgrade
old=$(cat "$prefix/nginx.pid")
start=$(date +%s%N)
kill -USR2 "$old"
for _ in $(seq 500); do [ -s "$prefix/nginx.pid.oldbin" ] && break; sleep 0.01; done
kill -QUIT "$old"
while kill -0 "$old" 2>/dev/null; do sleep 0.01; done
upgrade_ms=$(ms_since "$start")
failed upgrade
upgrade_done=$DONE upgrade_failed=$FAILED
stop_nginx

put ".nginx.opus = {cycles: 20, requests: $opus_done, failed_requests: $opus_failed} |
     .nginx.restart = {requests: $restart_done, failed_requests: $restart_failed, recover_ms: $recover_ms} |
     .nginx.binary_upgrade = {requests: $upgrade_done, failed_requests: $upgrade_failed, switch_ms: $upgrade_ms}"
echo "nginx: opus 20 cycles $opus_failed failed of $opus_done; restart $restart_failed failed of $restart_done (serving again after $recover_ms ms); binary upgrade $upgrade_failed failed of $upgrade_done"
