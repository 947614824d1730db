#!/usr/bin/env bash
# Builds the RUNNING memcached for the real-world suite into $1: Debian 12's
# memcached source, the original tarball plus Debian's non-CVE patches,
# configured as debian/rules does (--enable-sasl --enable-tls) with Debian's
# hardening flags, under bear for a compile_commands.json. Prints the tree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
work=$1
tree=$work/run
if [ -x "$tree/memcached" ] && [ -e "$tree/compile_commands.json" ]; then
	echo "$tree"
	exit 0
fi
bash "$ROOT/tools/deb-tree.sh" memcached "$work/source" "$tree"
flags() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
(
	cd "$tree"
	./configure --enable-sasl --enable-tls CFLAGS="$(flags CFLAGS)" \
		CPPFLAGS="$(flags CPPFLAGS)" LDFLAGS="$(flags LDFLAGS)" >"$work/configure.log" 2>&1
	bear -- make -j"$(nproc)" memcached >"$work/make.log" 2>&1
)
# The test suite's harness asks memcached-debug what it supports.
ln -sf memcached "$tree/memcached-debug"
echo "$tree"
