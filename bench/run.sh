#!/usr/bin/env bash
# make bench: what a live patch costs a running program, in figures anyone
# can rerun on this machine. Writes build/bench/results.json, plots
# build/bench/*.png with gnuplot, and prints a table. Asserts nothing.
# BENCH_PARTS picks sections (default all: pause apply call nginx fleet
# scale scan swap transition); OPUS=PATH measures another build of opus.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
BENCH_PARTS=${BENCH_PARTS:-pause apply call nginx fleet scale scan swap transition}
want() { [[ " $BENCH_PARTS " == *" $1 "* ]]; }
OUT=$ROOT/build/bench
RUNS=${RUNS:-30}
mkdir -p "$OUT"
for p in gnuplot-nox wrk jq bc time bear libpcre2-dev zlib1g-dev libssl-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
gcc -O2 -Wall -o "$OUT/stopfloor" "$ROOT/bench/stopfloor.c"
gcc -O2 -Wall -o "$OUT/threadstop" "$ROOT/bench/threadstop.c"
gcc -O2 -Wall -o "$OUT/machine" "$ROOT/bench/machine.c"
gcc -O2 -Wall -o "$OUT/wall" "$ROOT/bench/wall.c"
gcc -O2 -Wall -pthread -o "$OUT/pageswap" "$ROOT/bench/pageswap.c"
RESULTS=$OUT/results.json
echo '{}' >"$RESULTS"
put() { jq "$1" "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"; }

# The machine, for ratios that hold on another one: a fixed CPU loop and a
# process start (fork + exec + reap of /bin/true); the ptrace floor follows.
put ".machine = $("$OUT/machine" "$RUNS")"
echo "machine: $(jq -c .machine "$RESULTS")"

# p50 and p99 of numbers on stdin, as JSON.
pctl() {
	sort -n | awk '{v[NR] = $1} END {
		i50 = int((NR + 1) / 2); i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR;
		printf "{\"p50\": %s, \"p99\": %s}\n", v[i50], v[i99] }'
}

# ---- the target: 1000 patchable functions; fixes of 1, 10, 100, 1000 ----
T=$OUT/target
rm -rf "$T" && mkdir -p "$T"
bash "$ROOT/bench/gen-target.sh" "$T/src" 0
printf '[{"directory": "%s", "file": "target.c", "arguments": ["gcc", "-O2", "-g", "-pthread", "-c", "target.c", "-o", "target.o"]}]\n' \
	"$T/src" >"$T/src/compile_commands.json"
(cd "$T/src" && gcc -O2 -g -pthread target.c -o target)
declare -A build_ms
for k in 1 10 100 1000; do
	bash "$ROOT/bench/gen-target.sh" "$T/fixed-$k" "$k"
	(cd "$T" && cp src/target.c a.c && diff -u a.c "fixed-$k/target.c" |
		sed -e '1s#^--- a.c.*#--- a/target.c#' -e "2s#^+++ .*#+++ b/target.c#" >"k$k.diff" || true)
	start=$(date +%s%N)
	"$OPUS" build --source "$T/src" --diff "$T/k$k.diff" --binary "$T/src/target" \
		--id "k$k" -o "$T/k$k.opatch" >/dev/null
	build_ms[$k]=$((($(date +%s%N) - start) / 1000000))
done

start_target() {
	"$T/src/target" "$@" >"$T/target.out" &
	TPID=$!
	for _ in $(seq 100); do grep -q ready "$T/target.out" 2>/dev/null && break; sleep 0.02; done
}
stop_target() { kill "$TPID" 2>/dev/null || true; wait "$TPID" 2>/dev/null || true; }
f0_addr() {
	local base off
	base=$(awk -v t="$T/src/target" '$6 == t && $3 == "00000000" {split($1, a, "-"); print a[1]; exit}' "/proc/$TPID/maps")
	off=$(nm "$T/src/target" | awk '$3 == "f0" {print $1}')
	printf '0x%x\n' $((0x$base + 0x$off))
}

