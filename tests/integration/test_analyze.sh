# opus analyze against the case corpus in tests/analyze: each case is an
# original tree, a diff, and the expected functions and findings. Every
# field but the wording of the message is checked exactly.
CASES=$ROOT/tests/analyze

# The parts of a report a case pins down.
analysis_projection() {
	jq -S '{functions: .functions,
		findings: [.findings[] | {severity, kind, function, file, line}]}'
}

analyze_case() {
	local name=$1 dir=$WORK/$1 status=0 want_status=0 c args entries=""
	mkdir -p "$dir"
	cp -r "$CASES/$name/orig" "$dir/src"
	for c in "$dir"/src/*.c; do
		c=$(basename "$c")
		entries="$entries${entries:+,}{\"directory\": \"$dir/src\", \"file\": \"$c\",
		  \"arguments\": [\"gcc\", \"-O2\", \"-Wall\", \"-c\", \"$c\", \"-o\", \"${c%.c}.o\"]}"
	done
	printf '[%s]\n' "$entries" >"$dir/src/compile_commands.json"
	"$OPUS" analyze --json --source "$dir/src" --diff "$CASES/$name/fix.diff" \
		>"$dir/report.json" || status=$?
	jq -e '.findings | any(.severity == "error")' "$CASES/$name/expected.json" >/dev/null &&
		want_status=3
	assert_eq "$want_status" "$status" "$name: exit status"
	assert_eq "$(analysis_projection <"$CASES/$name/expected.json")" \
		"$(analysis_projection <"$dir/report.json")" "$name: report"
	# Every finding explains itself.
	jq -e '.findings | all(.message | length > 20)' "$dir/report.json" >/dev/null ||
		fail "$name: a finding without a message"
}

for _case in "$CASES"/*/; do
	_case=$(basename "$_case")
	eval "test_analyze_${_case//-/_}() { analyze_case $_case; }"
done
unset _case

test_analyze_refuses_bad_input() {
	mkdir -p "$WORK/src"
	cp "$CASES/modified-local-only/orig/unit.c" "$WORK/src/"
	expect_fail "no compile database" "$OPUS" analyze --source "$WORK/src" \
		--diff "$CASES/modified-local-only/fix.diff"
	assert_contains "compile_commands.json" "$ERR" "error names what is missing"
	expect_fail "missing diff" "$OPUS" analyze --source "$WORK/src" --diff "$WORK/none.diff"
	assert_contains "none.diff" "$ERR" "error names the diff"
}

# opus build runs the same analysis: errors refuse the build unless --force,
# and the findings travel in the patch file. (Built with -rdynamic, authsrv
# exports slow_op: the binary cannot prove that no other object calls it.)
test_build_refuses_analysis_errors() {
	build_authsrv "$WORK" -O2 -g -rdynamic
	sed 's/^__attribute__((noinline)) int slow_op(int secs)$/__attribute__((noinline)) long slow_op(long secs)/' \
		"$WORK/src/authsrv.c" >"$WORK/new.c"
	cmp -s "$WORK/src/authsrv.c" "$WORK/new.c" && fail "the signature edit did not apply"
	(cd "$WORK" && mkdir -p a b && cp src/authsrv.c a/ && cp new.c b/authsrv.c &&
		diff -u a/authsrv.c b/authsrv.c >sig.diff) || true
	local status=0
	"$OPUS" build --source "$WORK/src" --diff "$WORK/sig.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/sig.opatch" >"$WORK/out" 2>"$WORK/err" || status=$?
	assert_eq 3 "$status" "exit status of a refused build"
	assert_contains "signature-change" "$(cat "$WORK/out")" "the finding is printed"
	assert_contains "--force" "$(cat "$WORK/err")" "the refusal says how to override"
	assert_contains "slow_op: the binary exports slow_op" "$(cat "$WORK/err")" "and why"
	[ ! -e "$WORK/sig.opatch" ] || fail "a refused build wrote a patch"
	"$OPUS" build --force --source "$WORK/src" --diff "$WORK/sig.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/sig.opatch" >/dev/null
	readelf -p .opus.meta "$WORK/sig.opatch" | grep "finding=authsrv.c:.*signature-change" >/dev/null ||
		fail "the finding is not embedded in the patch"
}

# A unit libclang cannot parse (a GNU nested function, which gcc accepts):
# build stops and says how to go on; --force builds and records why the
# patch carries no findings.
test_build_without_analysis_needs_force() {
	printf '\nint gnu_nested(int x)\n{\n\tint twice(int y) { return 2 * y; }\n\n\treturn twice(x);\n}\n' \
		>>"$WORK/src.tail"
	build_target authsrv "$WORK" -O2 -g
	cat "$WORK/src.tail" >>"$WORK/src/authsrv.c"
	(cd "$WORK/src" && gcc -O2 -g -pthread authsrv.c -o authsrv)
	expect_fail "build with an unparsable unit" "$OPUS" build --source "$WORK/src" \
		--diff "$TARGETS/authsrv/slow-v2.diff" --binary "$WORK/src/authsrv" -o "$WORK/x.opatch"
	assert_contains "--force" "$ERR" "the error says how to go on"
	[ ! -e "$WORK/x.opatch" ] || fail "a patch was written without the analysis"
	"$OPUS" build --force --source "$WORK/src" --diff "$TARGETS/authsrv/slow-v2.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/x.opatch" >/dev/null 2>&1
	readelf -p .opus.meta "$WORK/x.opatch" | grep "analysis unavailable" >/dev/null ||
		fail "the patch does not say it was built without the analysis"
}

# An analysis is kept for the next run on the same diff and tree: opus build
# after opus analyze reuses it (a header fix in a large tree takes minutes
# to analyse), until any file the parses read changes; an entry others can
# write is not trusted, and OPUS_CACHE_DIR="" turns the cache off.
test_build_reuses_the_analysis_while_the_tree_is_unchanged() {
	mkdir -p "$WORK/src" "$WORK/b"
	printf 'static inline int limit(void)\n{\n\treturn 10;\n}\n' >"$WORK/src/cfg.h"
	printf 'int verbose;\n' >"$WORK/src/other.h"
	cat >"$WORK/src/srv.c" <<'C'
#include <stdio.h>
#include "cfg.h"
#include "other.h"

__attribute__((noinline)) int allowed(int n)
{
	return n <= limit();
}

int main(int argc, char **argv)
{
	(void)argv;
	return printf("%d\n", allowed(argc + 10)) < 0;
}
C
	(cd "$WORK/src" && gcc -O2 -g srv.c -o srv)
	printf '[{"directory": "%s", "file": "srv.c", "arguments": ["gcc", "-O2", "-g", "-c", "srv.c", "-o", "srv.o"]}]\n' \
		"$WORK/src" >"$WORK/src/compile_commands.json"
	sed 's/return 10;/return 15;/' "$WORK/src/cfg.h" >"$WORK/b/cfg.h"
	(cd "$WORK" && diff -u src/cfg.h b/cfg.h | sed -e '1s#.*#--- a/cfg.h#' -e '2s#.*#+++ b/cfg.h#') >"$WORK/fix.diff" || true
	analyze() { "$OPUS" analyze --source "$WORK/src" --diff "$WORK/fix.diff" 2>"$WORK/err"; }

	local first
	first=$(analyze)
	assert_contains "modified limit" "$first" "the header fix is analysed"
	case "$(cat "$WORK/err")" in *reused*) fail "the first analysis was reused" ;; esac
	assert_eq "$first" "$(analyze)" "the second report"
	assert_contains "reused the analysis of" "$(cat "$WORK/err")" "the second run reuses it"

	"$OPUS" build --source "$WORK/src" --diff "$WORK/fix.diff" --binary "$WORK/src/srv" \
		-o "$WORK/fix.opatch" >"$WORK/build.out" 2>"$WORK/build.err"
	assert_contains "the analysis of $WORK/fix.diff is reused" "$(cat "$WORK/build.err")" \
		"build reuses analyze's run"
	assert_contains "modified limit" "$(cat "$WORK/build.out")" "build prints the reused report"
	assert_contains "replaced allowed" "$(cat "$WORK/build.out")" "and builds the fix"

	# A header the unit includes, which the diff does not touch.
	printf 'int verbose, quiet;\n' >"$WORK/src/other.h"
	assert_eq "$first" "$(analyze)" "the report after other.h changed"
	case "$(cat "$WORK/err")" in *reused*) fail "reused after other.h changed" ;; esac
	# The file the diff patches, changed so that the diff no longer applies.
	sed -i 's/return 10;/return 12;/' "$WORK/src/cfg.h"
	expect_fail "a diff that no longer applies" analyze
	assert_contains "does not apply" "$(cat "$WORK/err")" "the error, not the kept analysis"
	sed -i 's/return 12;/return 10;/' "$WORK/src/cfg.h"

	analyze >/dev/null
	chmod go+w "$OPUS_CACHE_DIR"/analysis/*
	analyze >/dev/null
	case "$(cat "$WORK/err")" in *reused*) fail "an entry others can write was trusted" ;; esac
	OPUS_CACHE_DIR="" analyze >/dev/null
	OPUS_CACHE_DIR="" analyze >/dev/null
	case "$(cat "$WORK/err")" in *reused*) fail "reused with the cache off" ;; esac
}
