# A fix in a header reaches every translation unit that includes it.
D=$TARGETS/kvsrv

test_header_fix_rebuilds_every_including_unit() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/kvsrv"
	assert_eq STORED "$(req 'PUT abcdefghij 1')" "over-long key accepted before the fix"
	assert_eq STORED "$(req 'PUT short 2')" "normal key"
	assert_eq 1 "$(req 'GET abcdefghij')" "over-long key readable before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-key-length.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch" >"$WORK/build.out"
	assert_contains "replaced kv_put (store.c)" "$(cat "$WORK/build.out")" "store.c rebuilt"
	assert_contains "(server.c)" "$(cat "$WORK/build.out")" "server.c rebuilt"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq REFUSED "$(req 'PUT abcdefghik 3')" "over-long key refused after the fix"
	assert_eq BADKEY "$(req 'GET abcdefghij')" "over-long key rejected by GET after the fix"
	assert_eq 2 "$(req 'GET short')" "stored data kept"
	assert_eq 2 "$(req COUNT)" "store count kept (static in store.c)"
	"$OPUS" revert "$PID"
	assert_eq 1 "$(req 'GET abcdefghij')" "old behaviour after revert"
	assert_running "$PID"
}

# A fix that changes a global function's signature (kv_put gets the key's
# length) and its one caller in another unit: the analysis alone cannot see
# every caller, the binary can. kvsrv does not export kv_put, never takes
# its address, and calls it only from serve (handle inlined), which the
# patch replaces: the build proves it and the fix goes in live.
test_global_signature_change_applies_when_the_binary_shows_every_caller_replaced() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/kvsrv"
	local pid=$PID
	assert_eq STORED "$(req 'PUT abcdefghij 1')" "a 10-byte key is taken before the fix"
	local status=0
	"$OPUS" analyze --json --source "$WORK/src" --diff "$D/put-length.diff" >"$WORK/an.json" ||
		status=$?
	assert_eq 3 "$status" "analyze, from the source alone, reports the error"
	assert_eq '{"unsafe":false,"callers_to_prove":["kv_put"]}' \
		"$(jq -c '{unsafe, callers_to_prove}' "$WORK/an.json")" "and leaves it to the binary"
	"$OPUS" build --source "$WORK/src" --diff "$D/put-length.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>"$WORK/build.err" ||
		fail "the build refused a signature change whose callers are all replaced: $(cat "$WORK/build.err")"
	assert_contains "finds no old caller in the binary" "$(cat "$WORK/build.out")" \
		"the analysis says what it leaves to the binary"
	assert_contains "the signature change is safe live: proven in kvsrv" "$(cat "$WORK/build.out")" \
		"the build says why it holds"
	readelf -p .opus.meta "$WORK/fix.opatch" | grep -q "warning: signature-change:.*proven in kvsrv" ||
		fail "the patch does not carry the proof"
	"$OPUS" apply "$pid" "$WORK/fix.opatch" >/dev/null
	assert_eq REFUSED "$(req 'PUT abcdefghik 2')" "the new kv_put refuses a 10-byte key"
	assert_eq STORED "$(req 'PUT short 3')" "the new caller passes the new arguments"
	assert_eq 3 "$(req 'GET short')" "stored through the new code"
	assert_eq 1 "$(req 'GET abcdefghij')" "data stored before the fix kept"
	"$OPUS" revert "$pid" >/dev/null
	assert_eq STORED "$(req 'PUT abcdefghik 4')" "old behaviour after revert"
	assert_running "$pid"
	[ "$PID" = "$pid" ] || fail "the pid changed"
}

# The proof holds whatever the build's options: -O0 keeps handle out of
# line, and a position-dependent executable pads kv_put's entry with a nop
# that ends in four zero bytes (once taken for a reference to it).
test_global_signature_change_proven_at_every_optimisation() {
	local flags n=0
	for flags in "-O0 -g" "-O2 -g -fno-pie -no-pie" "-O3 -g -fPIE -pie"; do
		# shellcheck disable=SC2086
		build_target kvsrv "$WORK/$((++n))" $flags
		"$OPUS" build --source "$WORK/$n/src" --diff "$D/put-length.diff" \
			--binary "$WORK/$n/src/kvsrv" -o "$WORK/$n/fix.opatch" >"$WORK/build.out" 2>&1 ||
			fail "$flags: refused: $(tail -1 "$WORK/build.out")"
		assert_contains "proven in kvsrv" "$(cat "$WORK/build.out")" "$flags: the proof is printed"
	done
}

