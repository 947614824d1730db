#!/usr/bin/env bash
# deb-tree.sh PACKAGE SOURCE-DIR TREE: the tree a real-world suite runs,
# made afresh: Debian 12's original tarball of PACKAGE (fetched into
# SOURCE-DIR by deb-source.sh) plus Debian's patches except the CVE fixes,
# which the suites apply live. debian/ comes along for those patches.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pkg=$1 source=$2 tree=$3
src=$(bash "$ROOT/tools/deb-source.sh" "$pkg" "$source")
rm -rf "$tree"
mkdir -p "$tree"
tar -xf "$source/${pkg}"_*.orig.tar.* -C "$tree" --strip-components=1
cp -a "$src/debian" "$tree/debian"
while read -r p; do
	case "$p" in *CVE-* | "" | \#*) continue ;; esac
	patch -s -p1 -d "$tree" <"$tree/debian/patches/$p"
done <"$tree/debian/patches/series"
