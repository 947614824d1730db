#!/usr/bin/env bash
# Debian's installed binaries patched live through a rebuild (issue 13),
# each with the one command an admin runs: opus deb.
#
# memcached 1.6.18-1, installed from the archive: `opus deb memcached --to
# 1.6.18-1+deb12u1` rebuilds it the way Debian built it (the rebuild's
# build-id differs from the installed file's, so patches are bound by
# section equality) and builds the three CVE fixes deb12u1 adds. Debian's
# configuration compiles none of their code (proxy, SASL password file), so
# the right answer is "nothing to apply" (exit 4). To prove the path end to
# end, an update made here as a source package (deb12u1 plus a change to a
# compiled function, the version reply) is applied with `opus deb --to
# FILE.dsc --apply` to the running packaged memcached under load, then
# reverted: the reply changes and changes back on the same pid, and no
# request fails. opus deb killed in the middle of a run leaves fixes in the
# rebuild's tree; the next run puts the tree back first, and answers the
# same.
#
# nginx 1.22.1-9+deb12u9 through `opus deb nginx --to 1.22.1-9+deb12u11`:
# its rebuild has the installed build-id; deb12u11's fixes are built when
# the archive mirror serves that source, and the reason is recorded when it
# does not.
#
# Installs packages and may change -dev package versions: run on a build
# machine. Writes build/real/installed.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OPUS=${OPUS:-$ROOT/build/opus}
WORK=${REAL_WORK:-$ROOT/build/real}/installed
JSON=$WORK/../installed.json
mkdir -p "$WORK"
fail() {
	echo "real installed: FAIL: $*" >&2
	exit 1
}
for p in bear jq python3 dpkg-dev wrk curl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
bash "$ROOT/tools/deb-src.sh"
# The packages' own test suites are not what is checked here.
export DEB_BUILD_OPTIONS=nocheck
# shellcheck source=tests/real/port.sh
. "$ROOT/tests/real/port.sh"

# Packages installed here must not start their services.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	made_policy=1
fi
mc="" ng=""
cleanup() {
	[ -z "$mc" ] || kill "$mc" 2>/dev/null || true
	[ -z "$ng" ] || kill "$ng" 2>/dev/null || true
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
}
trap cleanup EXIT

install_version() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "$@" \
		>"$WORK/install.log" 2>&1 || fail "cannot install $*: $(tail -2 "$WORK/install.log")"
}

# shellcheck source=tools/deb-lib.sh
. "$ROOT/tools/deb-lib.sh"

# make_update DSC VERSION NAME FILE SED [REFRESH]: an update of DSC's source
# package as Debian makes one: version VERSION, whose series adds the quilt
# patch NAME, the sed expression SED applied to FILE; with REFRESH, the
# description of the series' REFRESH-th patch changes too. Prints the new
# .dsc.
make_update() {
	local dsc=$1 version=$2 name=$3 file=$4 expr=$5 refresh=${6:-} upd src tree old
	src=$(awk '$1 == "Source:" {print $2; exit}' "$dsc")
	upd=$WORK/update-$src
	tree=$upd/$src-$(deb_upstream "$version")
	rm -rf "$upd" && mkdir -p "$upd/a" "$upd/b"
	dpkg-source -x "$dsc" "$tree" >"$upd/source.log" 2>&1 ||
		fail "cannot unpack $dsc: $(tail -2 "$upd/source.log")"
	mkdir -p "$upd/a/$(dirname "$file")" "$upd/b/$(dirname "$file")"
	cp "$tree/$file" "$upd/a/$file" && cp "$tree/$file" "$upd/b/$file"
	sed -i "$expr" "$upd/b/$file"
	cmp -s "$upd/a/$file" "$upd/b/$file" && fail "$name: the edit of $file did not apply"
	(cd "$upd" && diff -u "a/$file" "b/$file") >"$tree/debian/patches/$name.patch" || true
	echo "$name.patch" >>"$tree/debian/patches/series"
	if [ -n "$refresh" ]; then
		old=$(grep -v '^\s*\(#\|$\)' "$tree/debian/patches/series" | sed -n "${refresh}p")
		sed -i '1i Refreshed by the update.' "$tree/debian/patches/$old"
	fi
	{
		echo "$src ($version) bookworm-security; urgency=medium"
		echo
		echo "  * $name (opus's installed-package suite)."
		echo
		echo " -- opus <opus@localhost>  $(date -R)"
		echo
		cat "$tree/debian/changelog"
	} >"$upd/changelog" && mv "$upd/changelog" "$tree/debian/changelog"
	(cd "$upd" && dpkg-source -b "$(basename "$tree")") >>"$upd/source.log" 2>&1 ||
		fail "cannot make $src $version's source package: $(tail -2 "$upd/source.log")"
	echo "$upd/${src}_${version#*:}.dsc"
}