# put_length_refused WHAT...: the kv_put signature fix, built against
# WORK's kvsrv, is refused (exit 3, no patch), and the error says each WHAT.
put_length_refused() {
	local status=0 what
	"$OPUS" build --source "$WORK/src" --diff "$D/put-length.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>"$WORK/build.err" ||
		status=$?
	assert_eq 3 "$status" "exit status of a refused build"
	for what in "$@"; do
		assert_contains "$what" "$(cat "$WORK/build.err")" "the refusal says why"
	done
	[ ! -e "$WORK/fix.opatch" ] || fail "a refused build wrote a patch"
}

# The same fix, in a binary where a unit the diff leaves alone calls kv_put
# with the old arguments through its own declaration: that call would pass
# the value where the new code reads the length. Refused, naming the caller.
test_global_signature_change_refused_for_a_caller_the_patch_leaves() {
	mkdir -p "$WORK/src"
	cat >"$WORK/src/seed.c" <<'C'
int kv_put(const char *key, const char *value);

void kv_seed(void)
{
	kv_put("seed", "1");
}
C
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	nm "$WORK/src/kvsrv" | grep -q ' kv_seed$' || fail "seed.c is not linked in"
	put_length_refused "kv_put: kv_seed calls it" "does not replace kv_seed"
}

# Built with -rdynamic, kvsrv exports kv_put: an object loaded into the
# process may call it, which no scan of the binary can rule out.
test_global_signature_change_refused_when_the_binary_exports_it() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie -rdynamic
	put_length_refused "the binary exports kv_put"
}

# Another unit keeps kv_put's address in a table: a call through it may
# come from anywhere. The PIE holds the address as a dynamic relocation.
test_global_signature_change_refused_when_its_address_is_taken() {
	mkdir -p "$WORK/src"
	printf 'int kv_put(const char *key, const char *value);\nint (*const put_hook)(const char *, const char *) = kv_put;\n' \
		>"$WORK/src/hook.c"
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	put_length_refused "kv_put: its address is stored at"
}

# The analysis spreads a header fix's units over worker processes: one
# worker or three give the same report, and a unit that cannot be parsed
# fails the whole with its own message either way.
test_analysis_of_many_units_is_the_same_with_one_worker_or_several() {
	local j status
	mkdir -p "$WORK/src"
	# A second unit that includes the header, so three workers have work.
	printf '#include "kv.h"\n\nint admin_ok(const char *k)\n{\n\treturn key_ok(k);\n}\n' \
		>"$WORK/src/admin.c"
	build_target kvsrv "$WORK" -O2 -g
	for j in 1 3; do
		OPUS_CACHE_DIR="" OPUS_ANALYZE_JOBS=$j "$OPUS" analyze --json --source "$WORK/src" \
			--diff "$D/fix-key-length.diff" >"$WORK/j$j.json" || fail "analyze with $j worker(s)"
	done
	assert_eq "$(cat "$WORK/j1.json")" "$(cat "$WORK/j3.json")" "the same report"
	jq -e '.functions | any(.name == "key_ok")' "$WORK/j3.json" >/dev/null ||
		fail "the header's function is not in the report"
	printf '\nint gnu_nested(int x)\n{\n\tint twice(int y) { return 2 * y; }\n\n\treturn twice(x);\n}\n' \
		>>"$WORK/src/admin.c"
	for j in 1 3; do
		status=0
		OPUS_CACHE_DIR="" OPUS_ANALYZE_JOBS=$j "$OPUS" analyze --source "$WORK/src" \
			--diff "$D/fix-key-length.diff" >/dev/null 2>"$WORK/err" || status=$?
		assert_eq 1 "$status" "$j worker(s): exit status of an analysis that cannot parse a unit"
		assert_contains "cannot parse $WORK/src/admin.c" "$(cat "$WORK/err")" \
			"$j worker(s): the error names the unit"
	done
}

