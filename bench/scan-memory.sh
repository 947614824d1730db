#!/usr/bin/env bash
# What the scan for suspended stacks adds to the pause: tests/targets/coro
# (its assembly switcher, so that only --scan-memory scans) with SIZES
# megabytes of touched heap, patched with and without --scan-memory, RUNS
# times each, beside its floor measured in the same run: the same memory
# read once by one thread (bench/readfloor.c). bench/scan-memory.sh OPUS
# OUT [SIZES...]; writes OUT/scan-memory.json. Asserts nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=$1 OUT=$2
shift 2
SIZES=${*:-0 256 1024}
RUNS=${RUNS:-5}
W=$OUT/scan-memory
rm -rf "$W" && mkdir -p "$W/src"
cp "$ROOT/tests/targets/coro/coro.c" "$W/src/"
gcc -O2 -Wall -o "$W/readfloor" "$ROOT/bench/readfloor.c"
FLAGS=(-O2 -g -fPIE -pie -DCORO_ASM)
(cd "$W/src" && gcc "${FLAGS[@]}" -c coro.c && gcc "${FLAGS[@]}" coro.o -o coro)
printf '[{"directory": "%s", "file": "coro.c", "arguments": ["gcc", %s, "-c", "coro.c", "-o", "coro.o"]}]\n' \
	"$W/src" "$(printf '"%s", ' "${FLAGS[@]}" | sed 's/, $//')" >"$W/src/compile_commands.json"
"$OPUS" build --source "$W/src" --diff "$ROOT/tests/targets/coro/step-3.diff" \
	--binary "$W/src/coro" -o "$W/step.opatch" >/dev/null

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# pause_us PID [--scan-memory]: the median pause of RUNS applies.
pause_us() {
	local pid=$1 i
	shift
	for i in $(seq "$RUNS"); do
		"$OPUS" apply --json "$@" "$pid" "$W/step.opatch" | jq '.stats.pause_us'
		"$OPUS" revert "$pid" >/dev/null
	done | median
}

echo '[]' >"$OUT/scan-memory.json"
for mb in $SIZES; do
	"$W/src/coro" "$mb" >"$W/out" & # mb megabytes of written heap
	pid=$!
	for _ in $(seq 200); do grep -q ready "$W/out" && break; sleep 0.05; done
	# The coroutine leaves step for good: the scan then finds nothing.
	exec 3<>"/dev/tcp/127.0.0.1/$(awk '/^ready/ {print $2}' "$W/out")"
	echo FINISH >&3
	read -r _ <&3
	exec 3<&-
	plain=$(pause_us "$pid")
	scanned=$(pause_us "$pid" --scan-memory)
	read -r floor bytes < <("$W/readfloor" "$pid" "$RUNS")
	rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	printf '%6s MB touched (RSS %5s MB): pause %8.0f us, with --scan-memory %9.0f us (+%.1f ms per 100 MB); reading it once, one thread: %9.0f us (scan added / read = %.2fx)\n' \
		"$mb" "$rss" "$plain" "$scanned" \
		"$(echo "if ($mb > 0) ($scanned - $plain) / 1000 * 100 / $mb else 0" | bc -l)" \
		"$floor" "$(echo "($scanned - $plain) / $floor" | bc -l)"
	jq ". + [{heap_mb: $mb, rss_mb: $rss, pause_us: $plain, scan_pause_us: $scanned,
		read_floor_us: $floor, read_floor_bytes: $bytes}]" \
		"$OUT/scan-memory.json" >"$OUT/scan-memory.json.tmp"
	mv "$OUT/scan-memory.json.tmp" "$OUT/scan-memory.json"
done
