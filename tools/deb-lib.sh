# shellcheck shell=bash
# Shared by deb-rebuild.sh and opus-deb (sourced): what dpkg and apt say
# about an installed package.

# deb_package_of PACKAGE|PID|FILE: the installed binary package that a
# process runs, a file belongs to, or that is named; "" when none.
deb_package_of() {
	local what=$1 exe owner
	if [[ $what =~ ^[0-9]+$ ]]; then
		exe=$(readlink "/proc/$what/exe") || return 0
		what=${exe% (deleted)}
	fi
	if [[ $what == /* ]]; then
		# With merged /usr, /proc/PID/exe says /usr/bin/bash where dpkg
		# lists /bin/bash.
		owner=$(dpkg -S "$what" 2>/dev/null | head -1 | cut -d: -f1) || true
		[ -n "$owner" ] || [[ $what != /usr/* ]] ||
			owner=$(dpkg -S "${what#/usr}" 2>/dev/null | head -1 | cut -d: -f1) || true
		what=$owner
	fi
	[ -n "$what" ] || return 0
	[ "$(dpkg-query -W -f='${Status}' "$what" 2>/dev/null || true)" = "install ok installed" ] &&
		echo "$what"
	return 0
}

# deb_upstream VERSION: the upstream part (no epoch, no Debian revision).
deb_upstream() {
	local v=${1#*:}
	echo "${v%-*}"
}

# deb_madison PACKAGE: "version|archive suite/component arch Packages" per
# version apt knows (apt-cache madison pads its fields with spaces).
deb_madison() {
	apt-cache madison "$1" | awk -F'|' '{for (i = 1; i <= NF; i++) gsub(/^ +| +$/, "", $i); print $2 "|" $3}'
}
