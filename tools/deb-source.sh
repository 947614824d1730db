#!/usr/bin/env bash
# deb-source.sh PACKAGE DEST: fetches Debian 12's source package into DEST
# (once) and prints the directory of the unpacked tree. DEST/version holds
# the version taken. Shared by the real-world suites and the benchmarks.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pkg=$1 dest=$2
mkdir -p "$dest"
if ! ls -d "$dest/$pkg"-*/ >/dev/null 2>&1; then
	bash "$ROOT/tools/deb-src.sh"
	(
		cd "$dest"
		# The newest version listed may not be downloadable yet: take the
		# first one that is.
		for v in $(apt-cache showsrc "$pkg" | awk '/^Version:/ {print $2}' | sort -rV); do
			apt-get source -qq "$pkg=$v" >/dev/null 2>&1 && echo "$v" >version && break
		done
	)
fi
ls -d "$dest/$pkg"-*/ | head -1