# apply_cycle PATCH: RUNS applies and reverts; pauses (us) to $T/pauses,
# the longest any one thread was held (us; the pause, or the hold of the
# thread that ran the injected syscalls) to $T/holds,
# end-to-end apply times (ms) to $T/e2e, phases to $T/phases.
apply_cycle() {
	: >"$T/pauses"
	: >"$T/holds"
	: >"$T/e2e"
	: >"$T/phases"
	for _ in $(seq "$RUNS"); do
		: >"$T/e2e.one"
		"$OUT/wall" "$T/e2e.one" "$OPUS" apply --timeout 30 --json "$TPID" "$1" >"$T/apply.json"
		local e2e_ms
		e2e_ms=$(cat "$T/e2e.one")
		echo "$e2e_ms" >>"$T/e2e"
		jq '.stats.pause_us' "$T/apply.json" >>"$T/pauses"
		jq '.stats.longest_hold_us' "$T/apply.json" >>"$T/holds"
		# Every phase, then opus's start-up (CPU) and what no clock of
		# opus sees: exec and exit.
		jq -c --argjson e2e "$e2e_ms" '.stats as $s | $s.phases_us +
			(if $s.main_us then {startup_cpu_us: $s.startup_cpu_us,
			 cli_us: ($s.main_us - $s.total_ms * 1000 - $s.phases_us.parse_us),
			 exec_exit_us: ($e2e * 1000 - $s.main_us - $s.startup_cpu_us)} else {} end)' \
			"$T/apply.json" >>"$T/phases"
		"$OPUS" revert --timeout 30 "$TPID" >/dev/null
	done
}

# 1. Pause against thread count, blocked and busy, beside the ptrace floor.
if want pause; then
	for mode in blocked busy; do
		for n in 1 8 64 256; do
			start_target "$n" "$mode" 1000
			apply_cycle "$T/k1.opatch"
			addr=$(f0_addr)
			floor=$("$OUT/stopfloor" "$TPID" "$addr" "$RUNS")
			# opus stops a process once, from a fresh process: the same
			# stop, each by a stopfloor of its own (cold caches, as opus's).
			# Blocked threads only: letting busy ones go one at a time
			# takes a minute at 256.
			floor_cold='{"p50": null, "p99": null}'
			[ "$mode" = blocked ] && floor_cold=$(for _ in $(seq "$RUNS"); do
				"$OUT/stopfloor" "$TPID" "$addr" 1 | cut -d' ' -f1
			done | pctl)
			# opus goes real-time beside busy threads (src/live/boost.h):
			# the floor of a real-time tracer too, where chrt may.
			floor_rt=$(chrt -f 1 "$OUT/stopfloor" "$TPID" "$addr" "$RUNS" 2>/dev/null || echo "null null")
			# What a per-thread transition would hold each thread (issue
			# 15): every thread interrupted, each resumed once looked at.
			tstop=($(chrt -f 1 "$OUT/threadstop" "$TPID" "$RUNS" parallel 2>/dev/null ||
				"$OUT/threadstop" "$TPID" "$RUNS" parallel))
			stop_target
			[ "$n$mode" = 1blocked ] && put ".machine.floor_1_blocked_us = $(echo "$floor" | cut -d' ' -f1)"
			put ".pause_us.threads_${n}_$mode = $(pctl <"$T/pauses") |
			     .floor_us.threads_${n}_$mode = {p50: $(echo "$floor" | cut -d' ' -f1), p99: $(echo "$floor" | cut -d' ' -f2)} |
			     .floor_cold_us.threads_${n}_$mode = $floor_cold |
			     .floor_rt_us.threads_${n}_$mode = {p50: $(echo "$floor_rt" | cut -d' ' -f1), p99: $(echo "$floor_rt" | cut -d' ' -f2)} |
			     .thread_stop_floor_us.threads_${n}_$mode = {held: {p50: ${tstop[0]}, p99: ${tstop[1]}},
				reach: {p50: ${tstop[2]}, p99: ${tstop[3]}}, round_p50: ${tstop[4]}}"
			[ "$mode" = busy ] && put ".pause_us.threads_$n = .pause_us.threads_${n}_busy"
			# These applies are per thread (the default; no thread is
			# inside f0 at a stop): the entries are still written in a
			# stop of every thread, so the longest stop of one thread is
			# that stop's pause, or the hold of the thread that ran the
			# injected syscalls if longer (opus apply's longest_hold_us).
			put ".longest_hold_us.threads_${n}_$mode = $(pctl <"$T/holds") |
			     .transition_us.max_thread_stop.threads_$n.$mode = .longest_hold_us.threads_${n}_$mode"
			echo "pause, $n $mode thread(s): $(pctl <"$T/pauses") us (longest hold of one thread $(pctl <"$T/holds") us); floor $floor us (one stop per process: $floor_cold), real-time floor $floor_rt us;" \
				"per-thread stops: each held ${tstop[0]} / ${tstop[1]} us, every thread once ${tstop[4]} us"
		done
	done
