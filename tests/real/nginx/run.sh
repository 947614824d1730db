#!/usr/bin/env bash
# The real-world suite: Debian 12's own nginx security fixes, built with
# opus from Debian's patch files and applied live, as one stack, to every
# process of a running nginx (master and workers) while wrk drives load;
# then the whole stack is reverted under load. Writes build/real/nginx.json
# and docs/real-world.md. Checks: no request fails, the server serves to the
# end, CVE-2026-42945's misbehaviour is gone on the same pids, and every
# patch not applied has a reason.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}
HERE=$ROOT/tests/real/nginx
JSON=$WORK/nginx.json
DOC=$ROOT/docs/real-world.md
mkdir -p "$WORK/patches" "$WORK/logs"

for p in wrk bear libpcre2-dev zlib1g-dev libssl-dev jq; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done

fail() {
	echo "real nginx: FAIL: $*" >&2
	exit 1
}

tree=$(bash "$HERE/build.sh" "$WORK")
prefix=$WORK/prefix
version=$(cat "$WORK/source/version")

# The tree later fixes are built against: the running tree plus the fixes
# so far, with its compile database moved along.
fix=$WORK/fix
rm -rf "$fix"
cp -a "$tree" "$fix"
sed -i "s#$tree/#$fix/#g; s#\"$tree\"#\"$fix\"#g" "$fix/compile_commands.json"

HTTP=$(bash "$HERE/conf.sh" "$prefix" "$tree" "$prefix/nginx.conf")

: >"$prefix/error.log"
"$tree/objs/nginx" -p "$prefix" -c "$prefix/nginx.conf" &
master=$!
trap 'kill $master 2>/dev/null || true; wait $master 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	[ "$(pgrep -c -P "$master" || true)" -ge 2 ] && break
	sleep 0.05
done
workers=$(pgrep -P "$master" | tr '\n' ' ')
pids="$master $workers"
echo "nginx $version: master $master, workers $workers"

# get PATH: the body of a plain HTTP/1.0 request, its lines joined. The
# headers are read line by line, the body whole: joined by bash a line at
# a time, the pool's 50,000 lines took 90 s a read.
get() {
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$HTTP"
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3
	while IFS= read -r -t 10 line <&3 && [ -n "${line%$'\r'}" ]; do :; done
	timeout 10 cat <&3 | sed 's/\r$//' | tr -d '\n'
	exec 3<&-
	echo
}

# load_start SECONDS NAME / load_stop: wrk against the proxy path, in the
# background; load_stop sets LOAD_DONE (requests completed) and LOAD_FAILED
# (socket errors and non-2xx answers).
load_start() {
	LOAD_NAME=$2 LOAD_LOG=$WORK/logs/wrk.$2.out
	wrk -t2 -c8 -d"$1" "http://127.0.0.1:$HTTP/proxy" >"$LOAD_LOG" 2>&1 &
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
	# Say which step lost requests and how, with what nginx logged: a
	# failed run is read from CI's log alone.
	if [ "$LOAD_FAILED" != 0 ]; then
		echo "$LOAD_NAME: $LOAD_FAILED requests failed:" \
			"$(grep -E 'Socket errors|Non-2xx' "$LOAD_LOG" | xargs)" >&2
		grep -v '\[notice\]' "$prefix/error.log" 2>/dev/null | tail -5 >&2 || true
	fi
}

binary_for() {
	local files
	files=$(grep '^+++ ' "$1" | awk '{print $2}' | cut -d/ -f2-)
	if ! grep -qv '^src/mail/' <<<"$files"; then
		echo "$tree/objs/ngx_mail_module.so"
	elif ! grep -qv '^src/stream/' <<<"$files"; then
		echo "$tree/objs/ngx_stream_module.so"
	else
		echo "$tree/objs/nginx"
	fi
}

opus_list_count() { "$OPUS" list --json "$1" | jq '.patches | length'; }

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

