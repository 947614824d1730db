#!/usr/bin/env bash
# Renders nginx.conf.in for the nginx under test: conf.sh PREFIX TREE OUT
# [DAEMON]. Picks free loopback ports for its listeners and prints the HTTP
# one. DAEMON is "on" or "off" (default: off, nginx stays in the foreground).
set -euo pipefail
prefix=$1 tree=$2 out=$3 daemon=${4:-off}

# A port below the kernel's ephemeral range: a port in it can be the local
# end of some client's connection, which a connect() probe does not see and
# which makes nginx's bind() fail (CI saw "Address already in use").
port() {
	local p low
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	while :; do
		p=$((10000 + RANDOM % (low - 10000)))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
http=$(port)
sed -e "s#@PREFIX@#$prefix#g; s#@TREE@#$tree#g; s#@HTTP@#$http#g" \
	-e "s#@BACKEND@#$(port)#g; s#@SMTP@#$(port)#g; s#@STREAM@#$(port)#g" \
	-e "s#^daemon off;#daemon $daemon;#" \
	"$(dirname "$0")/nginx.conf.in" >"$out"
echo "$http"
