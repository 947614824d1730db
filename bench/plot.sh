#!/usr/bin/env bash
# Plots results.json ($1) into $2/pause.png and $2/patch-size.png.
set -euo pipefail
r=$1 out=$2
for mode in blocked busy; do
	for n in 1 8 64 256; do
		echo "$n $(jq ".pause_us.threads_${n}_$mode.p50" "$r") $(jq ".floor_us.threads_${n}_$mode.p50" "$r")"
	done >"$out/pause-$mode.dat"
done
for k in 1 10 100 1000; do
	echo "$k $(jq ".pause_us.funcs_$k.p50" "$r") $(jq ".apply_e2e_ms.funcs_$k.p50" "$r")"
done >"$out/patch-size.dat"
gnuplot <<GP
set terminal png size 800,500
set output "$out/pause.png"
set title "Target pause (p50) against threads"
set logscale xy
set xlabel "threads"
set ylabel "microseconds"
set key left top
plot "$out/pause-blocked.dat" using 1:2 with linespoints title "opus, threads blocked", \
     "$out/pause-blocked.dat" using 1:3 with linespoints title "ptrace floor, blocked", \
     "$out/pause-busy.dat" using 1:2 with linespoints title "opus, threads busy", \
     "$out/pause-busy.dat" using 1:3 with linespoints title "ptrace floor, busy"
set output "$out/patch-size.png"
set title "Patch size: pause (p50, us) and opus apply end to end (p50, ms), 8 threads"
set xlabel "functions in the patch"
set ylabel ""
plot "$out/patch-size.dat" using 1:2 with linespoints title "pause us", \
     "$out/patch-size.dat" using 1:3 with linespoints title "apply ms"
GP
# nginx under load: requests per second in 100 ms buckets, disruption at 1 s.
nf=$(dirname "$r")/nginx-figures
if [ -e "$nf/rps.opus.dat" ]; then
	gnuplot <<GP
set terminal png size 800,500
set output "$out/nginx-rps.png"
set title "nginx under load: answered requests per second (100 ms buckets)"
set xlabel "ms since the load started (the change starts at about 1000)"
set ylabel "requests/s"
set yrange [0:*]
plot "$nf/rps.opus.dat" using 1:(\$2*10) with lines title "opus: 20 apply/revert cycles", \
     "$nf/rps.restart.dat" using 1:(\$2*10) with lines title "stop + start", \
     "$nf/rps.upgrade.dat" using 1:(\$2*10) with lines title "binary upgrade"
GP
fi
