#!/usr/bin/env bash
# Debian's installed binaries patched live through a rebuild (issue 13).
#
# memcached 1.6.18-1, installed from the archive, is rebuilt the way Debian
# built it (tools/deb-rebuild.sh); its build-id differs from the installed
# file's, so patches are bound by section equality (opus build
# --installed). Each CVE fix 1.6.18-1+deb12u1 adds is built against the
# installed binary: Debian's configuration compiles none of their code
# (proxy, SASL password file), so the right answer for each is "nothing to
# apply" (exit 4). To prove the path end to end, a change to a compiled
# function (the version reply) is applied to the running packaged memcached
# under load and reverted: the reply changes and changes back on the same
# pid, and no request fails.
#
# nginx 1.22.1-9+deb12u9 is rebuilt the same way; its /usr/sbin/nginx has
# the installed build-id. deb12u11's fixes are built against it when the
# archive mirror serves that source.
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
for p in bear jq python3 dpkg-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
bash "$ROOT/tools/deb-src.sh"
# The packages' own test suites are not what is checked here.
export DEB_BUILD_OPTIONS=nocheck

# Packages installed here must not start their services.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	made_policy=1
fi
mc=""
cleanup() {
	[ -z "$mc" ] || kill "$mc" 2>/dev/null || true
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
}
trap cleanup EXIT

install_version() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "$@" \
		>"$WORK/install.log" 2>&1 || fail "cannot install $*: $(tail -2 "$WORK/install.log")"
}

# new_patches SRC FROM TO DIR: fetches TO's source into DIR and prints the
# patch files TO's series has that FROM's does not, in series order.
new_patches() {
	local src=$1 from=$2 to=$3 dir=$4
	rm -rf "$dir"
	mkdir -p "$dir/dl"
	(cd "$dir/dl" && apt-get source -qq --download-only "$src=$to") >"$dir/fetch.log" 2>&1 ||
		return 1
	dpkg-source -x "$dir/dl/${src}_${to#*:}.dsc" "$dir/to" >/dev/null 2>&1 || return 1
	grep -vxF -f "/build/reproducible-path/$src-$(upstream "$from")/debian/patches/series" \
		"$dir/to/debian/patches/series" | grep -v '^\s*$' | grep -v '^#' || true
}
upstream() {
	local v=${1#*:}
	echo "${v%-*}"
}

# build_fix ID DIFF SOURCE BINARY INSTALLED CDB: one fix, built against the
# installed file; prints {name, built, status, reason, functions}.
build_fix() {
	local status=0 reason built=false
	"$OPUS" build --source "$3" --diff "$2" --binary "$4" --installed "$5" --cdb "$6" \
		--id "$1" -o "$WORK/$1.opatch" >"$WORK/$1.build" 2>"$WORK/$1.err" || status=$?
	reason=$(grep -v '^opus build: [0-9]* of ' "$WORK/$1.err" | tail -1 | sed 's/^opus build: //')
	[ "$status" = 0 ] && built=true && reason=""
	jq -n --arg n "$1" --argjson b "$built" --argjson s "$status" --arg r "$reason" \
		--argjson f "$(awk '$1 == "replaced" {print $2}' "$WORK/$1.build" | jq -R . | jq -s -c .)" \
		'{name: $n, built: $b, status: $s, applied: false, reason: $r, functions: $f}'
}

results='[]'

# ---- memcached ----
mc_from=1.6.18-1 mc_to=1.6.18-1+deb12u1
install_version "memcached=$mc_from"
bash "$ROOT/tools/deb-rebuild.sh" memcached "$WORK/memcached" | tee "$WORK/memcached.rebuild"
mcb=/build/reproducible-path/memcached-$(upstream "$mc_from")
mc_rebuilt=$mcb/debian/memcached/usr/bin/memcached
mc_match=$(jq '.files[] | select(.path == "/usr/bin/memcached") | .build_id_match' \
	"$WORK/memcached/rebuild.json")
patches='[]'
new_patches memcached "$mc_from" "$mc_to" "$WORK/memcached-to" >"$WORK/memcached.new" ||
	fail "cannot fetch memcached $mc_to's source: $(tail -1 "$WORK/memcached-to/fetch.log")"
mapfile -t fixes <"$WORK/memcached.new"
[ "${#fixes[@]}" -gt 0 ] || fail "memcached $mc_to adds no patch to $mc_from"
for p in "${fixes[@]}"; do
	r=$(build_fix "${p%.patch}" "$WORK/memcached-to/to/debian/patches/$p" "$mcb" "$mc_rebuilt" \
		/usr/bin/memcached "$mcb/compile_commands.json")
	echo "memcached $p: $(jq -r 'if .built then "built" elif .status == 4 then "nothing to apply" else "not built: \(.reason)" end' <<<"$r")"
	patches=$(jq -c --argjson r "$r" '. + [$r]' <<<"$patches")
done

# The path end to end: a compiled function changed, applied to the
# packaged memcached under load, and reverted.
mkdir -p "$WORK/ver/a" "$WORK/ver/b"
cp "$mcb/proto_text.c" "$WORK/ver/a/"
sed 's/out_string(c, "VERSION " VERSION);/out_string(c, "VERSION " VERSION "-live");/' \
	"$WORK/ver/a/proto_text.c" >"$WORK/ver/b/proto_text.c"
cmp -s "$WORK/ver/a/proto_text.c" "$WORK/ver/b/proto_text.c" && fail "the version edit did not apply"
(cd "$WORK/ver" && diff -u a/proto_text.c b/proto_text.c) >"$WORK/ver.diff" || true
r=$(build_fix version-reply "$WORK/ver.diff" "$mcb" "$mc_rebuilt" /usr/bin/memcached \
	"$mcb/compile_commands.json")
jq -e .built <<<"$r" >/dev/null || fail "the version-reply patch was not built: $(jq -r .reason <<<"$r")"
port=$(awk '$1 == "-p" {print $2}' /etc/memcached.conf)
port=${port:-11211}
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
"$OPUS" apply "$mc" "$WORK/version-reply.opatch" >"$WORK/apply.out" || fail "apply: $(cat "$WORK/apply.out")"
after=$(version)
sleep 1
"$OPUS" revert "$mc" >"$WORK/revert.out" || fail "revert failed"
reverted=$(version)
wait "$load"
[ "$after" = "$before-live" ] || fail "patched memcached answers '$after' (was '$before')"
[ "$reverted" = "$before" ] || fail "reverted memcached answers '$reverted'"
kill -0 "$mc" || fail "memcached died"
failed=$(jq .failed "$WORK/load.json")
[ "$failed" = 0 ] || fail "$failed requests failed under load"
r=$(jq -c '.applied = true | .reason = "a compiled function changed, to prove the path: applied and reverted under load"' <<<"$r")
patches=$(jq -c --argjson r "$r" '. + [$r]' <<<"$patches")
results=$(jq -c --arg f "$mc_from" --arg t "$mc_to" --argjson m "$mc_match" --argjson p "$patches" \
	--argjson l "$(cat "$WORK/load.json")" --arg pid "$mc" \
	'. + [{package: "memcached", from: $f, to: $t, binary: "/usr/bin/memcached",
	       build_id_match: $m, sections_match: true, patches: $p,
	       requests: $l.done, failed_requests: $l.failed}]' <<<"$results")
