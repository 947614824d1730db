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
	"$out/loadgen" "$HTTP" / "${LOAD_CONNECTIONS:-8}" "$1" "$out/rps.$2.dat" "$out/lat.$2.dat" &
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

gcc -O2 -Wall -pthread -o "$out/loadgen" "$ROOT/bench/loadgen.c"

# now_ms: NOW, in ms since the load began, read without a fork (a forked
# date would be load of its own inside the windows measured).
now_ms() {
	local t=${EPOCHREALTIME/./}
	NOW=$(((t - LOAD_T0 / 1000) / 1000))
}
# cycles MASTER WORKER...: 4 apply/revert cycles on an nginx's master and
# workers; each run's window is added to MASTER_W (the master: it serves no
# request, so nothing waits on its stop) or WORKER_W. Nothing forked but
# opus.
cycles() {
	local p
	for _ in 1 2 3 4; do
		for step in apply revert; do
			for p in "$@"; do
				now_ms
				local from=$NOW
				if [ $step = apply ]; then
					"$OPUS" apply "$p" "$out/fix.opatch" >/dev/null
				else
					"$OPUS" revert "$p" >/dev/null
				fi
				now_ms
				if [ "$p" = "$1" ]; then
					MASTER_W="$MASTER_W $from-$NOW"
				else
					WORKER_W="$WORKER_W $from-$NOW"
				fi
			done
		done
	done
}
# The control: a second nginx, with no load, patched the same way. opus
# does the same work on the same machine, and only the loaded nginx's
# stops are missing: what opus costs the server by running beside it.
control_prefix=$out/control-prefix
bash "$ROOT/tests/real/nginx/conf.sh" "$control_prefix" "$tree" "$out/control.conf" on >/dev/null
start_control() {
	"$tree/objs/nginx" -p "$control_prefix" -c "$out/control.conf"
	for _ in $(seq 200); do
		[ -s "$control_prefix/nginx.pid" ] &&
			[ "$(pgrep -c -P "$(cat "$control_prefix/nginx.pid")" || true)" -ge 2 ] && return
		sleep 0.01
	done
}
# nginx_pids PREFIX: its master, then its workers.
nginx_pids() {
	local master
	master=$(cat "$1/nginx.pid")
	echo "$master $(pgrep -P "$master" | tr '\n' ' ')"
}
stop_control() {
	local pid
	pid=$(cat "$control_prefix/nginx.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
}

# latency_run CONNECTIONS KEY: 20 apply/revert cycles on the master and
# both workers under load, in five rounds of 4, each after a second of the
# same load without opus and 4 cycles on the control: the latency while
# patching against idle and against the control, taken in turns so that
# the machine's slow and fast stretches fall on all three.
# Puts .nginx.KEY and sets DONE, FAILED and RECOVER_MS.
latency_run() {
	local key=$2 idle_w="" control_w="" patching_w="" patching_ms=0 at from
	stop_nginx
	start_nginx
	start_control
	local loaded spare control
	loaded=$(nginx_pids "$prefix") spare=$(nginx_pids "$control_prefix")
	LOAD_CONNECTIONS=$1 load 20 opus
	at=$(date +%s%N)
	for _ in $(seq 5); do
		now_ms
		from=$NOW
		sleep 1
		now_ms
		idle_w="$idle_w $from-$NOW" from=$NOW
		MASTER_W="" WORKER_W=""
		# shellcheck disable=SC2086 # the pids, one word each
		cycles $spare
		now_ms
		control_w="$control_w $from-$NOW" from=$NOW
		MASTER_W="" WORKER_W=""
		# shellcheck disable=SC2086
		cycles $loaded
		master_w="$master_w$MASTER_W" worker_w="$worker_w$WORKER_W"
		now_ms
		patching_w="$patching_w $from-$NOW" patching_ms=$((patching_ms + NOW - from))
	done
	load_done "$at"
	local idle patching on_master on_workers
	idle=$(latency "${idle_w# }")
	control=$(latency "${control_w# }")
	patching=$(latency "${patching_w# }")
	on_master=$(latency "${master_w# }")
	on_workers=$(latency "${worker_w# }")
	put ".nginx.$key = {connections: $1, idle: $idle, control: $control, patching: $patching,
			    opus_on_master: $on_master, opus_on_workers: $on_workers, patching_ms: $patching_ms} |
	     .nginx.$key.p99_ratio = (.nginx.$key.patching.p99 / .nginx.$key.idle.p99) |
	     .nginx.$key.control_ratio = (.nginx.$key.control.p99 / .nginx.$key.idle.p99)"
	echo "nginx latency, $1 connections: idle $idle; opus on an nginx beside it $control;" \
		"while patching $patching us ($patching_ms ms of patching; opus on the master" \
		"$on_master, on a worker $on_workers)"
	stop_nginx
	stop_control
}

trap 'stop_nginx; stop_control' EXIT
master_w="" worker_w=""
latency_run 8 latency_us
opus_done=$DONE opus_failed=$FAILED opus_recover=$RECOVER_MS
master_w="" worker_w=""
latency_run 2 latency_light_us

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
