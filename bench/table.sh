#!/usr/bin/env bash
# Prints results.json ($1) as a markdown table: each figure, its ratio to
# the machine figure it depends on (measured in the same run), and the goal.
# Ratios are what should hold on another machine; absolute times are not.
set -euo pipefail
r=$1
f() { jq -r "$1 // \"n/a\"" "$r"; }
# ratio A B: A / B to two decimals, n/a when either is missing.
ratio() { jq -rn --argjson a "${1:-null}" --argjson b "${2:-null}" \
	'if ($a | type) == "number" and ($b | type) == "number" and $b > 0 then ($a / $b * 100 | round / 100 | tostring) + "x" else "n/a" end'; }
num() { jq -r "$1 // null" "$r"; }
# us X: X (ms) in microseconds, null when X is.
us() { jq -rn --argjson v "${1:-null}" 'if $v == null then null else $v * 1000 end'; }

spawn=$(num .machine.spawn_us)
echo "Machine: $(f .machine.cpus) CPUs, CPU loop $(f .machine.cpu_loop_ms) ms, process start" \
	"$(f .machine.spawn_us) us, page fault $(f .machine.page_fault_us) us," \
	"ptrace floor (1 blocked thread) $(f .machine.floor_1_blocked_us) us."
echo
cat <<MD
| measure | p50 | p99 | ratio | goal |
|---|---|---|---|---|
MD
for n in 1 8 64 256; do
	for mode in blocked busy; do
		p=$(num ".pause_us.threads_${n}_$mode.p50")
		fl=$(num ".floor_us.threads_${n}_$mode.p50")
		goal=""
		[ "$mode" = blocked ] && goal="<= 1.5x floor"
		cold=$(num ".floor_cold_us.threads_${n}_$mode.p50")
		echo "| pause, $n $mode thread(s), us (floor $(f ".floor_us.threads_${n}_$mode.p50"); one stop per process $cold; real-time tracer's $(f ".floor_rt_us.threads_${n}_$mode.p50")) | $p | $(f ".pause_us.threads_${n}_$mode.p99") | $(ratio "$p" "$fl") of floor ($(ratio "$p" "$cold") of one stop per process) | $goal |"
	done
done
for n in 1 8 64 256; do
	for mode in blocked busy; do
		goal=""
		[ "$n$mode" = 64busy ] && goal="<= 100 us p99 (issue 15)"
		echo "| one thread held by a per-thread stop (floor, not built), $n $mode thread(s), us (every thread once: $(f ".thread_stop_floor_us.threads_${n}_$mode.round_p50") us) | $(f ".thread_stop_floor_us.threads_${n}_$mode.held.p50") | $(f ".thread_stop_floor_us.threads_${n}_$mode.held.p99") | | $goal |"
	done
done
for n in 1 8 64 256; do
	echo "| per-thread apply, $n thread(s) living inside the replaced function: total, us (its pause $(f ".transition_us.max_thread_stop.threads_$n.inside.p50") us; stop-world within 2 s: $(jq -r ".transition_us.stop_world_in_2s.threads_$n | if . == null then \"n/a\" elif .applied then \"applied after \(.attempts) stops\" else \"gave up after \(.attempts) stops\" end" "$r")) | $(f ".transition_us.total.threads_$n.p50") | $(f ".transition_us.total.threads_$n.p99") | | |"
done
for k in 1 10 100 1000; do
	echo "| pause, patch of $k function(s), 8 blocked threads, us | $(f ".pause_us.funcs_$k.p50") | $(f ".pause_us.funcs_$k.p99") | | |"