# deb PACKAGE OUT ARGS...: opus deb, its exit status in $DEB_STATUS.
deb() {
	local pkg=$1 out=$2
	shift 2
	DEB_STATUS=0
	"$OPUS" deb "$pkg" --out "$out" "$@" 2>&1 | tee "$out.log" || DEB_STATUS=${PIPESTATUS[0]}
}

results='[]'

# ---- memcached ----
mc_from=1.6.18-1 mc_to=1.6.18-1+deb12u1
install_version "memcached=$mc_from"
mkdir -p "$WORK/memcached"
deb memcached "$WORK/memcached" --to "$mc_to"
[ "$DEB_STATUS" = 4 ] || fail "opus deb memcached --to $mc_to: exit $DEB_STATUS, expected 4 (nothing to apply)"
mc_json=$WORK/memcached/deb.json
[ "$(jq '[.patches[] | select(.status == 4)] | length' "$mc_json")" -ge 3 ] ||
	fail "memcached $mc_to: expected its three CVE fixes to have nothing to apply"
mc_match=$(jq '.files[] | select(.path == "/usr/bin/memcached") | .build_id_match' "$mc_json")
# Two runs on one rebuild's tree at once: the second one waits its turn,
# then gives up.
held=$( (flock -n 9 && OPUS_DEB_LOCK_WAIT=1 "$OPUS" deb memcached --out "$WORK/memcached" --to "$mc_to" 2>&1) \
	9>"/build/reproducible-path/.memcached.opus-deb.lock" || true)
[[ $held == *"another opus deb is working on memcached's rebuild"* ]] ||
	fail "opus deb ran beside another one: $held"
# deb12u1's source package, which the updates below start from.
rm -rf "$WORK/memcached-$mc_to" && cp -a "$WORK/memcached/to.dl" "$WORK/memcached-$mc_to"

# The path end to end: an update with a change to a compiled function (the
# version reply), made as Debian makes one, applied to the packaged
# memcached under load, and reverted.
dsc=$(make_update "$WORK/memcached-$mc_to/memcached_$mc_to.dsc" "$mc_to+live1" version-reply \
	proto_text.c 's/out_string(c, "VERSION " VERSION);/out_string(c, "VERSION " VERSION "-live");/')

port=$(free_port)
/usr/bin/memcached -u memcache -l 127.0.0.1 -p "$port" -m 64 &
mc=$!
# In a subshell: a failed connect (exec's redirection) ends only that.
version() (
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf 'version\r\n' >&3
	IFS= read -r -t 10 v <&3 || true
	printf '%s\n' "${v%$'\r'}"
)
for _ in $(seq 100); do
	if version >/dev/null 2>&1; then break; fi
	sleep 0.05
done
before=$(version)
python3 "$ROOT/tests/real/installed/load.py" "$port" 6 >"$WORK/load.json" &
load=$!
sleep 1
deb memcached "$WORK/memcached" --to "$dsc" --apply
after=$(version)
[ "$DEB_STATUS" = 0 ] || fail "opus deb memcached --to $dsc --apply: exit $DEB_STATUS"
jq -e '.patches[] | select(.name == "version-reply") | .built and .applied' "$mc_json" >/dev/null ||
	fail "the version-reply fix was not built and applied: $(jq -c '.patches[-1]' "$mc_json")"
sleep 1
"$OPUS" revert --all version-reply >"$WORK/revert.out" || fail "revert failed"
reverted=$(version)
wait "$load"
[ "$after" = "$before-live" ] || fail "patched memcached answers '$after' (was '$before')"
[ "$reverted" = "$before" ] || fail "reverted memcached answers '$reverted'"
kill -0 "$mc" || fail "memcached died"
failed=$(jq .failed "$WORK/load.json")
[ "$failed" = 0 ] || fail "$failed requests failed under load"
patches=$(jq -c '.patches | map(del(.objects) + {functions: [.objects[].functions[]]})' "$mc_json")
results=$(jq -c --arg f "$mc_from" --arg t "$mc_to" --argjson m "$mc_match" --argjson p "$patches" \
	--argjson l "$(cat "$WORK/load.json")" \
	'. + [{package: "memcached", from: $f, to: $t, binary: "/usr/bin/memcached",
	       build_id_match: $m, sections_match: true, patches: $p,
	       requests: $l.done, failed_requests: $l.failed}]' <<<"$results")
