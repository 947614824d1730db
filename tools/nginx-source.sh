#!/usr/bin/env bash
# Fetches Debian 12's nginx source package into $1 (once) and prints the
# directory of the unpacked tree. Shared by the benchmarks that need nginx.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
mkdir -p "$dest"
if ! ls -d "$dest"/nginx-*/ >/dev/null 2>&1; then
	bash "$ROOT/tools/deb-src.sh"
	(
		cd "$dest"
		# The newest version listed may not be downloadable yet: take the
		# first one that is.
		for v in $(apt-cache showsrc nginx | awk '/^Version:/ {print $2}' | sort -rV); do
			apt-get source -qq "nginx=$v" >/dev/null 2>&1 && echo "$v" >version && break
		done
	)
fi
ls -d "$dest"/nginx-*/ | head -1
