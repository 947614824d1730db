#!/usr/bin/env bash
# make demo: fix an authentication hole in a running multi-threaded server,
# without restarting it, while a client keeps using it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=$ROOT/build/opus
DEMO=$ROOT/build/demo
SRC=$ROOT/tests/targets/authsrv

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
req() {
	local answer
	exec 3<>"/dev/tcp/127.0.0.1/$PORT"
	printf '%s\n' "$1" >&3
	IFS= read -r -t 10 answer <&3 || true
	exec 3<&-
	printf '%s\n' "$answer"
}

rm -rf "$DEMO"
mkdir -p "$DEMO/src"
cp "$SRC/authsrv.c" "$DEMO/src/"
cd "$DEMO/src"
FLAGS=(-O2 -g -fomit-frame-pointer -pthread)
printf '[{"directory": "%s", "file": "authsrv.c", "arguments": ["gcc", "-O2", "-g", "-fomit-frame-pointer", "-pthread", "-c", "authsrv.c", "-o", "authsrv.o"]}]\n' \
	"$DEMO/src" >compile_commands.json
gcc "${FLAGS[@]}" -c authsrv.c -o authsrv.o
gcc "${FLAGS[@]}" authsrv.o -o authsrv
# The server runs stripped, as production binaries do; opus builds against
# the unstripped copy with the same build-id.
strip -o "$DEMO/authsrv-prod" authsrv

say "Start the server (4 threads: accept, ticker, futex waiter, epoll poller)"
"$DEMO/authsrv-prod" >"$DEMO/server.out" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; kill $CLIENT 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q ready "$DEMO/server.out" && break; sleep 0.05; done
PORT=$(awk '/^ready/ {print $2}' "$DEMO/server.out")
echo "pid $SERVER, port $PORT"

say "A client keeps using it"
(
	ok=0 bad=0
	while [ ! -e "$DEMO/stop-client" ]; do
		if [ -n "$(req STATS 2>/dev/null)" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
	done
	echo "$ok $bad" >"$DEMO/client.out"
) &
CLIENT=$!
sleep 0.5
echo "stats: $(req STATS)"

say "The hole: admin with an EMPTY password is let in"
echo "AUTH admin <empty>  -> $(req 'AUTH admin ')"
echo "AUTH admin hunter2  -> $(req 'AUTH admin hunter2')"

say "The fix, as a developer would send it"
cat "$SRC/fix-auth.diff"

say "opus build: recompile only authsrv.c, diff the objects, write the patch"
"$OPUS" build --source "$DEMO/src" --diff "$SRC/fix-auth.diff" --binary "$DEMO/src/authsrv" \
	-o "$DEMO/fix-auth.opatch" --description "reject empty and partial passwords"
"$OPUS" inspect "$DEMO/fix-auth.opatch" | head -8

say "opus apply: into the running process"
"$OPUS" apply "$SERVER" "$DEMO/fix-auth.opatch"
"$OPUS" list "$SERVER"
grep opus "/proc/$SERVER/maps"

say "The hole is closed; the server kept its state and its pid"
echo "AUTH admin <empty>  -> $(req 'AUTH admin ')"
echo "AUTH admin hunter2  -> $(req 'AUTH admin hunter2')"
echo "stats: $(req STATS)   (counters went on from where they were)"
echo "pid: $SERVER, still $(ps -o stat= -p "$SERVER")"

say "opus revert: back to the original code"
"$OPUS" revert "$SERVER"
echo "AUTH admin <empty>  -> $(req 'AUTH admin ')"

touch "$DEMO/stop-client"
wait "$CLIENT"
read -r ok bad <"$DEMO/client.out"
say "Client: $ok requests answered, $bad failed, across apply and revert"
[ "$bad" -eq 0 ]