# A header fix reaches every unit that includes it, but a unit that does not
# use what changed preprocesses the same with and without it: left out of
# the compiles and the analysis, said so, and the patch is the same.
test_header_fix_leaves_out_the_units_it_does_not_reach() {
	mkdir -p "$WORK/src" "$WORK/a" "$WORK/b"
	printf '#define LIMIT 3\n#define GREETING "hello"\nint limit(void);\nconst char *greeting(void);\n' \
		>"$WORK/src/common.h"
	printf '#include "common.h"\n\n__attribute__((noinline)) int limit(void)\n{\n\treturn LIMIT;\n}\n' \
		>"$WORK/src/limit.c"
	cat >"$WORK/src/main.c" <<'C'
#include <stdio.h>
#include <unistd.h>
#include "common.h"

__attribute__((noinline)) const char *greeting(void)
{
	return GREETING;
}

int main(void)
{
	printf("ready 0\n");
	for (;;) {
		printf("%d %s\n", limit(), greeting());
		fflush(stdout);
		usleep(20000);
	}
}
C
	local c entries=""
	for c in limit main; do
		entries="$entries${entries:+,}{\"directory\": \"$WORK/src\", \"file\": \"$c.c\", \"arguments\": [\"gcc\", \"-O2\", \"-g\", \"-c\", \"$c.c\", \"-o\", \"$c.o\"]}"
		(cd "$WORK/src" && gcc -O2 -g -c "$c.c" -o "$c.o")
	done
	printf '[%s]\n' "$entries" >"$WORK/src/compile_commands.json"
	(cd "$WORK/src" && gcc limit.o main.o -o prog)
	cp "$WORK/src/common.h" "$WORK/a/" && sed 's/LIMIT 3/LIMIT 5/' "$WORK/a/common.h" >"$WORK/b/common.h"
	(cd "$WORK" && diff -u a/common.h b/common.h >limit.diff) || true
	"$OPUS" build --source "$WORK/src" --diff "$WORK/limit.diff" --binary "$WORK/src/prog" \
		-o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 || fail "build: $(cat "$WORK/build.out")"
	assert_contains "1 unit(s) include a changed header but preprocess the same" \
		"$(cat "$WORK/build.out")" "main.c, which uses none of it, is left out"
	assert_eq "replaced limit (limit.c): its code changed (a constant, macro, type or inlined code it uses)" \
		"$(grep '^replaced' "$WORK/build.out")" "only limit is replaced"
	start "$WORK/src/prog"
	local pid=$PID
	grep -q '^3 hello$' "$START_OUT" || sleep 0.2
	grep -q '^3 hello$' "$START_OUT" || fail "the program does not print 3 hello"
	"$OPUS" apply "$pid" "$WORK/fix.opatch" >/dev/null
	for _ in $(seq 50); do
		grep -q '^5 hello$' "$START_OUT" && break
		sleep 0.1
	done
	grep -q '^5 hello$' "$START_OUT" || fail "the running program does not take the new limit"
	assert_running "$pid"
}

# The link keeps a 16-byte constant pair ({-85.05, 85.05}) from the unit
# linked first, so box.c's two pairs, side by side in its compile, are apart
# in the binary. A reference to the second half of the first pair (180) is
# the same constant there: the build must compare the pair it lands in, not
# 16 bytes from where it lands (which refused redis's geohashEncode as "not
# built from this source").
test_a_constant_pair_the_link_moved_apart_is_still_the_binarys() {
	build_target geobox "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/geobox"
	assert_eq "in -85.05..85.05" "$(req 'BOX 0 10')" "on the meridian, before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/geobox/no-meridian.diff" \
		--binary "$WORK/src/geobox" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "the build refused the binary it was compiled from: $(cat "$WORK/build.out")"
	assert_contains "replaced box" "$(cat "$WORK/build.out")" "box is replaced"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq out "$(req 'BOX 0 10')" "the meridian is off the map after the fix"
	assert_eq "in -85.05..85.05" "$(req 'BOX 1 10')" "the pairs the new code reads"
	assert_eq out "$(req 'BOX 181 10')" "and the longitude's bound"
	assert_eq "-85.05..85.05" "$(req LAT)" "the other unit's pair"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq "in -85.05..85.05" "$(req 'BOX 0 10')" "on the meridian again after the revert"
	assert_running "$PID"
}

# too_far_north reads only the second half of the last 16-byte constant of
# its unit. A fix that changes that limit changes no byte of its code: the
# build must see the constant changed (the diff compared 16 bytes from the
# second half, past the section's end, and took the function for the same).
test_a_fix_to_the_second_half_of_a_constant_pair_is_not_missed() {
	build_target geobox "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/geobox"
	assert_eq yes "$(req 'NORTH 85.065')" "too far north before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/geobox/north-limit.diff" \
		--binary "$WORK/src/geobox" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build: $(cat "$WORK/build.out")"
	assert_contains "replaced too_far_north" "$(cat "$WORK/build.out")" \
		"the function whose only change is its constant is replaced"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq no "$(req 'NORTH 85.065')" "within the new limit"
	assert_eq yes "$(req 'NORTH 85.075')" "beyond it"
	assert_eq "-85.05..85.07" "$(req NRANGE)" "the pair the other function stores"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq yes "$(req 'NORTH 85.065')" "the old limit after the revert"
	assert_running "$PID"
}

