# shellcheck shell=bash
# free_port: a free loopback port below the kernel's ephemeral range (sourced
# by the real-world suites). A port in that range can be the local end of
# some client's connection, which a connect() probe does not see and which
# makes a server's bind() fail (CI saw "Address already in use").
free_port() {
	local p low
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	while :; do
		p=$((10000 + RANDOM % (low - 10000)))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			echo "$p"
			return
		}
	done
}
