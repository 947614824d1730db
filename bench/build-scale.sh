#!/usr/bin/env bash
# Build time against the diff's size (issue 12: it must grow linearly).
# Programs of 1..20 units of 1000 functions, every function changed: from
# 1,000 to 20,000 functions and 2,000 to 40,000 diff lines. Beside each
# build, the compile floor measured in the same run: every unit compiled
# three times (original, patched, as built), two at a time as opus does,
# with nothing else. Writes $OUT/build-scale.json; asserts nothing.
#   build-scale.sh OPUS OUT [UNITS...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=$1 OUT=$2
shift 2
UNITS=("${@:-1 2 5 10 20}")
read -r -a UNITS <<<"${UNITS[*]}"
NF=1000
W=$OUT/scale
mkdir -p "$W"
json="[]"
for nu in "${UNITS[@]}"; do
	p=$W/p$nu
	bash "$ROOT/bench/gen-scale.sh" "$p" "$nu" "$NF" "$NF"
	lines=$(wc -l <"$p.diff")
	# The floor: 3 compiles of every unit, $(nproc) at a time.
	start=$(date +%s%N)
	for _ in 1 2 3; do
		(cd "$p" && printf '%s\n' unit*.c |
			xargs -P "$(nproc)" -I{} gcc -O2 -g -c {} -o /dev/null)
	done
	floor_ms=$((($(date +%s%N) - start) / 1000000))
	start=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$W/rss" "$OPUS" build --source "$p" --diff "$p.diff" \
		--binary "$p/program" -o "$W/p$nu.opatch" >"$W/build$nu.out" 2>"$W/build$nu.err"
	build_ms=$((($(date +%s%N) - start) / 1000000))
	replaced=$(grep -c '^replaced' "$W/build$nu.out")
	rss=$(tail -1 "$W/rss")
	printf '%6d functions, %6d diff lines: build %7.1f s (%5.2f ms/function), compile floor %7.1f s, ratio %.2f, opus peak RSS %d MB\n' \
		"$replaced" "$lines" "$(echo "$build_ms / 1000" | bc -l)" "$(echo "$build_ms / $replaced" | bc -l)" \
		"$(echo "$floor_ms / 1000" | bc -l)" "$(echo "$build_ms / $floor_ms" | bc -l)" $((rss / 1024))
	json=$(jq --argjson u "$nu" --argjson f "$replaced" --argjson l "$lines" --argjson b "$build_ms" \
		--argjson c "$floor_ms" --argjson r "$rss" \
		'. + [{units: $u, functions: $f, diff_lines: $l, build_ms: $b, compile_floor_ms: $c, ratio: ($b / $c), peak_rss_kb: $r}]' <<<"$json")
	rm -rf "$p" "$p.fixed"
done
echo "$json" >"$OUT/build-scale.json"