# within() compares with two 16-byte constants in memory; the compare
# carries its predicate as an immediate byte after the second one's
# displacement, so the relocation lands 5 bytes short of it, not 4. The
# link kept area.c's copy of that second constant, away from the first.
# A fix to the compare must bind the second constant where the binary has
# it (taken as the last byte of the first, the new code compared with
# whatever followed the first constant in the binary).
test_a_constant_read_before_an_immediate_is_bound_to_the_right_one() {
	build_target geobox "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/geobox"
	assert_eq yes "$(req 'WITHIN 180 0')" "on the antimeridian, before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/geobox/within-edge.diff" \
		--binary "$WORK/src/geobox" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build: $(cat "$WORK/build.out")"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq no "$(req 'WITHIN 180 0')" "the antimeridian is out after the fix"
	assert_eq yes "$(req 'WITHIN -179.9 -85')" "within the south-west bounds"
	assert_eq no "$(req 'WITHIN -180.1 0')" "west of -180"
	assert_eq no "$(req 'WITHIN 0 -85.1')" "south of -85.05"
	assert_eq "-180..-85.05" "$(req SW)" "the other unit's constant"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq yes "$(req 'WITHIN 180 0')" "on the antimeridian again after the revert"
	assert_running "$PID"
}

# A fix whose only change is that second constant changes no byte of the
# code: the build must see the constant the compare reads changed (it
# described the last byte of the first constant, the same before and
# after, and took the function for unchanged).
test_a_fix_to_a_constant_read_before_an_immediate_is_not_missed() {
	build_target geobox "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/geobox"
	assert_eq yes "$(req 'WITHIN -179.8 0')" "west of -179.5, before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/geobox/west-limit.diff" \
		--binary "$WORK/src/geobox" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build: $(cat "$WORK/build.out")"
	assert_contains "replaced within" "$(cat "$WORK/build.out")" \
		"the function whose only change is its constant is replaced"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq no "$(req 'WITHIN -179.8 0')" "west of the new bound"
	assert_eq yes "$(req 'WITHIN -179.4 0')" "east of it"
	assert_eq no "$(req 'WITHIN 180.1 0')" "and the first constant still read right"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq yes "$(req 'WITHIN -179.8 0')" "the old bound after the revert"
	assert_running "$PID"
}

# A fix that adds a function to one unit (store.c's kv_count_prefix, over
# its static slots) and calls it from another (server.c): no loaded object
# defines it, so the patch must carry it, linked to the running storage.
# (Debian's fixes for redis CVE-2025-48367 and CVE-2025-67733 do this; the
# patches built, and apply refused them: the symbol was in no object.)
test_a_new_function_called_from_another_unit_travels_in_the_patch() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/kvsrv"
	assert_eq STORED "$(req 'PUT a apple')" "stored before the fix"
	assert_eq STORED "$(req 'PUT b apricot')" "stored before the fix"
	assert_eq STORED "$(req 'PUT c cherry')" "stored before the fix"
	assert_eq ERR "$(req 'COUNT ap')" "no prefix count before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$D/count-prefix.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch" >"$WORK/build.out" 2>&1 ||
		fail "build: $(cat "$WORK/build.out")"
	assert_contains "added    kv_count_prefix (store.c)" "$(cat "$WORK/build.out")" \
		"the build says the new function travels"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >"$WORK/apply.out" 2>&1 ||
		fail "apply: $(cat "$WORK/apply.out")"
	assert_eq 2 "$(req 'COUNT ap')" "the new function counts the running store's values"
	assert_eq 3 "$(req COUNT)" "the old count"
	assert_eq STORED "$(req 'PUT d apex')" "stored after the fix"
	assert_eq 3 "$(req 'COUNT ap')" "and counted"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq ERR "$(req 'COUNT ap')" "no prefix count after the revert"
	assert_eq apex "$(req 'GET d')" "data kept"
	assert_running "$PID"
}

# A new variable defined in one unit and used by another's new code is in
# no loaded object: the build says so, naming it, and writes no patch
# (it used to write one that apply then refused).
test_a_new_variable_used_from_another_unit_is_refused_at_build() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	expect_fail "build of a fix whose server.c uses store.c's new kv_gets" \
		"$OPUS" build --source "$WORK/src" --diff "$D/new-shared-var.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch"
	assert_contains "kv_gets (store.c): a new variable that the fix's code in another unit uses" \
		"$ERR" "the error names the variable and its unit"
	[ ! -e "$WORK/fix.opatch" ] || fail "a patch was written"
}
