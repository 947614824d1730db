#!/usr/bin/env bash
# Self-replacement of libxml2, as Debian 12 builds it: every function of
# libxml2.so.2 (about 4000) replaced by its own recompiled code in a
# running python3 that loads it through Debian's python3-libxml2, then
# libxml2's own python tests (python/tests) run inside that process. Each
# test must end and print the same as in an unpatched process, patched and
# again after the revert, on the same pid.
#
# It takes the survey's build of libxml2 (build/survey/libxml2: make
# survey, or python3 survey/survey.py libxml2), with the survey's fixes
# taken back out of its tree so that the tree is the binary's. Run by make
# survey. Writes build/real/libxml2-self.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
HERE=$ROOT/tests/real/libxml2
SURVEY=${SURVEY_WORK:-$ROOT/build/survey}/libxml2
WORK=$ROOT/build/real/libxml2
JSON=$WORK/../libxml2-self.json
fail() {
	echo "real libxml2 self-replacement: FAIL: $*" >&2
	exit 1
}
tree=$SURVEY/tree
[ -f "$SURVEY/built" ] || fail "no survey build of libxml2 in $SURVEY: run python3 survey/survey.py libxml2"
mkdir -p "$WORK"
python3 -c "import sys; sys.path.insert(0, '$ROOT/survey'); import survey; survey.reset_tree('$tree', '$SURVEY')"

lib=$tree/debian/libxml2/usr/lib/x86_64-linux-gnu
so=$(readlink -f "$lib/libxml2.so.2")
tests=$tree/python/tests
export LD_LIBRARY_PATH=$lib PYTHONPATH=$tree/debian/python3-libxml2/usr/lib/python3/dist-packages
# thread2.py starts threads that outlive it.
(cd "$tests" && find . -maxdepth 1 -name '*.py' | sed 's#^\./##' | sort | grep -vx thread2.py) >"$WORK/tests"
[ "$(wc -l <"$WORK/tests")" -ge 40 ] || fail "libxml2's python tests are missing from $tests"
# The second round (after the revert) leaves out the tests that register
# XPath functions: the binding forgets its table at cleanupParser but not
# the table's size, and the next registration then writes through NULL
# (python/libxml.c, libxml_xmlRegisterXPathFunction; an unpatched process
# crashes the same way).
(cd "$tests" && xargs grep -L registerXPathFunction <"$WORK/tests") >"$WORK/tests2"

start=$(date +%s)
"$OPUS" build --replace-all --source "$tree" --binary "$so" --id self-libxml2 \
	-o "$WORK/self.opatch" >"$WORK/build.log" 2>&1 || fail "opus build: $(tail -1 "$WORK/build.log")"
build_s=$(($(date +%s) - start))
functions=$(grep -c '^replaced ' "$WORK/build.log")

# rounds OUT: the live output OUT split into OUT.1 and OUT.2, one per round.
rounds() { awk -v out="$1" '/^ready/ {next} /^round/ {n++; next} {print > (out "." n + 1)}' "$1"; }

# Unpatched, in a process of its own: the same two rounds.
{ cat "$WORK/tests"; echo --; cat "$WORK/tests2"; echo --; } |
	/usr/bin/python3 "$HERE/pytests.py" "$tests" >"$WORK/plain" 2>"$WORK/plain.err" ||
	fail "the tests do not run in an unpatched process: $(tail -3 "$WORK/plain.err")"
rounds "$WORK/plain"

rm -f "$WORK/fifo" && mkfifo "$WORK/fifo"
/usr/bin/python3 "$HERE/pytests.py" "$tests" <"$WORK/fifo" >"$WORK/live" 2>"$WORK/live.err" &
py=$!
exec 7>"$WORK/fifo"
cleanup() { kill "$py" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^ready' "$WORK/live" && break; sleep 0.05; done
grep -q '^ready' "$WORK/live" || fail "python3 with libxml2 did not start: $(cat "$WORK/live.err")"
round() {
	local want=$1
	{ cat "$2"; echo --; } >&7
	for _ in $(seq 1200); do
		[ "$(grep -c '^round' "$WORK/live")" -ge "$want" ] && return
		kill -0 "$py" 2>/dev/null || fail "python3 died: $(tail -3 "$WORK/live.err")"
		sleep 0.1
	done
	fail "the tests did not end in 120 s"
}
"$OPUS" apply "$py" "$WORK/self.opatch" >"$WORK/apply.out" || fail "apply: $(cat "$WORK/apply.out")"
round 1 "$WORK/tests"
"$OPUS" revert "$py" >"$WORK/revert.out" || fail "revert: $(cat "$WORK/revert.out")"
round 2 "$WORK/tests2"
exec 7>&-
wait "$py" || fail "python3 ended with an error: $(tail -3 "$WORK/live.err")"
trap - EXIT
rounds "$WORK/live"
diff "$WORK/plain.1" "$WORK/live.1" >"$WORK/patched.diff" ||
	fail "tests answered differently with every function replaced: $(head -5 "$WORK/patched.diff")"
diff "$WORK/plain.2" "$WORK/live.2" >"$WORK/reverted.diff" ||
	fail "tests answered differently after the revert: $(head -5 "$WORK/reverted.diff")"
jq -n --argjson f "$functions" --argjson t "$(wc -l <"$WORK/tests")" --argjson t2 "$(wc -l <"$WORK/tests2")" \
	--argjson b "$build_s" --arg d "$(date +%F)" \
	--arg apply "$(cat "$WORK/apply.out")" \
	'{date: $d, library: "libxml2.so.2 (Debian 12)", functions_replaced: $f, tests: $t, tests_after_revert: $t2,
	  build_seconds: $b,
	  apply: $apply, same_answers_patched: true, same_answers_reverted: true}' >"$JSON"
echo "real libxml2: $functions functions replaced in a live python3; libxml2's $(wc -l <"$WORK/tests") python tests answered the same patched, and $(wc -l <"$WORK/tests2") of them after the revert; $(cat "$WORK/apply.out")"