kill "$mc"
mc=""

# An update that refreshes a patch the installed version has: its changes
# do not separate, and opus deb builds them as one fix, the difference of
# the two versions' C files, which replaces the version reply's function.
dsc=$(make_update "$WORK/memcached-$mc_to/memcached_$mc_to.dsc" "$mc_to+live2" version-reply \
	proto_text.c 's/out_string(c, "VERSION " VERSION);/out_string(c, "VERSION " VERSION "-live");/' 1)
# No memcached runs now: --apply applies it nowhere, and says so.
deb memcached "$WORK/memcached" --to "$dsc" --apply
[ "$DEB_STATUS" = 0 ] || fail "opus deb memcached --to $dsc (a refreshed patch): exit $DEB_STATUS"
grep -q "no running process maps /usr/bin/memcached: nothing applied" "$WORK/memcached.log" ||
	fail "opus deb --apply with no memcached running: $(tail -2 "$WORK/memcached.log")"
jq -e '.patches[0].applied == false' "$mc_json" >/dev/null || fail "a patch applied nowhere is recorded as applied"
jq -e --arg n "memcached-$mc_to+live2" '.patches == [.patches[] | select(.name == $n and .built)]
	and (.patches[0].objects[0].functions | index("process_command_ascii.part.0"))' "$mc_json" >/dev/null ||
	fail "a refreshed patch: expected one cumulative fix replacing the version reply: $(jq -c .patches "$mc_json")"

# opus deb killed in the middle of a run, once a fix is patched into the
# rebuild's tree: the next run puts the tree back to the installed
# version's before it builds anything, and its answer is the same.
tree_sum() {
	(cd "/build/reproducible-path/memcached-$(deb_upstream "$mc_from")" &&
		find . -path ./debian -prune -o -type f -name '*.[ch]' -print0 | sort -z |
		xargs -0 md5sum | md5sum)
}
sum0=$(tree_sum)
setsid "$OPUS" deb memcached --out "$WORK/memcached" --to "$mc_to" >"$WORK/killed.log" 2>&1 &
killed=$!
# opus deb lists a fix in tree-patched just before it runs patch(1): wait
# for the tree itself to change, or the kill may land between the two.
for _ in $(seq 1200); do
	[ -s "$WORK/memcached/tree-patched" ] && [ "$(tree_sum)" != "$sum0" ] && break
	sleep 0.05
done
[ -s "$WORK/memcached/tree-patched" ] || fail "opus deb patched no fix into the tree: $(tail -2 "$WORK/killed.log")"
kill -9 -- "-$killed"
wait "$killed" 2>/dev/null || true
[ "$(tree_sum)" != "$sum0" ] || fail "the killed run left the tree as it was: the case is not tested"
deb memcached "$WORK/memcached" --to "$mc_to"
[ "$DEB_STATUS" = 4 ] || fail "opus deb after a killed run: exit $DEB_STATUS"
[ "$(tree_sum)" = "$sum0" ] || fail "the rebuild's tree is not the installed version's after the next run"
[ ! -e "$WORK/memcached/tree-patched" ] || fail "the next run left its list of patched trees"

# ---- nginx ----
# INSTALLED_NGINX=0 (make check) stops here: the nginx part is make survey's.
if [ "${INSTALLED_NGINX:-1}" = 0 ]; then
	jq . <<<"$results" >"$JSON"
	echo "real installed: memcached rebuilt and bound (nginx left to make survey); results in $JSON"
	exit 0
fi
ng_from=1.22.1-9+deb12u9 ng_to=1.22.1-9+deb12u11
install_version "nginx=$ng_from" "nginx-common=$ng_from"
mkdir -p "$WORK/nginx"
deb nginx "$WORK/nginx" --to "$ng_to"
ng_match=$(jq '.files[] | select(.path == "/usr/sbin/nginx") | .build_id_match' \
	"$WORK/nginx/rebuild/rebuild.json")
[ "$ng_match" = true ] || fail "nginx $ng_from rebuilt with another build-id"
if [ -f "$WORK/nginx/deb.json" ] && grep -q "^opus deb: results in" "$WORK/nginx.log"; then
	[ "$DEB_STATUS" != 1 ] || fail "opus deb nginx --to $ng_to failed: $(tail -1 "$WORK/nginx.log")"
	patches=$(jq -c '.patches | map(del(.objects) + {functions: [.objects[].functions[]]})' "$WORK/nginx/deb.json")
