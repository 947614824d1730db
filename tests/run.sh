#!/usr/bin/env bash
# Runs every integration test against build/opus, then again against the
# AddressSanitizer + UndefinedBehaviorSanitizer build when it exists.
# tests/run.sh PATTERN runs only the tests whose name matches the glob
# (e.g. 'test_extern_*'); OPUS_TEST_PLAIN_ONLY=1 skips the sanitized run;
# OPUS_PLAIN=PATH tests another build of opus.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PATTERN=${1:-}

passed=0
failed=0
failures=()

run_suite() {
	local opus=$1 label=$2 t name
	for t in tests/integration/test_*.sh; do
		# Each file defines test_* functions; run each in its own subshell.
		for name in $(bash -c "source tests/lib.sh; source '$t'; declare -F" |
			awk '{print $3}' | grep '^test_'); do
			# shellcheck disable=SC2053
			[[ $name == ${PATTERN:-test_*} ]] || continue
			local work
			work=$(mktemp -d /tmp/opus-test.XXXXXX)
			if (
				set -e
				export OPUS=$opus WORK=$work
				source tests/lib.sh
				source "$t"
				trap stop_all EXIT
				"$name"
			) >"$work/log" 2>&1; then
				passed=$((passed + 1))
				echo "ok   $label $name"
				rm -rf "$work"
			else
				failed=$((failed + 1))
				failures+=("$label $name")
				echo "FAIL $label $name"
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
