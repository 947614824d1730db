#!/usr/bin/env bash
# Builds the RUNNING redis for the real-world suite into $1: Debian 12's
# redis source, the original tarball plus Debian's non-CVE patches, built
# as debian/rules builds it (the system's jemalloc, systemd and TLS, its
# hardening flags and link options) under bear for a
# compile_commands.json; installs what that needs. Prints the tree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
work=$1
tree=$work/run
# Debian's build-dependencies, tcl for redis's own tests, and what the
# suites use.
for p in bear libhiredis-dev libjemalloc-dev liblua5.1-dev liblzf-dev libssl-dev libsystemd-dev \
	lua-bitop-dev lua-cjson-dev pkg-config tcl tcl-tls jq python3; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
if [ -x "$tree/src/redis-server" ] && [ -e "$tree/compile_commands.json" ]; then
	echo "$tree"
	exit 0
fi
bash "$ROOT/tools/deb-tree.sh" redis "$work/source" "$tree"
flags() {
	DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_CFLAGS_MAINT_APPEND=-I/usr/include/liblzf \
		DEB_LDFLAGS_MAINT_APPEND="-Wl,-no-as-needed -ldl -latomic -llzf" dpkg-buildflags --get "$1"
}
(
	cd "$tree"
	CFLAGS="$(flags CFLAGS)" CPPFLAGS="$(flags CPPFLAGS)" LDFLAGS="$(flags LDFLAGS)" BUILD_TLS=yes \
		bear -- make -j"$(nproc)" V=1 USE_SYSTEM_JEMALLOC=yes USE_SYSTEMD=yes USE_JEMALLOC=yes \
		>"$work/make.log" 2>&1
)
echo "$tree"
