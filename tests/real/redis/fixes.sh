#!/usr/bin/env bash
# Debian 12's own security fixes for redis, each built with opus from
# Debian's patch file against the tree the server runs (tests/real/redis/
# build.sh) and applied live, alone, to a running redis with a warm cache,
# two I/O threads and its job threads, under load; then reverted under
# load. A fix whose build warns that a function it replaces never returns
# (the fix cannot take effect there) is built again as the warning says,
# with that function left its old code. Checks: every fix either builds and
# goes in and out live with no request failed and every warm key kept, or
# is refused by opus's analysis with its reasons; the server answers
# throughout. Writes build/real/redis-fixes.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}/redis
HERE=$ROOT/tests/real/redis
JSON=$WORK/../redis-fixes.json
WARM=5000
mkdir -p "$WORK/logs" "$WORK/fixes"
# shellcheck source=tests/real/port.sh
. "$ROOT/tests/real/port.sh"
# shellcheck source=tests/real/redis/server.sh
. "$HERE/server.sh"

fail() {
	echo "real redis fixes: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
exe=$tree/src/redis-server
rc() { python3 "$HERE/rc.py" "$@"; }
cli() { "$tree/src/redis-cli" -p "$port" "$@"; }

read -r pid port < <(start_server)
trap 'touch "$WORK/stop"; kill $pid 2>/dev/null || true' EXIT
[ "$(rc warm "$port" $WARM)" = $WARM ] || fail "the warm cache was not stored"

# build_fix NAME PATCH [BUILD-ARGS]: 0 built, 3 refused by the analysis.
build_fix() {
	local name=$1 patch=$2 status=0
	shift 2
	"$OPUS" build --source "$tree" --diff "$patch" --binary "$exe" --id "$name" "$@" \
		-o "$WORK/fixes/$name.opatch" >"$WORK/fixes/$name.build" 2>&1 || status=$?
	return $status
}

results=()
applied=0 refused=0
for patch in $(grep -- 'CVE-' "$tree/debian/patches/series"); do
	name=$(basename "$patch" .patch)
	status=0
	build_fix "$name" "$tree/debian/patches/$patch" || status=$?
	# The build's advice for a function that never returns, taken.
	keep=$(sed -n 's/.*leave \([A-Za-z0-9_.]*\) its old code with --exclude .*/\1/p' \
		"$WORK/fixes/$name.build" | sort -u)
	if [ "$status" = 0 ] && [ -n "$keep" ]; then
		args=()
		for f in $keep; do args+=(--exclude "$f"); done
		build_fix "$name" "$tree/debian/patches/$patch" "${args[@]}" || status=$?
	fi
	if [ "$status" = 3 ]; then
		why=$(grep -E ': error: ' "$WORK/fixes/$name.build" | sed 's/^ *//' | head -3 | paste -sd ';' -)
		[ -n "$why" ] || fail "$name: refused with no reason: $(tail -3 "$WORK/fixes/$name.build")"
		results+=("$(jq -n --arg n "$name" --arg why "$why" '{fix: $n, refused: $why}')")
		refused=$((refused + 1))
		continue
	fi
	[ "$status" = 0 ] || fail "$name: build failed ($status): $(tail -3 "$WORK/fixes/$name.build")"
	under_load "$port" "$OPUS" apply --json "$pid" "$WORK/fixes/$name.opatch" >"$WORK/fixes/$name.apply" ||
		fail "$name: apply: $(cat "$WORK/fixes/$name.apply")"
	ar=$REQUESTS af=$FAILED
	[ "$(cli eval 'return redis.status_reply("up")' 0)" = up ] || fail "$name: no answer patched"
	under_load "$port" "$OPUS" revert "$pid" >"$WORK/fixes/$name.revert" 2>&1 ||
		fail "$name: revert: $(cat "$WORK/fixes/$name.revert")"
	rr=$REQUESTS rf=$FAILED
	[ "$af" = 0 ] && [ "$rf" = 0 ] ||
		fail "$name: requests failed: $af of $ar in the apply, $rf of $rr in the revert"
	[ "$(rc check "$port" $WARM)" = $WARM ] || fail "$name: the warm cache lost keys"
	results+=("$(jq -n --arg n "$name" --arg kept "$keep" --argjson ar "$ar" --argjson rr "$rr" \
		--slurpfile a "$WORK/fixes/$name.apply" \
		'{fix: $n, functions: ($a[0].functions | if type == "array" then length else . end),
		  mode: $a[0].stats.mode, pause_us: $a[0].stats.pause_us,
		  kept_old: ($kept | split("\n") | map(select(. != ""))),
		  requests: {apply: $ar, revert: $rr}, failed: 0}')")
	applied=$((applied + 1))
done
[ -d "/proc/$pid" ] || fail "the server is gone"
grep -q '/memfd:opus-livepatch:' "/proc/$pid/maps" && fail "a patch is still mapped"
[ $((applied + refused)) -gt 0 ] || fail "no CVE fix in $tree/debian/patches/series"

printf '%s\n' "${results[@]}" | jq -s --arg date "$(date -u +%F)" \
	--arg version "$(cat "$WORK/source/version")" \
	'{date: $date, version: $version, fixes: .}' >"$JSON"
echo "redis fixes: $applied of Debian's CVE fixes for redis $(cat "$WORK/source/version") applied live and reverted under load (0 requests failed, $WARM warm keys kept); $refused refused by the analysis, with its reasons"
bash "$ROOT/tests/real/render.sh" >"$ROOT/docs/real-world.md"