elif grep -q "cannot fetch nginx $ng_to's source" "$WORK/nginx.log"; then
	patches=$(jq -n -c --arg r "$(tail -1 "$WORK/nginx.log")" \
		'[{name: "*", built: false, applied: false, reason: $r}]')
else
	fail "opus deb nginx --to $ng_to: exit $DEB_STATUS: $(tail -1 "$WORK/nginx.log")"
fi

# The path end to end on nginx under Debian's own configuration (a copy of
# /etc/nginx whose default site, on port 80, is replaced by a test site):
# an update that stops the Server header from naming the version, applied
# with opus deb --apply to the master and its workers under load, then
# reverted.
etc=$WORK/etc-nginx
rm -rf "$etc" && cp -a /etc/nginx "$etc"
sed -i -e "s#/etc/nginx/#$etc/#g" -e "s#^pid .*#pid $WORK/nginx.pid;#" "$etc/nginx.conf"
rm -f "$etc/sites-enabled/"*
http=$(free_port)
# The site answers from the configuration: Debian's workers run as
# www-data, which may not read a checkout under a private directory.
printf 'server {\n\tlisten 127.0.0.1:%s;\n\tlocation / { return 200 "ok\\n"; }\n}\n' "$http" \
	>"$etc/sites-enabled/opus-test"
/usr/sbin/nginx -c "$etc/nginx.conf" || fail "Debian's nginx does not start with its own configuration"
ng=$(cat "$WORK/nginx.pid")
[ "$(curl -s "http://127.0.0.1:$http/")" = ok ] ||
	fail "the test site does not answer ok: $(curl -sS -i "http://127.0.0.1:$http/" 2>&1 | head -3)"
server() { curl -sSI "http://127.0.0.1:$http/" | tr -d '\r' | awk -F': ' '$1 == "Server" {print $2}'; }
pids_of() { echo "$ng $(pgrep -P "$ng" | xargs)"; }
pids=$(pids_of)
before=$(server)
dsc=$(make_update "$WORK/nginx/rebuild/dl/nginx_$ng_from.dsc" "$ng_from+live1" server-tokens \
	src/http/ngx_http_header_filter_module.c \
	'/p = ngx_http_server_full_string;/,+1 s/ngx_http_server_full_string/ngx_http_server_string/')
wrk -t2 -c8 -d6s "http://127.0.0.1:$http/" >"$WORK/wrk.out" 2>&1 &
load=$!
sleep 1
deb nginx "$WORK/nginx" --to "$dsc" --apply
after=$(server)
[ "$DEB_STATUS" = 0 ] || fail "opus deb nginx --to $dsc --apply: exit $DEB_STATUS"
sleep 1
"$OPUS" revert --all server-tokens >"$WORK/revert.nginx.out" || fail "nginx: revert failed"
reverted=$(server)
wait "$load" || true
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
ng_failed=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10} /Non-2xx/ {print $5}' \
	"$WORK/wrk.out" | awk '{n += $1} END {print n + 0}')
[ "$(pids_of)" = "$pids" ] || fail "nginx's processes changed: '$pids', now '$(pids_of)'"
kill "$ng"
ng=""
[ "$before" = "nginx/$(deb_upstream "$ng_from")" ] || fail "nginx's Server header was '$before'"
[ "$after" = nginx ] || fail "patched nginx sends Server: '$after'"
[ "$reverted" = "$before" ] || fail "reverted nginx sends Server: '$reverted'"
[ "${requests:-0}" -gt 0 ] || fail "wrk made no request: $(tail -3 "$WORK/wrk.out")"
[ "$ng_failed" = 0 ] || fail "$ng_failed nginx requests failed under load"
proof=$(jq -c '.patches[] | select(.name == "server-tokens") | del(.objects) + {functions: [.objects[].functions[]]}
	| .reason = "a compiled function changed, to prove the path: applied to the master and workers and reverted under load"' \
	"$WORK/nginx/deb.json")
patches=$(jq -c --argjson p "$proof" '. + [$p]' <<<"$patches")
results=$(jq -c --arg f "$ng_from" --arg t "$ng_to" --argjson p "$patches" \
	--argjson r "$requests" --argjson x "$ng_failed" \
	'. + [{package: "nginx", from: $f, to: $t, binary: "/usr/sbin/nginx",
	       build_id_match: true, sections_match: true, patches: $p,
	       requests: $r, failed_requests: $x}]' <<<"$results")
jq . <<<"$results" >"$JSON"
echo "real installed: memcached and nginx rebuilt and bound; results in $JSON"
