# shellcheck shell=bash
# The redis servers of tests/real/redis/self.sh and fixes.sh, and their
# load. Sourced after tree, WORK, fail and rc are set, and port.sh.

# start_server: a redis with two I/O threads; prints "pid port".
start_server() {
	local port pid
	port=$(free_port)
	setsid "$tree/src/redis-server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
		--io-threads 2 --enable-debug-command yes --enable-module-command yes \
		--enable-protected-configs yes --dir "$WORK" --dbfilename "dump.$port.rdb" \
		>"$WORK/logs/server.$port" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		"$tree/src/redis-cli" -p "$port" ping 2>/dev/null | grep -q PONG && break
		sleep 0.05
	done
	"$tree/src/redis-cli" -p "$port" ping | grep -q PONG ||
		fail "redis did not start: $(cat "$WORK/logs/server.$port")"
	echo "$pid $port"
}

# under_load PORT CMD...: CMD run while rc.py loads the server at PORT;
# sets REQUESTS and FAILED, returns CMD's status.
under_load() {
	local port=$1 loader ret=0
	shift
	rm -f "$WORK/stop"
	rc load "$port" "$WORK/stop" "$WORK/load.out" &
	loader=$!
	sleep 0.5
	"$@" || ret=$?
	sleep 0.5
	touch "$WORK/stop"
	wait "$loader"
	read -r REQUESTS FAILED <"$WORK/load.out"
	return $ret
}
