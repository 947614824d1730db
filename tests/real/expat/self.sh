#!/usr/bin/env bash
# Self-replacement of a library nobody here wrote: every function of
# Debian's libexpat (tests/real/expat/build.sh) replaced by its own
# recompiled code in two running python3 processes that parse XML through
# pyexpat, while they answer requests. A set of documents (namespaces,
# entities, CDATA, comments, encodings, errors of several kinds, a large
# one) must be answered the same before, patched and reverted; no request of
# the load may fail; a third python3 on the system's libexpat is untouched.
# Writes build/real/expat-self.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}/expat
HERE=$ROOT/tests/real/expat
JSON=$WORK/../expat-self.json
mkdir -p "$WORK/logs"

fail() {
	echo "real expat self-replacement: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
lib=$(readlink -f "$tree/build/libexpat.so.1")

start_server() {
	local out
	out=$(mktemp "$WORK/logs/self.XXXXXX")
	LD_LIBRARY_PATH=$1 /usr/bin/python3 "$HERE/xmlserver.py" >"$out" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		grep -q '^ready' "$out" && break
		sleep 0.05
	done
	grep -q '^ready' "$out" || fail "xmlserver did not start: $(cat "$out")"
	echo "$pid $(awk '/^ready/ {print $2}' "$out")"
}

ask() {
	local answer=""
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf '%s\n' "$2" >&3
	IFS= read -r -t 10 answer <&3 || true
	exec 3<&-
	printf '%s\n' "$answer"
}

# The documents: each answer is expat's, computed by the running process.
big="<r>$(for i in $(seq 400); do printf '<item n="%d">text %d &amp; more</item>' "$i" "$i"; done)</r>"
docs=(
	'<doc><a x="1"/><b>text</b></doc>'
	'<?xml version="1.0" encoding="UTF-8"?><r xmlns="urn:a" xmlns:p="urn:b"><p:x p:y="2"/></r>'
	'<!DOCTYPE r [<!ENTITY e "entity text">]><r>&e;&lt;&#65;&#x42;</r>'
	'<r><![CDATA[<not> & markup]]><!-- a comment --><?pi data?></r>'
	'<?xml version="1.0" encoding="ISO-8859-1"?><r a="caf&#233;">na&#239;ve</r>'
	'<r><a></b></r>'
	'<r attr="1" attr="2"/>'
	'<r>&undefined;</r>'
	'<r><a>'
	'not xml at all'
	'<r x="<"/>'
	'<!DOCTYPE r [<!ENTITY a "&b;"><!ENTITY b "&a;">]><r>&a;</r>'
	"$big"
)
probe() {
	for d in "${docs[@]}"; do
		ask "$1" "PARSE $d"
	done
	ask "$1" NEGLEN
}

read -r pid1 port1 < <(start_server "$tree/build")
read -r pid2 port2 < <(start_server "$tree/build")
read -r pid3 port3 < <(start_server "")
trap 'kill $pid1 $pid2 $pid3 2>/dev/null || true' EXIT
probe "$port1" >"$WORK/self.before"
grep -q '^OK 401$' "$WORK/self.before" || fail "the large document: $(cat "$WORK/self.before")"

start=$(date +%s%N)
"$OPUS" build --replace-all --source "$tree" --binary "$lib" --cdb "$tree/build/compile_commands.json" \
	--id expat-self -o "$WORK/self.opatch" >"$WORK/logs/self.build" 2>&1 ||
	fail "opus build --replace-all: $(tail -3 "$WORK/logs/self.build")"
build_ms=$((($(date +%s%N) - start) / 1000000))

rm -f "$WORK/stop"
(
	n=0 bad=0
	while [ ! -e "$WORK/stop" ]; do
		for p in "$port1" "$port2"; do
			n=$((n + 1))
			[ "$(ask "$p" "PARSE ${docs[0]}")" = "OK 3" ] || bad=$((bad + 1))
		done
	done
	echo "$n $bad" >"$WORK/self.load"
) &
loader=$!
sleep 0.5
"$OPUS" apply --all --json "$WORK/self.opatch" >"$WORK/logs/self.apply.json" ||
	fail "opus apply --all: $(cat "$WORK/logs/self.apply.json")"
probe "$port1" >"$WORK/self.patched1"
probe "$port2" >"$WORK/self.patched2"
"$OPUS" revert --all expat-self >"$WORK/logs/self.revert" ||
	fail "revert: $(cat "$WORK/logs/self.revert")"
sleep 0.3
touch "$WORK/stop"
wait "$loader"
read -r requests failed <"$WORK/self.load"
probe "$port1" >"$WORK/self.reverted"

patched=$(jq -r '.processes[] | select(.state == "patched") | .pid' "$WORK/logs/self.apply.json" |
	sort -n | xargs)
[ "$patched" = "$(printf '%s\n' "$pid1" "$pid2" | sort -n | xargs)" ] ||
	fail "apply --all patched '$patched', expected $pid1 $pid2"
grep -q '/memfd:opus-livepatch:' "/proc/$pid3/maps" && fail "the system-libexpat server was touched"
for f in patched1 patched2 reverted; do
	diff "$WORK/self.before" "$WORK/self.$f" >"$WORK/self.diff" ||
		fail "answers differ ($f): $(head -10 "$WORK/self.diff")"
done
for p in $pid1 $pid2 $pid3; do
	[ -d "/proc/$p" ] || fail "server $p is gone"
done
[ "$failed" = 0 ] || fail "$failed of $requests requests failed"

replaced=$(grep -c '^replaced' "$WORK/logs/self.build")
jq -n --arg date "$(date -u +%F)" --argjson replaced "$replaced" --argjson build_ms "$build_ms" \
	--argjson left_out "$(grep '^info' "$WORK/logs/self.build" | sed 's/^info *//' | jq -R . | jq -s .)" \
	--argjson docs "${#docs[@]}" --argjson requests "$requests" --argjson failed "$failed" \
	'{date: $date, replaced: $replaced, left_out: $left_out, build_ms: $build_ms,
	  documents: $docs, requests_during: $requests, failed_requests: $failed}' >"$JSON"
echo "expat self-replacement: $replaced functions replaced in pids $patched; ${#docs[@]} documents answered the same patched and reverted; $requests requests, $failed failed"
