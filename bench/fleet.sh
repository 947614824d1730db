#!/usr/bin/env bash
# Many processes: opus apply --all over N sleeping processes that map
# libauth.so (N=100, 1000, 4000 by default; FLEET_SIZES to change), with one
# worker and with one per CPU; then opus daemon's latency from a process's
# launch to its being patched, with netlink and with polling. Writes the
# figures into $1 (a results.json, created if missing). Asserts nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=$ROOT/build/opus
OUT=$ROOT/build/bench/fleet
RESULTS=${1:-$ROOT/build/bench/results.json}
SIZES=${FLEET_SIZES:-100 1000 4000}
PROBES=${PROBES:-30}
mkdir -p "$OUT"
[ -e "$RESULTS" ] || echo '{}' >"$RESULTS"
put() { jq "$1" "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"; }
pctl() {
	sort -n | awk '{v[NR] = $1} END {
		i50 = int((NR + 1) / 2); i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR;
		printf "{\"p50\": %s, \"p99\": %s, \"max\": %s}\n", v[i50], v[i99], v[NR] }'
}

# libauth.so with auth_check and compare as functions of their own, the
# fix of tests/targets/libauth/fix-check.diff, and the two programs.
S=$OUT/src
rm -rf "$S" && mkdir -p "$S"
cp "$ROOT"/tests/targets/libauth/auth.[ch] "$ROOT"/bench/sleeper.c "$ROOT"/bench/probe.c "$S/"
printf '[{"directory": "%s", "file": "auth.c", "arguments": ["gcc", "-O2", "-g", "-fPIC", "-fno-inline", "-c", "auth.c", "-o", "auth.o"]}]\n' \
	"$S" >"$S/compile_commands.json"
(
	cd "$S"
	gcc -O2 -g -fPIC -fno-inline -c auth.c -o auth.o
	gcc -shared -Wl,-soname,libauth.so auth.o -o libauth.so
	for p in sleeper probe; do gcc -O2 $p.c -L. -lauth -Wl,-rpath,"$S" -o $p; done
)
"$OPUS" build --source "$S" --diff "$ROOT/tests/targets/libauth/fix-check.diff" \
	--binary "$S/libauth.so" --id fleet-fix -o "$OUT/fix.opatch" >/dev/null

others=$("$OPUS" apply --all --dry-run --json "$OUT/fix.opatch" | jq '[.processes[] | select(.state != "not checked")] | length')
[ "$others" = 0 ] || { echo "fleet: $others process(es) already map $S/libauth.so; stop them first" >&2; exit 1; }

pids=()
grow_to() {
	while [ "${#pids[@]}" -lt "$1" ]; do
		"$S/sleeper" &
		pids+=($!)
	done
	# Wait until every one has mapped the library.
	for _ in $(seq 600); do
		[ "$(printf '/proc/%s/maps\n' "${pids[@]}" | xargs grep -l "$S/libauth.so" 2>/dev/null |
			wc -l)" -ge "$1" ] && break
		sleep 0.1
	done
}
cleanup() { kill "${pids[@]}" 2>/dev/null || true; pkill -f "$OPUS daemon" 2>/dev/null || true; }
trap cleanup EXIT

fleet='{}'
for n in $SIZES; do
	grow_to "$n"
	for jobs in 1 "$(nproc)"; do
		"$OPUS" apply --all --jobs "$jobs" --json "$OUT/fix.opatch" >"$OUT/apply.$n.$jobs.json"
		"$OPUS" revert --all --jobs "$jobs" --json fleet-fix >"$OUT/revert.$n.$jobs.json"
		patched=$(jq .summary.patched "$OUT/apply.$n.$jobs.json")
		ms=$(jq .summary.total_ms "$OUT/apply.$n.$jobs.json")
		rms=$(jq .summary.total_ms "$OUT/revert.$n.$jobs.json")
		fleet=$(jq --arg k "n${n}_jobs$jobs" --argjson p "$patched" --argjson ms "$ms" \
			--argjson rms "$rms" --argjson n "$n" \
			'. + {($k): {processes: $n, patched: $p, apply_ms: $ms, revert_ms: $rms,
			             apply_ms_per_process: ($ms / $n)}}' <<<"$fleet")
		printf 'apply --all: %5d processes, %d job(s): %d patched in %.0f ms (%.2f ms each); revert %.0f ms\n' \
			"$n" "$jobs" "$patched" "$ms" "$(jq -n "$ms / $n")" "$rms"
	done
done
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()
put ".fleet = $fleet"

# Daemon latency: launch probes one by one with the patch installed.
store=$OUT/store
rm -rf "$store"
"$OPUS" install --store "$store" "$OUT/fix.opatch" >/dev/null
daemon='{}'
for mode in netlink polling; do
	args=()
	[ "$mode" = polling ] && args=(--no-netlink)
	"$OPUS" daemon --store "$store" "${args[@]}" >"$OUT/daemon.$mode.log" 2>&1 &
	dpid=$!
	sleep 1
	: >"$OUT/latency.$mode"
	for _ in $(seq "$PROBES"); do
		"$S/probe" "$(date +%s%N)" >>"$OUT/latency.$mode" || true
		sleep 0.05
	done
	kill "$dpid"
	wait "$dpid" || true
	grep -c timeout "$OUT/latency.$mode" >/dev/null && echo "  ($mode: some probes were never patched)"
	lat=$(grep -v timeout "$OUT/latency.$mode" | awk '{print $1 / 1000}' | pctl)
	got=$(grep -vc timeout "$OUT/latency.$mode" || true)
	daemon=$(jq --arg m "$mode" --argjson l "$lat" --argjson got "$got" --argjson n "$PROBES" \
		'. + {($m): {launch_to_patched_ms: $l, patched: $got, launched: $n}}' <<<"$daemon")
	echo "daemon ($mode): launch to patched, ms: $lat ($got of $PROBES patched)"
done
put ".daemon = $daemon"
