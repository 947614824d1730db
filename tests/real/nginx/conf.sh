#!/usr/bin/env bash
# Renders nginx.conf.in for the nginx under test: conf.sh PREFIX TREE OUT
# [DAEMON]. Picks free loopback ports for its listeners and prints the HTTP
# one. DAEMON is "on" or "off" (default: off, nginx stays in the foreground).
set -euo pipefail
prefix=$1 tree=$2 out=$3 daemon=${4:-off}

# shellcheck source=tests/real/port.sh
. "$(dirname "$0")/../port.sh"
http=$(free_port)
# What /pool/ serves, read by the workers' thread pool: 300 KB of lines.
mkdir -p "$prefix/html/pool"
seq 1 50000 >"$prefix/html/pool/lines.txt"
sed -e "s#@PREFIX@#$prefix#g; s#@TREE@#$tree#g; s#@HTTP@#$http#g" \
	-e "s#@BACKEND@#$(free_port)#g; s#@SMTP@#$(free_port)#g; s#@STREAM@#$(free_port)#g" \
	-e "s#^daemon off;#daemon $daemon;#" \
	"$(dirname "$0")/nginx.conf.in" >"$out"
echo "$http"
