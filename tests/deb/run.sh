#!/usr/bin/env bash
# opus as a Debian package. dpkg-buildpackage builds opus_<version>_amd64.deb
# from the tracked files of the tree, lintian finds no error in it, and the
# installed package works as a user meets it: `opus --version`, a man page
# for opus and for each command, bash completion, the daemon's unit present
# but not enabled, /etc/opus (without trusted.d), and a fix built, applied and
# reverted on a running server with /usr/bin/opus. The package is purged
# at the end. Writes build/deb/result.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/deb
VERSION=$(sed -n "s/^  version : '\(.*\)',\$/\1/p" "$ROOT/meson.build")
fail() {
	echo "deb: FAIL: $*" >&2
	exit 1
}
[ -n "$VERSION" ] || fail "no version in meson.build"
if dpkg-query -W -f='${Status}' opus 2>/dev/null | grep -q "install ok installed"; then
	fail "the opus package is installed already: this test installs and purges its own"
fi

rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/work"
(cd "$ROOT" && git ls-files -z | tar --null -T - -c) | tar -x -C "$OUT/src"
start=$(date +%s)
(cd "$OUT/src" && dpkg-buildpackage -b -us -uc) >"$OUT/build.log" 2>&1 ||
	{ tail -40 "$OUT/build.log"; fail "dpkg-buildpackage failed (build/deb/build.log)"; }
build_s=$(($(date +%s) - start))
deb=$OUT/opus_${VERSION}_amd64.deb
[ -f "$deb" ] || fail "no $deb"
lintian --fail-on error "$deb" >"$OUT/lintian.log" 2>&1 ||
	{ cat "$OUT/lintian.log"; fail "lintian found errors"; }

pid=""
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	dpkg --purge opus >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$deb" >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; fail "dpkg -i failed"; }

[ "$(/usr/bin/opus --version)" = "opus $VERSION" ] ||
	fail "opus --version says '$(/usr/bin/opus --version)', meson.build '$VERSION'"
commands=$(/usr/bin/opus --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[ -n "$commands" ] || fail "opus --help lists no command"
man -w opus >/dev/null || fail "no man page opus(1)"
for c in $commands; do
	man -w "opus-$c" >/dev/null || fail "no man page opus-$c(1)"
done
# The completion, as bash loads it, offers every command.
completed=$(bash -c 'source /usr/share/bash-completion/bash_completion
	source /usr/share/bash-completion/completions/opus
	COMP_WORDS=(opus ""); COMP_CWORD=1; COMP_LINE="opus "; COMP_POINT=5; _opus
	echo "${COMPREPLY[*]}"')
for c in $commands; do
	case " $completed " in *" $c "*) ;; *) fail "completion does not offer '$c': $completed" ;; esac
done
# opus deb runs the script installed with the binary.
deb_err=$(/usr/bin/opus deb opus-no-such-package --to 1 2>&1) && fail "opus deb took a package that is not installed"
[[ $deb_err == "opus deb: opus-no-such-package is no installed package"* ]] ||
	fail "the installed opus deb says '$deb_err'"
[ -f /usr/lib/systemd/system/opus.service ] || fail "no opus.service"
[ ! -e /etc/systemd/system/multi-user.target.wants/opus.service ] ||
	fail "opus.service was enabled on install"
[ -d /etc/opus ] || fail "no /etc/opus"
# No trusted.d until the admin makes one: its existence turns signatures on.
[ ! -e /etc/opus/trusted.d ] || fail "/etc/opus/trusted.d shipped: every unsigned patch refused"

# A fix built and applied with the installed binary, to a running server,
# with the integration tests' helpers.
export OPUS=/usr/bin/opus WORK=$OUT/work
# shellcheck source=tests/lib.sh
source "$ROOT/tests/lib.sh"
build_authsrv "$WORK" -O2 -g -fPIE -pie
start "$WORK/src/authsrv"
pid=$PID
assert_eq OK "$(req 'AUTH admin ')" "the hole before the patch"
"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
	--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch" >"$WORK/build.out"
"$OPUS" apply "$pid" "$WORK/fix.opatch" >"$WORK/apply.out"
assert_eq DENIED "$(req 'AUTH admin ')" "the hole after the installed opus's patch"
assert_contains fix "$("$OPUS" list "$pid")" "opus list"
"$OPUS" revert "$pid" >"$WORK/revert.out"
assert_eq OK "$(req 'AUTH admin ')" "the old code after revert"
assert_running "$pid"

dpkg --purge opus >/dev/null
[ ! -e /usr/bin/opus ] || fail "purge left /usr/bin/opus"
jq -n --arg v "$VERSION" --arg deb "$(basename "$deb")" --argjson s "$build_s" \
	--argjson size "$(stat -c %s "$deb")" --argjson pages "$(($(wc -w <<<"$commands") + 1))" \
	'{version: $v, deb: $deb, deb_bytes: $size, build_seconds: $s, man_pages: $pages,
	  lintian_errors: 0, applied: true, reverted: true}' >"$OUT/result.json"
echo "deb: $(basename "$deb") built in ${build_s} s, lintian clean of errors, installed, applied and reverted with /usr/bin/opus, purged"
