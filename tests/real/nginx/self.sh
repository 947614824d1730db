#!/usr/bin/env bash
# Self-replacement on code nobody here wrote: every function of every nginx
# translation unit (the executable, and the mail and stream modules) that
# the binaries hold is replaced by its own recompiled code, in a running
# master and its workers, under load. Requests across nginx's features
# (rewrite, DAV, proxy, charset, mp4, scgi/uwsgi/grpc errors, stream proxy,
# SMTP) must be answered the same before, after and after the revert, and
# no request of the load may fail. Functions always on a stack (the main
# loops) are named by opus's refusal and kept; every other refusal fails.
# Writes build/real/nginx-self.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}
HERE=$ROOT/tests/real/nginx
JSON=$WORK/nginx-self.json
SELF=$WORK/self
mkdir -p "$SELF" "$WORK/logs"

for p in wrk bear curl libpcre2-dev zlib1g-dev libssl-dev jq; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done

fail() {
	echo "real nginx self-replacement: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
prefix=$WORK/prefix
mkdir -p "$prefix/html/dav"
# The workers run as nobody when the master is root.
chmod a+rwx "$prefix/html/dav"
HTTP=$(bash "$HERE/conf.sh" "$prefix" "$tree" "$prefix/self.conf")
STREAM=$(sed -n 's/^ *listen 127.0.0.1:\([0-9]*\);$/\1/p' "$prefix/self.conf" | sed -n 4p)
SMTP=$(sed -n 's/^ *listen 127.0.0.1:\([0-9]*\);$/\1/p' "$prefix/self.conf" | sed -n 3p)

"$tree/objs/nginx" -p "$prefix" -c "$prefix/self.conf" &
master=$!
trap 'kill $master 2>/dev/null || true; wait $master 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ "$(pgrep -c -P "$master" || true)" -ge 2 ] && break
	sleep 0.05
done
pids="$master $(pgrep -P "$master" | tr '\n' ' ')"
echo "nginx: master and workers $pids"

# date_ok: the Date header of an answer is now (within a minute): the
# worker's time cache is fed by vDSO functions reached through IFUNCs.
date_ok() {
	local d
	d=$(curl -s -m 10 -D - -o /dev/null "http://127.0.0.1:$HTTP/" | sed -n 's/^Date: \(.*\)\r$/\1/p')
	d=$(date -d "$d" +%s 2>/dev/null || echo 0)
	if [ $((d - $(date +%s))) -lt 60 ] && [ $(($(date +%s) - d)) -lt 60 ]; then
		echo "date ok"
	else
		echo "date wrong: $d"
	fi
}

# probe: one request per feature; prints status and body of each.
probe() {
	local u=http://127.0.0.1:$HTTP
	date_ok
	date_ok
	c() { curl -s -m 10 -o - -w ' [%{http_code}]\n' "$@" || echo " [curl failed]"; }
	c "$u/"
	c "$u/cve42945/a%26b"
	c "$u/charset"
	c "$u/proxy"
	c "$u/scgi"
	c "$u/uwsgi"
	c "$u/grpc"
	c "$u/mp4/none.mp4"
	c "$u/nothing-here"
	c -X PUT --data-binary "hello dav" "$u/dav/x/y.txt"
	c "$u/dav/x/y.txt"
	c -X MKCOL "$u/dav/d/"
	c -X COPY -H "Destination: $u/dav/d/z.txt" "$u/dav/x/y.txt"
	c "$u/dav/d/z.txt"
	c -X DELETE "$u/dav/x/"
	c -X DELETE "$u/dav/d/"
	c "http://127.0.0.1:$STREAM/"
	# SMTP: the greeting and the answers to EHLO and QUIT.
	exec 3<>"/dev/tcp/127.0.0.1/$SMTP"
	printf 'EHLO probe\r\nQUIT\r\n' >&3
	timeout 5 cat <&3 | tr -d '\r' || true
	exec 3<&-
}

load_start() {
	LOAD_LOG=$WORK/logs/wrk.self.$1.out
	wrk -t1 -c2 -d"$2" "http://127.0.0.1:$HTTP/proxy" >"$LOAD_LOG" 2>&1 &
	WRK=$!
	sleep 0.3
}
load_stop() {
	local errs non2xx
	wait "$WRK" || true
	LOAD_DONE=$(awk '/requests in/ {print $1}' "$LOAD_LOG")
	errs=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$LOAD_LOG")
	non2xx=$(awk '/Non-2xx/ {print $5}' "$LOAD_LOG")
	LOAD_DONE=${LOAD_DONE:-0}
	LOAD_FAILED=$((${errs:-0} + ${non2xx:-0}))
}

probe >"$SELF/probe.before"
grep -q '^hello dav' "$SELF/probe.before" || fail "the probe does not reach DAV: $(head -20 "$SELF/probe.before")"

# self_patch OBJECT: the patch replacing every function of OBJECT, with the
# functions that are on some process's stack for good kept (found by a
# first apply that opus refuses, naming them). Prints the patch path.
self_patch() {
	local obj=$1 id excludes=() busy f
	id=self-$(basename "$obj" | tr -c 'A-Za-z0-9\n' '-')
	for round in 1 2 3; do
		"$OPUS" build --replace-all --source "$tree" --binary "$obj" --id "$id" \
			"${excludes[@]}" -o "$SELF/$id.opatch" >"$SELF/$id.build" 2>"$SELF/$id.err" ||
			fail "build of every function of $obj: $(tail -1 "$SELF/$id.err")"
		# Stop-world, to be refused naming what is on a stack for good.
		if "$OPUS" apply --all --stop-world --timeout 1 --json "$SELF/$id.opatch" \
			>"$SELF/$id.probe" 2>>"$SELF/$id.err"; then
			# Taken out again: the real apply is under load, below.
			"$OPUS" revert --all "$id" >/dev/null
			printf '%s\n' "${excludes[@]}" | grep -v -- --exclude >"$SELF/$id.kept" || true
			echo "$SELF/$id.opatch"
			return 0
		fi
		busy=$(jq -r '.processes[] | select(.state == "failed") | .reason' "$SELF/$id.probe" |
			sed -n 's/.* is inside \(.*\)$/\1/p' | sed 's/; also on a stack: /, /' |
			tr ',' '\n' | tr -d ' ' | grep . | sort -u)
		[ -n "$busy" ] || fail "apply of every function of $obj: $(cat "$SELF/$id.probe" "$SELF/$id.err")"
		echo "round $round: kept $(echo "$busy" | xargs)" >&2
		for f in $busy; do
			excludes+=(--exclude "$f")
		done
	done
	fail "$obj: still busy after ${excludes[*]}"
}

objects="$tree/objs/nginx $tree/objs/ngx_mail_module.so $tree/objs/ngx_stream_module.so"
patches=()
for obj in $objects; do
	start=$(date +%s)
	patches+=("$(self_patch "$obj")")
	echo "$(basename "$obj"): $(grep -c '^replaced' "$SELF/self-$(basename "$obj" | tr -c 'A-Za-z0-9\n' '-').build") functions, built in $(($(date +%s) - start)) s"
done

load_start apply 30
for p in "${patches[@]}"; do
	"$OPUS" apply --all --timeout 20 ${OPUS_APPLY_FLAGS:-} --json "$p" >"$p.apply" ||
		fail "apply --all $p under load: $(jq -c '[.processes[] | select(.state == "failed")]' "$p.apply")"
done
probe >"$SELF/probe.patched"
load_stop
apply_done=$LOAD_DONE apply_failed=$LOAD_FAILED
diff "$SELF/probe.before" "$SELF/probe.patched" >"$SELF/probe.diff" ||
	fail "answers changed once every function was replaced: $(head -20 "$SELF/probe.diff")"
for pid in $pids; do
	[ -d "/proc/$pid" ] || fail "process $pid is gone"
	[ "$("$OPUS" list --json "$pid" | jq '.patches | length')" = 3 ] ||
		fail "process $pid does not have the three patches"
done

load_start revert 20
for ((i = ${#patches[@]} - 1; i >= 0; i--)); do
	id=$(basename "${patches[i]}" .opatch)
	"$OPUS" revert --all --timeout 20 "$id" >"$SELF/$id.revert" ||
		fail "revert --all $id under load: $(tail -3 "$SELF/$id.revert")"
done
load_stop
revert_done=$LOAD_DONE revert_failed=$LOAD_FAILED
probe >"$SELF/probe.reverted"
diff "$SELF/probe.before" "$SELF/probe.reverted" >"$SELF/probe.diff" ||
	fail "answers changed after the revert: $(head -20 "$SELF/probe.diff")"

{
	echo "["
	first=1
	for obj in $objects; do
		id=self-$(basename "$obj" | tr -c 'A-Za-z0-9\n' '-')
		[ $first = 1 ] || echo ","
		first=0
		jq -n --arg object "$(basename "$obj")" \
			--argjson replaced "$(grep -c '^replaced' "$SELF/$id.build")" \
			--argjson kept "$(jq -R . "$SELF/$id.kept" | jq -s 'map(select(length > 0))')" \
			--argjson left_out "$(grep '^info' "$SELF/$id.build" | grep -v '(unit)' |
				sed 's/^info *//' | jq -R . | jq -s .)" \
			'{object: $object, replaced: $replaced, kept_busy: $kept, left_out: $left_out}'
	done
	echo "]"
} | jq --arg date "$(date -u +%F)" --argjson ad "$apply_done" --argjson af "$apply_failed" \
	--argjson rd "$revert_done" --argjson rf "$revert_failed" \
	'{date: $date, objects: ., load: {apply: {requests: $ad, failed: $af},
	  revert: {requests: $rd, failed: $rf}}, probe: "same answers before, patched, reverted"}' \
	>"$JSON"
jq -c '.objects[] | {object, replaced, kept_busy}' "$JSON"
echo "nginx self-replacement: requests under load $apply_done (failed $apply_failed) while applying, $revert_done (failed $revert_failed) while reverting"
[ "$apply_failed" = 0 ] && [ "$revert_failed" = 0 ] || fail "requests failed"
