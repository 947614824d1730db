#!/usr/bin/env bash
# make fuzz: builds the libFuzzer harnesses (clang, ASan+UBSan) into
# build-fuzz, makes a seed corpus from real inputs (patch files opus builds
# and signs here, the test suite's diffs and compile databases, this
# machine's /proc/PID/maps, a live registry record), then runs each harness
# for FUZZ_SECONDS (default 60). Crashes land in build-fuzz/crashes; any
# crash fails the run. Figures in build-fuzz/fuzz.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build-fuzz
SECONDS_EACH=${FUZZ_SECONDS:-60}
HARNESSES=${FUZZ_HARNESSES:-opatch cdb diff maps registry}
[ -e "$B/build.ninja" ] ||
	CC=clang meson setup "$B" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
		>/dev/null
ninja -C "$B" >/dev/null
mkdir -p "$B/crashes"

seeds=$B/seeds
if [ ! -e "$seeds/.done" ]; then
	rm -rf "$seeds"
	mkdir -p "$seeds"/{opatch,cdb,diff,maps,registry}
	work=$(mktemp -d)
	(
		export WORK=$work OPUS=$ROOT/build/opus
		# shellcheck source=../tests/lib.sh
		source "$ROOT/tests/lib.sh"
		LIB_CFLAGS=-fno-inline build_libauth "$work" -fPIE -pie >/dev/null
		build_authsrv "$work/srv" -O2 -g >/dev/null
		"$OPUS" build --source "$work/src" --diff "$TARGETS/libauth/fix-check.diff" \
			--binary "$work/src/libauth.so" -o "$seeds/opatch/libauth.opatch" >/dev/null
		"$OPUS" build --source "$work/srv/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
			--binary "$work/srv/src/authsrv" -o "$seeds/opatch/authsrv.opatch" >/dev/null
		(cd "$work" && "$OPUS" keygen k >/dev/null)
		"$OPUS" sign "$seeds/opatch/libauth.opatch" --key "$work/k.key" \
			-o "$seeds/opatch/libauth-signed.opatch" >/dev/null
		cp "$work/src/compile_commands.json" "$seeds/cdb/libauth.json"
		cp "$work/srv/src/compile_commands.json" "$seeds/cdb/authsrv.json"
		# A patched process: its maps and its registry record.
		"$work/src/authpoll" "" >/dev/null &
		pid=$!
		sleep 0.3
		"$OPUS" apply "$pid" "$seeds/opatch/libauth.opatch" >/dev/null
		cp "/proc/$pid/maps" "$seeds/maps/patched"
		m=$(awk '/memfd:opus-livepatch:/ {print $1; exit}' "/proc/$pid/maps")
		[ -n "$m" ] || { echo "fuzz seeds: no opus mapping in process $pid" >&2; exit 1; }
		dd if="/proc/$pid/map_files/$m" bs=4096 count=1 status=none | tr -d '\0' \
			>"$seeds/registry/record"
		kill "$pid"
	)
	rm -rf "$work"
	for f in "$ROOT"/tests/targets/*/*.diff; do # names repeat across targets
		cp "$f" "$seeds/diff/$(basename "$(dirname "$f")")-$(basename "$f")"
	done
	for d in "$ROOT"/tests/analyze/*/; do cp "$d/fix.diff" "$seeds/diff/$(basename "$d").diff"; done
	for p in 1 $$ $(pgrep -n sshd || true); do
		cp "/proc/$p/maps" "$seeds/maps/pid$p" 2>/dev/null || true
	done
	touch "$seeds/.done"
fi

# fuzz_one HARNESS: runs it; writes $B/results/HARNESS.json; fails on a crash.
fuzz_one() {
	local h=$1 corpus=$B/corpus/$1 log=$B/fuzz_$1.log status=0 runs crashes cpu
	mkdir -p "$corpus" "$B/results"
	/usr/bin/time -f '%U %S' -o "$B/results/$h.time" \
		"$B/fuzz_$h" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$B/crashes/$h-" "$corpus" "$seeds/$h" \
		>"$log" 2>&1 || status=$?
	runs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log")
	crashes=$(find "$B/crashes" -name "$h-*" | wc -l)
	cpu=$(awk '{print $1 + $2}' "$B/results/$h.time" 2>/dev/null || echo 0)
	jq -n --arg h "$h" --argjson s "$SECONDS_EACH" --argjson runs "$runs" \
		--argjson crashes "$crashes" --argjson status "$status" --argjson cpu "${cpu:-0}" \
		--argjson corpus "$(find "$corpus" -type f | wc -l)" \
		'{harness: $h, seconds: $s, cpu_seconds: $cpu, executions: $runs, corpus: $corpus,
		  crashes: $crashes, exit: $status}' >"$B/results/$h.json"
	printf 'fuzz_%-9s %5ss (%.0f s CPU) %10s executions  %5s in corpus  %s crash(es)\n' "$h" \
		"$SECONDS_EACH" "${cpu:-0}" "$runs" "$(find "$corpus" -type f | wc -l)" "$crashes"
	if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
		tail -30 "$log"
		return 1
	fi
}

rm -f "$B"/results/*.json
failed=0
if [ -n "${FUZZ_PARALLEL:-}" ]; then
	# One process per harness, all at once, at the lowest priority.
	pids=()
	for h in $HARNESSES; do
		nice -n 19 bash -c "$(declare -f fuzz_one); B='$B' seeds='$seeds' SECONDS_EACH='$SECONDS_EACH' fuzz_one $h" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || failed=1; done
else
	for h in $HARNESSES; do fuzz_one "$h" || failed=1; done
fi
jq -s --arg date "$(date -u +%F)" --arg cpus "$(nproc)" \
	'{date: $date, cpus: ($cpus | tonumber), harnesses: .}' "$B"/results/*.json >"$B/fuzz.json"
[ "$failed" = 0 ] || { echo "fuzz: crashes found (build-fuzz/crashes)" >&2; exit 1; }
