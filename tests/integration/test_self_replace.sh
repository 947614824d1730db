# Every function of a program replaced by its own recompiled code while it
# runs, in every build flavour: the proof that the engine links every kind
# of reference right (tests/targets/kinds reaches each kind). Two instances
# of the same build answer the same requests; one is patched; their answers
# must stay the same, before, during and after, and after the revert.
K=$TARGETS/kinds

# drive PORT: every request of the script, one connection each.
drive() {
	local l a
	while read -r l; do
		exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf '%s\n' "$l" >&3
		IFS= read -r -t 10 a <&3 || a="(no answer)"
		exec 3<&-
		printf '%s -> %s\n' "$l" "$a"
	done <"$K/requests"
}

# same_answers ROUND: both instances answer the script alike.
same_answers() {
	drive "$PORT_A" >"$WORK/a.$1"
	drive "$PORT_B" >"$WORK/b.$1"
	diff "$WORK/b.$1" "$WORK/a.$1" >"$WORK/diff.$1" ||
		fail "round $1: the patched process answers differently: $(head -5 "$WORK/diff.$1")"
}

# busy_functions ERRFILE: the functions an apply refusal names as busy.
busy_functions() {
	sed -n 's/.* is inside \(.*\)$/\1/p' "$1" | sed 's/; also on a stack: /, /' |
		tr ',' '\n' | tr -d ' ' | grep . | sort -u
}

# replace_all OBJECT: a patch replacing every function of OBJECT, applied to
# A. The functions on a stack for good (main loops) are named by the
# refusal and kept; any other refusal fails the test.
replace_all() {
	local obj=$1 id excludes=() busy f
	id=$(basename "$obj" | tr -c 'A-Za-z0-9\n' '-')
	for _ in $(seq 3); do
		"$OPUS" build --replace-all --source "$WORK/src" --binary "$obj" --id "$id" \
			"${excludes[@]}" -o "$WORK/$id.opatch" >"$WORK/$id.build"
		assert_eq "[]" "$("$OPUS" inspect --json "$WORK/$id.opatch" |
			jq -c '[.functions[] | select(.cold or .old_copy | not) | .name]')" \
			"functions of $obj without a copy of their old code"
		if "$OPUS" apply --timeout 0.5 "$PID_A" "$WORK/$id.opatch" 2>"$WORK/$id.err"; then
			printf '| %s | %s | %s | %s | %s |\n' "$FLAVOUR" "$(basename "$obj")" \
				"$(grep -c '^replaced' "$WORK/$id.build")" \
				"$(printf '%s\n' "${excludes[@]}" | grep -v '^--exclude$' | paste -sd' ')" \
				"$(sed -n 's/^info *\([^ ]*\) .*too small for a jump.*/\1/p' "$WORK/$id.build" |
					paste -sd' ')" >>"$WORK/replaced"
			return 0
		fi
		busy=$(busy_functions "$WORK/$id.err")
		[ -n "$busy" ] || fail "apply of every function of $obj: $(cat "$WORK/$id.err")"
		for f in $busy; do
			excludes+=(--exclude "$f")
		done
	done
	fail "$obj: still busy after ${excludes[*]}"
}

self_replace_cycle() {
	local mode=$1
	FLAVOUR="$*"
	build_kinds "$WORK" "$@"
	KINDS_MARK=1 start "$WORK/src/kinds"
	PID_A=$PID PORT_A=$PORT
	KINDS_MARK=1 start "$WORK/src/kinds"
	PORT_B=$PORT
	same_answers 1
	replace_all "$WORK/src/kinds"
	[ "$mode" = static ] || replace_all "$WORK/src/libkinds.so"
	same_answers 2
	same_answers 3
	assert_running "$PID_A"
	"$OPUS" revert "$PID_A"
	[ "$mode" = static ] || "$OPUS" revert "$PID_A"
	assert_eq 0 "$(opus_mappings "$PID_A")" "opus mappings after the revert"
	same_answers 4
	assert_running "$PID_A"
	cat "$WORK/replaced"
	# The figures of docs/real-world.md (tests/real/self-render.sh).
	[ -z "${OPUS_KINDS_RESULTS:-}" ] || cat "$WORK/replaced" >>"$OPUS_KINDS_RESULTS"
}

test_self_replace_pie_O2() {
	self_replace_cycle pie -O2 -g
}

test_self_replace_nonpie_O0_frame_pointer() {
	self_replace_cycle nopie -O0 -g -fno-omit-frame-pointer
}

test_self_replace_pie_O3_hardened() {
	self_replace_cycle pie -O3 -g -fcf-protection=full -fstack-protector-strong -D_FORTIFY_SOURCE=3
}

test_self_replace_nonpie_O2_function_sections() {
	self_replace_cycle nopie -O2 -g -fcf-protection=full -ffunction-sections -Wl,--gc-sections
}

test_self_replace_static_O2() {
	self_replace_cycle static -O2 -g -fstack-protector-strong
}

# The same through the patch's copies of the old code instead of the new:
# each copy is linked to the running program as its original is.
test_self_replace_through_copies_of_old_code_pie_O2() {
	OPUS_TEST_OLD_COPIES=1 self_replace_cycle pie -O2 -g
}

test_self_replace_through_copies_of_old_code_static_O2() {
	OPUS_TEST_OLD_COPIES=1 self_replace_cycle static -O2 -g -fstack-protector-strong
}

test_self_replace_pie_O1_fortify() {
	self_replace_cycle pie -O1 -g -D_FORTIFY_SOURCE=3 -fno-omit-frame-pointer
}

# --exclude keeps a function out with its cold part: the part, replaced on
# its own, brought its function back in (memcached's worker_libevent, a
# thread's loop, stayed in the patch and no apply could finish).
test_an_excluded_function_stays_out_with_its_cold_part() {
	build_kinds "$WORK" pie -O2 -g
	nm "$WORK/src/kinds" | grep -q ' kinds_cold\.cold' || fail "kinds_cold has no cold part here"
	"$OPUS" build --replace-all --source "$WORK/src" --binary "$WORK/src/kinds" \
		--exclude kinds_cold -o "$WORK/all.opatch" >"$WORK/all.build"
	assert_eq "[]" "$("$OPUS" inspect --json "$WORK/all.opatch" |
		jq -c '[.functions[] | select(.name | startswith("kinds_cold")) | .name]')" \
		"kinds_cold or its cold part in the patch"
	assert_eq true "$(grep -q '^replaced ' "$WORK/all.build" && echo true)" \
		"the other functions replaced"
}
