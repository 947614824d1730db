#!/usr/bin/env bash
# Builds the RUNNING libexpat for the real-world suite into $1: Debian 12's
# expat source, the original tarball plus Debian's non-CVE patches, with
# Debian's hardening CFLAGS and -Wl,-Bsymbolic-functions (debian/rules), by
# upstream's CMake build with a compile_commands.json. Prints the tree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
work=$1
tree=$work/run
if [ -e "$tree/build/libexpat.so.1" ] && [ -e "$tree/build/compile_commands.json" ]; then
	echo "$tree"
	exit 0
fi
src=$(bash "$ROOT/tools/deb-source.sh" expat "$work/source")
rm -rf "$tree"
mkdir -p "$tree"
tar -xzf "$work"/source/expat_*.orig.tar.gz -C "$tree" --strip-components=1
cp -a "$src/debian" "$tree/debian"
while read -r p; do
	case "$p" in *CVE-* | "" | \#*) continue ;; esac
	patch -s -p1 -d "$tree" <"$tree/debian/patches/$p"
done <"$tree/debian/patches/series"

flags() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
cmake -S "$tree/expat" -B "$tree/build" -DCMAKE_BUILD_TYPE=None \
	-DCMAKE_C_FLAGS="$(flags CFLAGS) $(flags CPPFLAGS) -Wall" \
	-DCMAKE_SHARED_LINKER_FLAGS="-Wl,-Bsymbolic-functions $(flags LDFLAGS)" \
	-DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DEXPAT_BUILD_TESTS=OFF -DEXPAT_BUILD_EXAMPLES=OFF \
	-DEXPAT_BUILD_DOCS=OFF -DEXPAT_BUILD_TOOLS=OFF >"$work/cmake.log" 2>&1
make -C "$tree/build" -j"$(nproc)" >"$work/make.log" 2>&1
echo "$tree"