kill "$mc"
mc=""

# ---- nginx ----
ng_from=1.22.1-9+deb12u9 ng_to=1.22.1-9+deb12u11
install_version "nginx=$ng_from" "nginx-common=$ng_from"
bash "$ROOT/tools/deb-rebuild.sh" nginx "$WORK/nginx" | tee "$WORK/nginx.rebuild"
ng_match=$(jq '.files[] | select(.path == "/usr/sbin/nginx") | .build_id_match' \
	"$WORK/nginx/rebuild.json")
[ "$ng_match" = true ] || fail "nginx $ng_from rebuilt with another build-id"
ngb=/build/reproducible-path/nginx-$(upstream "$ng_from")
patches='[]'
if new_patches nginx "$ng_from" "$ng_to" "$WORK/nginx-to" >"$WORK/nginx.new"; then
	mapfile -t fixes <"$WORK/nginx.new"
	for p in "${fixes[@]}"; do
		r=$(build_fix "${p%.patch}" "$WORK/nginx-to/to/debian/patches/$p" "$ngb/debian/build-bin" \
			"$ngb/debian/nginx/usr/sbin/nginx" /usr/sbin/nginx "$ngb/compile_commands.json")
		patches=$(jq -c --argjson r "$r" '. + [$r]' <<<"$patches")
	done
else
	patches=$(jq -n -c --arg r "the archive mirror does not serve nginx $ng_to's source: $(tail -1 "$WORK/nginx-to/fetch.log")" \
		'[{name: "*", built: false, applied: false, reason: $r}]')
fi
results=$(jq -c --arg f "$ng_from" --arg t "$ng_to" --argjson p "$patches" \
	'. + [{package: "nginx", from: $f, to: $t, binary: "/usr/sbin/nginx",
	       build_id_match: true, sections_match: true, patches: $p, failed_requests: 0}]' <<<"$results")
jq . <<<"$results" >"$JSON"
echo "real installed: memcached and nginx rebuilt and bound; results in $JSON"
