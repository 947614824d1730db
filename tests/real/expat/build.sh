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
bash "$ROOT/tools/deb-tree.sh" expat "$work/source" "$tree"

flags() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
cmake -S "$tree/expat" -B "$tree/build" -DCMAKE_BUILD_TYPE=None \
	-DCMAKE_C_FLAGS="$(flags CFLAGS) $(flags CPPFLAGS) -Wall" \
	-DCMAKE_SHARED_LINKER_FLAGS="-Wl,-Bsymbolic-functions $(flags LDFLAGS)" \
	-DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DEXPAT_BUILD_TESTS=OFF -DEXPAT_BUILD_EXAMPLES=OFF \
	-DEXPAT_BUILD_DOCS=OFF -DEXPAT_BUILD_TOOLS=OFF >"$work/cmake.log" 2>&1
make -C "$tree/build" -j"$(nproc)" >"$work/make.log" 2>&1
echo "$tree"
