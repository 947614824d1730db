#!/usr/bin/env bash
# Prints results.json ($1) as a markdown table with the goals beside.
set -euo pipefail
r=$1
f() { jq -r "$1 // \"n/a\"" "$r"; }
cat <<MD
| measure | p50 | p99 | goal |
|---|---|---|---|
MD
for n in 1 8 64 256; do
	for mode in blocked busy; do
		goal=""
		[ "$n" = 1 ] && goal="<= 200 us"
		[ "$n" = 64 ] && goal="<= 2000 us"
		echo "| pause, $n $mode thread(s), us | $(f ".pause_us.threads_${n}_$mode.p50") | $(f ".pause_us.threads_${n}_$mode.p99") | $goal (ptrace floor p50 $(f ".floor_us.threads_${n}_$mode.p50")) |"
	done
done
for k in 1 10 100 1000; do
	echo "| pause, patch of $k function(s), 8 blocked threads, us | $(f ".pause_us.funcs_$k.p50") | $(f ".pause_us.funcs_$k.p99") | |"
done
for k in 1 10 100 1000; do
	goal=""
	[ "$k" = 10 ] && goal="<= 20 ms"
	echo "| opus apply end to end, $k function(s), ms | $(f ".apply_e2e_ms.funcs_$k.p50") | $(f ".apply_e2e_ms.funcs_$k.p99") | $goal |"
done
echo "| patched call, ns (native $(f .call_ns.native), patched $(f .call_ns.patched)) | $(f .call_overhead_ns) | | <= 1 ns |"
echo "| nginx, failed requests in 20 opus apply/revert cycles (of $(f .nginx.opus.requests)) | $(f .nginx.opus.failed_requests) | | 0 |"
echo "| nginx, failed requests in a stop + start (of $(f .nginx.restart.requests)); serving again after $(f .nginx.restart.recover_ms) ms | $(f .nginx.restart.failed_requests) | | |"
echo "| nginx, failed requests in a binary upgrade (of $(f .nginx.binary_upgrade.requests)) | $(f .nginx.binary_upgrade.failed_requests) | | |"
echo "| opus build / compiling the file (one-file fix: $(f .build.one_file.opus_build_ms) ms / $(f .build.one_file.compile_ms) ms) | $(f .build.one_file_ratio) | | <= 3 |"
echo "| opus build / full rebuild ($(f .build.one_file.full_rebuild_ms) ms) | $(f .build.full_rebuild_ratio) | | |"
for k in $(jq -r '.fleet // {} | keys[]' "$r" | sort -V); do
	goal=""
	case "$k" in n4000_*) goal="libpulp's published figure: 4000 processes in 6 s" ;; esac
	echo "| opus apply --all, $(f ".fleet.$k.processes") processes, ${k#*_} (patched $(f ".fleet.$k.patched")), ms | $(f ".fleet.$k.apply_ms") | | $goal |"
done
for m in netlink polling; do
	echo "| opus daemon ($m): process launch to patched, ms ($(f ".daemon.$m.patched") of $(f ".daemon.$m.launched")) | $(f ".daemon.$m.launch_to_patched_ms.p50") | $(f ".daemon.$m.launch_to_patched_ms.p99") | <= 100 ms after the mapping appears |"
done
echo
echo "Phases of opus apply (10 functions, mean of the runs, us): $(jq -c '.apply_phases_us' "$r")"
