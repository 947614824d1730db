#!/usr/bin/env bash
# Installs what opus needs to build and test, with apt-get; quiet when all is there.
set -euo pipefail
pkgs=(gcc make meson ninja-build pkg-config libelf-dev libdw-dev libbz2-dev libjansson-dev libclang-dev jq patch
      clang-format procps systemd util-linux python3 cmake ansible-core libsodium-dev clang libclang-rt-14-dev time gdb
      debhelper dpkg-dev fakeroot lintian bash-completion man-db)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
