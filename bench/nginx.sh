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
HTTP=$(bash "$ROOT/tests/real/nginx/conf.sh" "$prefix" "$tree" "$out/nginx.conf" on)
start_nginx() {
	"$tree/objs/nginx" -p "$prefix" -c "$out/nginx.conf"
	for _ in $(seq 200); do
		[ -s "$prefix/nginx.pid" ] && [ "$(pgrep -c -P "$(cat "$prefix/nginx.pid")" || true)" -ge 2 ] && return
		sleep 0.01
	done
}
serving() { (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null; }
stop_nginx() {
	[ -s "$prefix/nginx.pid" ] && kill "$(cat "$prefix/nginx.pid")" 2>/dev/null || true
	for _ in $(seq 200); do serving || break; sleep 0.01; done
	rm -f "$prefix/nginx.pid"
}
# load SECONDS NAME: bench/loadgen in the background, 100 ms buckets, and
# every request's latency in lat.NAME.dat.
load() {
	LOAD_NAME=$2
	LOAD_T0=$(date +%s%N)
	"$out/loadgen" "$HTTP" / 8 "$1" "$out/rps.$2.dat" "$out/lat.$2.dat" &
	LOAD=$!
	sleep 1
}
# load_done DISRUPTED_AT_NS: sets DONE, FAILED and RECOVER_MS (from the
# disruption until a bucket answers 90% of the median before it).
load_done() {
	local at median file=$out/rps.$LOAD_NAME.dat
	wait "$LOAD"
	at=$((($1 - LOAD_T0) / 1000000))
	median=$(awk -v at="$at" '$1 + 100 <= at && $1 >= 200 {print $2}' "$file" | sort -n |
		awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 0}')
	# Recovered: the first of three buckets in a row at 80% of the median
	# throughput before the disruption, with no failure (one bucket is noisy
	# on two cores).
	read -r DONE FAILED RECOVER_MS < <(awk -v at="$at" -v m="$median" '
		{ t[NR] = $1; a[NR] = $2; f[NR] = $3; done += $2; failed += $3 }
		END {
			rec = -1
			for (i = 1; i + 2 <= NR && rec < 0; i++)
				if (t[i] + 100 > at && f[i] == 0 && a[i] >= 0.8 * m &&
				    a[i + 1] >= 0.8 * m && a[i + 2] >= 0.8 * m)
					rec = t[i] - at
			printf "%d %d %d\n", done, failed, (rec > 0 ? rec : 0)
		}' "$file")
}

# latency WINDOWS: p50 and p99 (us) of the requests of lat.opus.dat sent
# in any of the windows ("FROM-TO ..." in ms since the load began), as JSON.
latency() {
	awk -v w="$1" 'BEGIN { n = split(w, v, /[ -]/) }
		{ for (i = 1; i < n; i += 2) if ($1 >= v[i] && $1 < v[i + 1]) { print $2; next } }' \
		"$out/lat.opus.dat" | sort -n |
		awk '{v[NR] = $1} END {
			i50 = int((NR + 1) / 2); i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
			printf "{\"p50\": %s, \"p99\": %s, \"requests\": %d}\n", v[i50], v[i99], NR }'
}
ms_of_load() { echo $((($(date +%s%N) - LOAD_T0) / 1000000)); }

gcc -O2 -Wall -pthread -o "$out/loadgen" "$ROOT/bench/loadgen.c"

# opus: 20 apply/revert cycles on the master and both workers, in five
# rounds of 4, each after a second of the same load without opus: the
# latency while patching against idle, taken in turns so that the
# machine's slow and fast stretches fall on both.
stop_nginx
start_nginx
master=$(cat "$prefix/nginx.pid")
pids="$master $(pgrep -P "$master" | tr '\n' ' ')"
load 14 opus
idle_w="" patching_w="" patching_ms=0
at=$(date +%s%N)
for _ in $(seq 5); do
	from=$(ms_of_load)
	sleep 1
	to=$(ms_of_load)
	idle_w="$idle_w $from-$to"
	for _ in $(seq 4); do
		for p in $pids; do "$OPUS" apply "$p" "$out/fix.opatch" >/dev/null; done
		for p in $pids; do "$OPUS" revert "$p" >/dev/null; done
	done
	from=$to to=$(ms_of_load)
	patching_w="$patching_w $from-$to" patching_ms=$((patching_ms + to - from))
done
load_done "$at"
opus_done=$DONE opus_failed=$FAILED opus_recover=$RECOVER_MS
idle=$(latency "${idle_w# }")
patching=$(latency "${patching_w# }")
put ".nginx.latency_us = {idle: $idle, patching: $patching, patching_ms: $patching_ms} |
     .nginx.latency_us.p99_ratio = (.nginx.latency_us.patching.p99 / .nginx.latency_us.idle.p99)"
echo "nginx latency: idle $idle, while patching $patching us ($patching_ms ms of patching)"
stop_nginx

# restart: stop and start, the way a fix reaches a server without opus.
start_nginx
load 6 restart
at=$(date +%s%N)
stop_nginx
start_nginx
load_done "$at"
restart_done=$DONE restart_failed=$FAILED restart_recover=$RECOVER_MS

# binary upgrade: a new master from the (fixed) binary, then the old one quits.
load 6 upgrade
old=$(cat "$prefix/nginx.pid")
at=$(date +%s%N)
kill -USR2 "$old"
for _ in $(seq 500); do [ -s "$prefix/nginx.pid.oldbin" ] && break; sleep 0.01; done
kill -QUIT "$old"
while kill -0 "$old" 2>/dev/null; do sleep 0.01; done
load_done "$at"
upgrade_done=$DONE upgrade_failed=$FAILED upgrade_recover=$RECOVER_MS
stop_nginx

put ".nginx.opus = {cycles: 20, requests: $opus_done, failed_requests: $opus_failed, recover_ms: $opus_recover} |
     .nginx.restart = {requests: $restart_done, failed_requests: $restart_failed, recover_ms: $restart_recover} |
     .nginx.binary_upgrade = {requests: $upgrade_done, failed_requests: $upgrade_failed, recover_ms: $upgrade_recover}"
echo "nginx: opus 20 cycles $opus_failed failed of $opus_done; restart $restart_failed failed of $restart_done (full throughput again after $restart_recover ms); binary upgrade $upgrade_failed failed of $upgrade_done (after $upgrade_recover ms)"