done
phases_ms=$(jq -r '.apply_phases_us // {} | to_entries |
	map(select(.key | test("^(startup_cpu|cli|exec_exit)_us$") | not) | .value) | add // 0 | . / 1000' "$r")
for k in 1 10 100 1000; do
	e=$(num ".apply_e2e_ms.funcs_$k.p50")
	goal=""
	[ "$k" = 10 ] && goal="<= phases + 2 ms ($(jq -rn "$phases_ms * 100 | round / 100 + 2") ms)"
	echo "| opus apply end to end, $k function(s), ms | $e | $(f ".apply_e2e_ms.funcs_$k.p99") | $(ratio "$(us "$e")" "$spawn") of a process start | $goal |"
done
echo "| patched call, ns (native $(f .call_ns.native), patched $(f .call_ns.patched)) | $(f .call_overhead_ns) | | | <= 1 ns |"
echo "| nginx, failed requests in 20 opus apply/revert cycles (of $(f .nginx.opus.requests)) | $(f .nginx.opus.failed_requests) | | | 0 |"
for k in latency_us latency_light_us; do
	n=".nginx.$k"
	echo "| nginx, request latency p99 while opus patches, $(f "$n.connections") connections, us (idle p99 $(f "$n.idle.p99"); while opus patches an nginx beside it with no load, the control, $(f "$n.control.p99"), $(ratio "$(num "$n.control.p99")" "$(num "$n.idle.p99")") of idle; while opus holds the master $(f "$n.opus_on_master.p99"), a worker $(f "$n.opus_on_workers.p99")) | $(f "$n.patching.p99") | | $(ratio "$(num "$n.patching.p99")" "$(num "$n.idle.p99")") of idle, $(ratio "$(num "$n.patching.p99")" "$(num "$n.control.p99")") of the control | <= 2x idle |"
done
echo "| nginx, failed requests in a stop + start (of $(f .nginx.restart.requests)); serving again after $(f .nginx.restart.recover_ms) ms | $(f .nginx.restart.failed_requests) | | | |"
echo "| nginx, failed requests in a binary upgrade (of $(f .nginx.binary_upgrade.requests)) | $(f .nginx.binary_upgrade.failed_requests) | | | |"
echo "| opus build / compiling the file (one-file fix: $(f .build.one_file.opus_build_ms) ms / $(f .build.one_file.compile_ms) ms) | $(f .build.one_file_ratio) | | | <= 3 |"
echo "| opus build / full rebuild ($(f .build.one_file.full_rebuild_ms) ms) | $(f .build.full_rebuild_ratio) | | | |"
for k in $(jq -r '.fleet // {} | keys[]' "$r" | sort -V); do
	per=$(num ".fleet.$k.apply_ms_per_process")
	goal=""
	case "$k" in n4000_*) goal="4000 processes <= 2000 ms; more jobs never slower" ;; esac
	echo "| opus apply --all, $(f ".fleet.$k.processes") processes, ${k#*_} (patched $(f ".fleet.$k.patched")), ms | $(f ".fleet.$k.apply_ms") | | $(ratio "$(us "$per")" "$spawn") of a process start, each | $goal |"
done
for n in 0 8; do
	echo "| page swap of a code page beside $n busy caller(s), us (design figure for issue 15) | $(f ".page_swap_us.threads_$n.p50") | $(f ".page_swap_us.threads_$n.p99") | $(ratio "$(num ".page_swap_us.threads_$n.p50")" "$(num .machine.floor_1_blocked_us)") of the 1-thread floor | |"
done
for i in $(jq -r '(.scan_memory // []) | keys[]' "$r"); do
	mb=$(num ".scan_memory[$i].heap_mb")
	added=$(jq -r ".scan_memory[$i] | .scan_pause_us - .pause_us" "$r")
	echo "| pause added by the scan for suspended stacks, $mb MB touched heap, us (reading it once, one thread: $(f ".scan_memory[$i].read_floor_us") us) | $added | | $(ratio "$added" "$(num ".scan_memory[$i].read_floor_us")") of the read | |"
done
for m in netlink polling; do
	p=$(num ".daemon.$m.launch_to_patched_ms.p50")
	goal=""
	[ "$m" = netlink ] && goal="<= 5 ms"
	echo "| opus daemon ($m): process launch to patched, ms ($(f ".daemon.$m.patched") of $(f ".daemon.$m.launched")) | $p | $(f ".daemon.$m.launch_to_patched_ms.p99") | $(ratio "$(us "$p")" "$spawn") of a process start | $goal |"
done
echo
echo "Phases of opus apply (10 functions, mean of the runs, us; startup_cpu_us is opus's CPU time before main, exec_exit_us what only an outside clock sees): $(jq -c '.apply_phases_us' "$r")"