fi

# 2. Pause and end-to-end apply against patch size (8 blocked threads).
if want apply; then
	start_target 8 blocked 1000
	for k in 1 10 100 1000; do
		apply_cycle "$T/k$k.opatch"
		put ".pause_us.funcs_$k = $(pctl <"$T/pauses") | .apply_e2e_ms.funcs_$k = $(pctl <"$T/e2e")"
		if [ "$k" = 10 ]; then
			put ".apply_ms = $(pctl <"$T/e2e") |
			     .apply_phases_us = $(jq -s 'reduce .[] as $p ({}; reduce ($p | keys[]) as $k (.; .[$k] += $p[$k] / '"$RUNS"'))' "$T/phases")"
		fi
		echo "patch of $k function(s): pause $(pctl <"$T/pauses") us, apply $(pctl <"$T/e2e") ms"
	done
	stop_target
fi

# 3. The steady cost of a patched call: f0 patched (old entry jumps to the
#    new code) against the same new code built natively.
if want call; then
	(cd "$T/fixed-1" && gcc -O2 -g -pthread target.c -o target)
	ns_per_call() {
		"$1" calls >"$T/calls.out" &
		local pid=$!
		for _ in $(seq 100); do grep -q ready "$T/calls.out" && break; sleep 0.02; done
		[ -z "${2:-}" ] || "$OPUS" apply "$pid" "$2" >/dev/null
		sleep 0.3
		: >"$T/calls.out"
		while [ "$(wc -l <"$T/calls.out")" -lt 5 ]; do sleep 0.2; done
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		sort -n "$T/calls.out" | head -3 | tail -1
	}
	native=$(ns_per_call "$T/fixed-1/target")
	patched=$(TPID=0 ns_per_call "$T/src/target" "$T/k1.opatch")
	put ".call_ns = {native: $native, patched: $patched} | .call_overhead_ns = ($patched - $native)"
	echo "call: native $native ns, patched $patched ns"
fi

# 4 and 5: nginx, the real-world suite's build.
if want nginx; then
	nginx_tree=$(bash "$ROOT/tests/real/nginx/build.sh" "$ROOT/build/real")
	bash "$ROOT/bench/nginx.sh" "$nginx_tree" "$RESULTS" "$RUNS"
fi

# 6. Many processes: apply --all over thousands; the daemon's latency.
if want fleet; then
	bash "$ROOT/bench/fleet.sh" "$RESULTS"
fi

# 7. Build time against the diff's size: 1,000 to 20,000 functions.
if want scale; then
	bash "$ROOT/bench/build-scale.sh" "$OPUS" "$OUT"
	put ".build.scale = $(cat "$OUT/build-scale.json")"
fi

# 8. The scan for suspended stacks: pause against touched memory.
if want scan; then
	bash "$ROOT/bench/scan-memory.sh" "$OPUS" "$OUT"
	put ".scan_memory = $(cat "$OUT/scan-memory.json")"
fi

# 9. Code changed under running threads by a page swap (issue 15, design
#    in docs/reliability.md): the swap's time beside 0 to 8 busy callers
#    of the page. pageswap dies if a caller ever runs a torn instruction.
if want swap; then
	for n in 0 1 2 8; do
		read -r p50 p99 old new < <("$OUT/pageswap" "$n" $((RUNS * 1000)))
		put ".page_swap_us.threads_$n = {p50: $p50, p99: $p99, calls_old: $old, calls_new: $new}"
		echo "page swap beside $n busy thread(s): p50 $p50 us, p99 $p99 us ($old calls before, $new after)"
	done
	# The same swap injected into one thread of the bench target, as
	# opus injects its syscalls: how long that thread is stopped.
	ninja -C "$ROOT/build" injectswap >/dev/null
	for nm in "1 blocked" "8 busy" "64 busy"; do
		read -r n mode <<<"$nm"
		start_target "$n" "$mode" 1000
		read -r s50 s99 m50 m99 < <("$ROOT/build/injectswap" "$TPID" "$(f0_addr)" $((RUNS * 7)))
		read -r b50 b99 _ _ < <("$ROOT/build/injectswap" "$TPID" "$(f0_addr)" $((RUNS * 7)) batch)
		stop_target
		put ".page_swap_injected_us.threads_${n}_$mode = {stop: {p50: $s50, p99: $s99}, syscalls: {p50: $m50, p99: $m99},
			batched: {stop: {p50: $b50, p99: $b99}}}"
		echo "injected page swap, $n $mode thread(s): the thread stopped p50 $s50 us, p99 $s99 us (its syscalls p50 $m50 us); batched: p50 $b50 us, p99 $b99 us"
	done
