#!/usr/bin/env bash
# Runs every integration test against build/opus, then again against the
# AddressSanitizer + UndefinedBehaviorSanitizer build when it exists.
# tests/run.sh NAME... runs only the tests whose name matches one of the
# globs (e.g. test_same_patch_twice_is_refused 'test_extern_*');
# OPUS_TEST_PLAIN_ONLY=1 skips the sanitized run;
# OPUS_PLAIN=PATH tests another build of opus.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PATTERNS=("$@")
[ $# -gt 0 ] || PATTERNS=('test_*')

passed=0
failed=0
failures=()

# Does the test name match one of the patterns?
chosen() {
	local p
	for p in "${PATTERNS[@]}"; do
		# shellcheck disable=SC2053
		[[ $1 == $p ]] && return 0
	done
	return 1
}

# Seconds since START (date +%s%N), to a tenth: where the suite's time goes.
elapsed() {
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

run_suite() {
	local opus=$1 label=$2 t name
	for t in tests/integration/test_*.sh; do
		# Each file defines test_* functions; run each in its own subshell.
		for name in $(bash -c "source tests/lib.sh; source '$t'; declare -F" |
			awk '{print $3}' | grep '^test_'); do
			chosen "$name" || continue
			local work start took
			work=$(mktemp -d /tmp/opus-test.XXXXXX)
			start=$(date +%s%N)
			if (
				set -e
				export OPUS=$opus WORK=$work
				# Each test its own analysis cache: none reuses another's.
				export OPUS_CACHE_DIR=$work/cache
				source tests/lib.sh
				source "$t"
				trap stop_all EXIT
				"$name"
			) >"$work/log" 2>&1 && [ ! -e "$work/.no-such-command" ]; then
				took=$(elapsed "$start")
				passed=$((passed + 1))
				echo "ok   $label $name ($took s)"
				rm -rf "$work"
			else
				took=$(elapsed "$start")
				failed=$((failed + 1))
				failures+=("$label $name")
				echo "FAIL $label $name ($took s)"
				sed 's/^/    /' "$work/log" | tail -40
			fi
		done
	done
}

run_suite "${OPUS_PLAIN:-$ROOT/build/opus}" plain
if [ -x "$ROOT/build-asan/opus" ] && [ -z "${OPUS_TEST_PLAIN_ONLY:-}" ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	run_suite "$ROOT/build-asan/opus" asan
fi

for f in "${failures[@]}"; do
	echo "failed: $f"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