cve_before=$(get '/cve42945/a%26b')
# pool_serves WHEN: the file the workers' thread pool reads, whole.
pool_serves() {
	[ "$(get /pool/lines.txt)" = "$(tr -d '\n' <"$prefix/html/pool/lines.txt")" ] ||
		fail "the thread pool's file is not served whole $1"
}
pool_serves "before patching"
tasks=("/proc/${workers%% *}/task"/*)
[ "${#tasks[@]}" -gt 32 ] || fail "the workers have no thread pool (${#tasks[@]} threads)"
echo "[]" >"$JSON"
total_failed=0
applied_ids=()
# Per object, the patches applied to it so far: the next one is built on
# top of them (opus build --after), as the tree is.
declare -A afters=()
mapfile -t cves < <(grep '^CVE-' "$fix/debian/patches/series")
for p in "${cves[@]}"; do
	id=${p%.patch}
	diff=$fix/debian/patches/$p
	bin=$(binary_for "$diff")
	result=applied reason="" funcs="[]" findings="" pause_us=0 apply_ms=0 done=0 failed=0
	start=$(date +%s%N)
	status=0
	# shellcheck disable=SC2086
	"$OPUS" build --source "$fix" --diff "$diff" --binary "$bin" --id "$id" ${afters[$bin]:-} \
		-o "$WORK/patches/$id.opatch" >"$WORK/logs/$id.build" 2>"$WORK/logs/$id.err" ||
		status=$?
	build_ms=$(ms "$start")
	findings=$(grep -E '^  [^ ].*: (error|warning|info): ' "$WORK/logs/$id.build" | sed 's/^  //' || true)
	funcs=$(awk '$1 == "replaced" {print $2}' "$WORK/logs/$id.build" | jq -R . | jq -s -c .)
	if [ "$status" = 3 ]; then
		result="refused by analysis" reason=$(tail -1 "$WORK/logs/$id.err")
	elif [ "$status" != 0 ] && grep -q "changes no function" "$WORK/logs/$id.err"; then
		# The fix compiles to the very same code here: nothing to apply.
		result="no code change" reason=$(tail -1 "$WORK/logs/$id.err")
	elif [ "$status" != 0 ]; then
		result=failed reason=$(tail -1 "$WORK/logs/$id.err")
	else
		load_start 4 "$id"
		start=$(date +%s%N)
		# One command for the master and every worker: by build-id.
		if ! "$OPUS" apply --all --json "$WORK/patches/$id.opatch" \
			>"$WORK/logs/$id.apply" 2>"$WORK/logs/$id.err"; then
			result=failed
			reason=$(jq -r '[.processes[]? | select(.state == "failed") | .reason][0] // empty' \
				"$WORK/logs/$id.apply" 2>/dev/null || true)
			reason=${reason:-$(tail -1 "$WORK/logs/$id.err")}
		else
			patched=$(jq -r '.processes[] | select(.state == "patched") | .pid' \
				"$WORK/logs/$id.apply" | sort -n | xargs)
			[ "$patched" = "$(xargs -n1 <<<"$pids" | sort -n | xargs)" ] ||
				fail "$id: apply --all patched '$patched', expected nginx's '$pids'"
			pause_us=$(jq '[.processes[].pause_us] | max' "$WORK/logs/$id.apply")
			applied_ids+=("$id")
			afters[$bin]="${afters[$bin]:-} --after $WORK/patches/$id.opatch"
		fi
		apply_ms=$(ms "$start")
		load_stop
		done=$LOAD_DONE failed=$LOAD_FAILED
		total_failed=$((total_failed + failed))
	fi
	[ "$result" = applied ] || [ -n "$reason" ] || fail "$id: $result without a reason"
	# The next fix is built on this one, as Debian's series has it.
	patch -s -p1 -d "$fix" <"$diff"
	jq --arg id "$id" --arg bin "$(basename "$bin")" --argjson funcs "$funcs" \
		--arg findings "$findings" --argjson build_ms "$build_ms" --argjson apply_ms "$apply_ms" \
		--argjson pause_us "$pause_us" --argjson done "$done" --argjson failed "$failed" \
		--arg result "$result" --arg reason "$reason" \
		'. + [{cve: $id, object: $bin, functions: $funcs,
		       findings: ($findings | split("\n") | map(select(length > 0))),
		       build_ms: $build_ms, apply_ms: $apply_ms, pause_us: $pause_us,
		       requests_during_apply: $done, failed_requests: $failed,
		       result: $result, reason: $reason}]' "$JSON" >"$JSON.tmp"
	mv "$JSON.tmp" "$JSON"
	printf '%-20s %-22s %s %s\n' "$id" "$(basename "$bin")" "$result" "$reason"
done

cve_after=$(get '/cve42945/a%26b')
pool_serves "with the patches in"
echo "CVE-2026-42945 on the same pids: before '$cve_before', after '$cve_after'"
for pid in $pids; do
	[ -d "/proc/$pid" ] || fail "process $pid is gone"
done

# Revert the whole stack, newest first, under load.
load_start 6 revert
for ((i = ${#applied_ids[@]} - 1; i >= 0; i--)); do
	id=${applied_ids[i]}
	# A process that failed is named in the JSON, not on stderr; a crash
	# of opus by its exit status.
	status=0
	"$OPUS" revert --all --json "$id" >"$WORK/logs/revert.$id" 2>"$WORK/logs/revert.err" ||
		status=$?
	reverted=$(jq .summary.reverted "$WORK/logs/revert.$id" 2>/dev/null || true)
	[ "$status" = 0 ] && [ "$reverted" = "$(wc -w <<<"$pids")" ] ||
		fail "revert --all $id: exit status $status, nginx is $pids;" \
			"opus: $(jq -c '[.processes[]? | {pid, state, reason}], .summary' \
				"$WORK/logs/revert.$id" 2>/dev/null || true)" \
			"$(tail -3 "$WORK/logs/revert.err")"
done
for pid in $pids; do
	[ "$(opus_list_count "$pid")" = 0 ] || fail "process $pid still has patches after the revert"
done
load_stop
revert_done=$LOAD_DONE revert_failed=$LOAD_FAILED
total_failed=$((total_failed + revert_failed))
[ "$(get /)" = ok ] || fail "nginx does not serve after the revert"
pool_serves "after the revert"
cve_reverted=$(get '/cve42945/a%26b')

applied=$(jq '[.[] | select(.result == "applied")] | length' "$JSON")
jq --arg version "$version" --arg date "$(date -u +%F)" --arg before "$cve_before" \
	--arg after "$cve_after" --arg reverted "$cve_reverted" --argjson rf "$revert_failed" \
	--argjson rd "$revert_done" \
	'{nginx: $version, date: $date, patches: .,
	  cve_2026_42945: {before: $before, after: $after, after_revert: $reverted},
	  revert: {requests: $rd, failed_requests: $rf}}' "$JSON" >"$JSON.tmp"
mv "$JSON.tmp" "$JSON"
bash "$ROOT/tests/real/render.sh" >"$DOC"
echo "applied live: $applied of ${#cves[@]}; failed requests: $total_failed"

[ "$total_failed" = 0 ] || fail "$total_failed requests failed"
[ "$cve_before" != "$cve_after" ] || fail "CVE-2026-42945: no change in behaviour ('$cve_after')"
[ "$cve_reverted" = "$cve_before" ] || fail "CVE-2026-42945: revert did not restore the old behaviour"
echo "real nginx: $applied applied, $((${#cves[@]} - applied)) not applied, 0 failed requests"