fi

# 10. Per-thread transitions (issue 15): N threads that each live inside a
#     replaced function (hold(): a 20 ms sleep, returning between sleeps)
#     are never all outside it at one stop. A stop-world apply gives up; per
#     thread, the one stop lists them and each switches as it returns.
if want transition; then
	bash "$ROOT/bench/gen-target.sh" "$T/fixed-hold" 0 1
	(cd "$T" && cp src/target.c a.c && diff -u a.c fixed-hold/target.c |
		sed -e '1s#^--- a.c.*#--- a/target.c#' -e "2s#^+++ .*#+++ b/target.c#" >hold.diff || true)
	"$OPUS" build --source "$T/src" --diff "$T/hold.diff" --binary "$T/src/target" \
		--id hold -o "$T/hold.opatch" >/dev/null
	for n in 1 8 64 256; do
		start_target "$n" inside 1
		: >"$T/tr.pause"
		: >"$T/tr.hold"
		: >"$T/tr.total"
		: >"$T/tr.revert"
		for _ in $(seq "$RUNS"); do
			"$OPUS" apply --timeout 10 --json "$TPID" "$T/hold.opatch" >"$T/apply.json"
			jq '.stats.pause_us' "$T/apply.json" >>"$T/tr.pause"
			jq '.stats.longest_hold_us' "$T/apply.json" >>"$T/tr.hold"
			jq '.stats.total_ms * 1000' "$T/apply.json" >>"$T/tr.total"
			"$OPUS" revert --timeout 10 --json "$TPID" >"$T/revert.json"
			jq '.stats.total_ms * 1000' "$T/revert.json" >>"$T/tr.revert"
		done
		late=$(jq '.stats.switched_late' "$T/apply.json")
		# One stop-world apply for comparison: how many stops it made, and
		# whether it found its moment (a lone thread is caught leaving).
		if "$OPUS" apply --stop-world --timeout 2 --json "$TPID" "$T/hold.opatch" \
			>"$T/sw.json" 2>"$T/sw.err"; then
			sw="{applied: true, attempts: $(jq .stats.attempts "$T/sw.json")}"
		else
			sw="{applied: false, attempts: $(sed -n 's/.*gave up after [0-9.]* s (\([0-9]*\) attempts).*/\1/p' "$T/sw.err" | grep . || echo null)}"
		fi
		stop_target
		put ".transition_us.max_thread_stop.threads_$n.inside = $(pctl <"$T/tr.hold") |
		     .transition_us.pause.threads_$n.inside = $(pctl <"$T/tr.pause") |
		     .transition_us.total.threads_$n = $(pctl <"$T/tr.total") |
		     .transition_us.revert_total.threads_$n = $(pctl <"$T/tr.revert") |
		     .transition_us.switched_late.threads_$n = ${late:-null} |
		     .transition_us.stop_world_in_2s.threads_$n = $sw"
		echo "per-thread apply, $n thread(s) inside: pause $(pctl <"$T/tr.pause") us, total $(pctl <"$T/tr.total") us" \
			"($late switched late), revert $(pctl <"$T/tr.revert") us; stop-world in 2 s: $sw"
	done
fi

put ".build.target_ms = {funcs_1: ${build_ms[1]}, funcs_10: ${build_ms[10]}, funcs_100: ${build_ms[100]}, funcs_1000: ${build_ms[1000]}} |
     .machine += {cpus: $(nproc), kernel: \"$(uname -r)\", date: \"$(date -u +%F)\"}"
bash "$ROOT/bench/plot.sh" "$RESULTS" "$OUT" || echo "(plots need every part: BENCH_PARTS left some out)"
bash "$ROOT/bench/table.sh" "$RESULTS"
