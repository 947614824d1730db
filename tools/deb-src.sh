#!/usr/bin/env bash
# Enables Debian source packages (apt-get source) in a file of our own, with
# the same archives and suites as the machine's binary packages.
set -euo pipefail
out=/etc/apt/sources.list.d/opus-deb-src.sources
[ -e "$out" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
src=/etc/apt/sources.list.d/debian.sources
if [ -e "$src" ]; then
	sed -n '/^Types:/,/^$/p' "$src" | sed 's/^Types: deb$/Types: deb-src/' | $sudo tee "$out" >/dev/null
else
	grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
		$sudo tee /etc/apt/sources.list.d/opus-deb-src.list >/dev/null
	touch "$out"
fi
$sudo apt-get update -qq
