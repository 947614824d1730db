# shellcheck shell=bash
# replace_all ID PID PATCH LOG [BUILD-ARGS...]: builds PATCH with opus build
# --replace-all BUILD-ARGS, every function but those some thread of PID
# never leaves: a stop-world apply that is refused names them, they are
# excluded and the build runs again (four rounds at most). Sets EXCLUDES
# (the --exclude options) and REPLACED (how many functions the patch
# replaces); any other refusal calls fail. Sourced by the self-replacement
# suites, which define OPUS and fail.
replace_all() {
	local id=$1 pid=$2 patch=$3 log=$4 round busy f
	shift 4
	EXCLUDES=()
	for round in 1 2 3 4; do
		"$OPUS" build --replace-all "$@" --id "$id" "${EXCLUDES[@]}" -o "$patch" >"$log" 2>&1 ||
			fail "build of every function: $(tail -3 "$log")"
		if "$OPUS" apply --stop-world --timeout 1 "$pid" "$patch" >/dev/null 2>"$log.probe"; then
			"$OPUS" revert "$pid" >/dev/null || fail "revert of the probe"
			break
		fi
		busy=$(busy_functions "$log.probe")
		[ -n "$busy" ] || fail "apply of every function: $(cat "$log.probe")"
		for f in $busy; do
			EXCLUDES+=(--exclude "$f")
		done
		[ "$round" != 4 ] || fail "still busy after ${EXCLUDES[*]}"
	done
	REPLACED=$(grep -c '^replaced' "$log")
}

# busy_functions ERRFILE: the functions an apply refusal names as busy.
busy_functions() {
	sed -n 's/.* is inside \(.*\)$/\1/p' "$1" | sed 's/; also on a stack: /, /' |
		tr ',' '\n' | tr -d ' ' | grep . | sort -u
}
