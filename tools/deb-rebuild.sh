#!/usr/bin/env bash
# deb-rebuild.sh PACKAGE|PID|FILE OUT: rebuilds the installed version of a
# Debian package (named, or the one a process runs or a file belongs to) the
# way Debian's build daemons did, so that opus can build patches for its
# installed, stripped files (opus build --binary REBUILT --installed FILE).
# The source of the installed version is unpacked in Debian's reproducible
# build path (/build/reproducible-path/SRC-UPSTREAM),
# its build-dependencies installed, each -dev one at the version of the
# package's own suite when that differs from the machine's (a package in
# bookworm was built against bookworm's libraries, not the security
# archive's later ones; each change is said and recorded), and it is built
# with dpkg-buildpackage under bear (compile_commands.json), unstripped
# (DEB_BUILD_OPTIONS passes more, such as nocheck).
# Then each ELF file of the installed package is compared with its rebuild
# by build-id. Writes OUT/rebuild.json; prints one line per file.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/deb-lib.sh
. "$HERE/deb-lib.sh"
pkg=$1 out=$2
mkdir -p "$out"
fail() {
	echo "deb-rebuild: $*" >&2
	exit 1
}
# A running process or an installed file stands for its package.
what=$pkg
pkg=$(deb_package_of "$what")
[ -n "$pkg" ] || fail "$what is no installed package, no file of one and no process running one"
[ "$pkg" = "$what" ] || echo "deb-rebuild: $what is in package $pkg"
version=$(dpkg-query -W -f='${Version}' "$pkg")
src=$(dpkg-query -W -f='${source:Package}' "$pkg")
src_version=$(dpkg-query -W -f='${source:Version}' "$pkg")
build=/build/reproducible-path/$src-$(deb_upstream "$src_version")

# The suite the installed version came from, as apt names its archive.
suite_of() { deb_madison "$1" | awk -F'|' -v v="$2" '$1 == v {print $2; exit}'; }
suite=$(suite_of "$pkg" "$version")
[ -n "$suite" ] || fail "$pkg $version is in no archive apt knows (apt-get update?)"
suite=${suite% Packages}
suite=${suite% amd64}

bash "$HERE/deb-src.sh"
rm -rf "$build" "$out/dl"
mkdir -p "$out/dl" "$(dirname "$build")"
(cd "$out/dl" && apt-get source -qq --download-only "$src=$src_version") >"$out/fetch.log" 2>&1 ||
	fail "cannot fetch the source of $src $src_version: $(tail -2 "$out/fetch.log")"
dpkg-source -x "$out/dl/${src}_${src_version#*:}.dsc" "$build" >"$out/unpack.log" 2>&1 ||
	fail "cannot unpack $src $src_version: $(tail -2 "$out/unpack.log")"
DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$src=$src_version" >"$out/build-dep.log" 2>&1 ||
	fail "cannot install the build-dependencies of $src $src_version: $(tail -2 "$out/build-dep.log")"

# Each -dev build-dependency at its version in the package's suite.
changed='[]'
for dep in $(sed -n '/^Build-Depends/,/^[A-Z]/p' "$build/debian/control" |
	tr ',|' '\n\n' | sed 's/^Build-Depends[^:]*://; s/[[(<].*//; s/:any//; s/ //g' | grep -- '-dev$' | sort -u); do
	have=$(dpkg-query -W -f='${Version}' "$dep" 2>/dev/null || true)
	want=$(deb_madison "$dep" | awk -F'|' -v s="$suite" 'index($2, s) == 1 {print $1; exit}')
	[ -n "$have" ] && [ -n "$want" ] && [ "$have" != "$want" ] || continue
	echo "deb-rebuild: $dep $have installed; $src $src_version was built in $suite, which has $want: installing it"
	# With the packages of its source that are installed: a -dev package
	# depends on its library at exactly its own version.
	dsrc=$(dpkg-query -W -f='${source:Package}' "$dep")
	mapfile -t with < <(dpkg-query -W -f='${binary:Package} ${source:Package} ${Status}\n' |
		awk -v s="$dsrc" '$2 == s && $NF == "installed" {print $1}' | sed "s/\$/=$want/")
	if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "${with[@]}" \
		>>"$out/build-dep.log" 2>&1; then
		now=$want
	else
		echo "deb-rebuild: cannot install $dep $want; building with $have"
		now=$have
	fi
	changed=$(jq -c --arg p "$dep" --arg a "$have" --arg b "$want" --arg n "$now" \
		'. + [{package: $p, was: $a, suite_has: $b, now: $n}]' <<<"$changed")
done

start=$(date +%s)
(cd "$build" && DEB_BUILD_OPTIONS="nostrip ${DEB_BUILD_OPTIONS:-}" bear --output "$build/compile_commands.json" -- \
	dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$out/build.log" 2>&1 ||
	fail "the rebuild failed ($out/build.log): $(tail -3 "$out/build.log")"
seconds=$(($(date +%s) - start))

build_id() { readelf -n "$1" 2>/dev/null | awk '/Build ID/ {print $3; exit}'; }
files='[]'
while read -r f; do
	[ -f "$f" ] && [ ! -L "$f" ] && [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = 177ELF ] || continue
	rebuilt=$build/debian/$pkg$f
	a=$(build_id "$f")
	b=$([ -f "$rebuilt" ] && build_id "$rebuilt" || true)
	match=$([ -n "$a" ] && [ "$a" = "$b" ] && echo true || echo false)
	echo "deb-rebuild: $f: build-id ${a:-none} installed, ${b:-none} rebuilt: $([ "$match" = true ] && echo equal || echo differ)"
	files=$(jq -c --arg f "$f" --arg r "$rebuilt" --arg a "$a" --arg b "$b" --argjson m "$match" \
		'. + [{path: $f, rebuilt: $r, installed_build_id: $a, rebuilt_build_id: $b, build_id_match: $m}]' <<<"$files")
done < <(dpkg -L "$pkg")
jq -n --arg p "$pkg" --arg s "$src" --arg v "$version" --arg suite "$suite" --arg b "$build" \
	--argjson c "$changed" --argjson f "$files" --argjson t "$seconds" \
	--arg cc "$(gcc --version | head -1)" \
	'{package: $p, source: $s, version: $v, suite: $suite, build_path: $b, build_seconds: $t,
	  compiler: $cc, builddeps_changed: $c, files: $f}' >"$out/rebuild.json"
