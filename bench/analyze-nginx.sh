#!/usr/bin/env bash
# How long opus analyze takes on a one-file security fix of a real program:
# Debian's CVE-2026-42945 patch to nginx's src/http/ngx_http_script.c,
# analysed against the tree as it was before that fix. Prints the figures;
# asserts nothing. Goal (issue 3): under 2 s on this machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OPUS=$ROOT/build/opus
OUT=$ROOT/build/bench
CVE=${CVE:-CVE-2026-42945}
RUNS=${RUNS:-5}
mkdir -p "$OUT"
for p in bear libpcre2-dev zlib1g-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done

src=$(bash "$ROOT/tools/deb-source.sh" nginx "$OUT/nginx")
tree=$OUT/nginx-before-$CVE
if [ ! -e "$tree/compile_commands.json" ]; then
	rm -rf "$tree"
	cp -a "$src" "$tree"
	# Undo the Debian patches from the newest down to and including the fix.
	for p in $(tac "$tree/debian/patches/series"); do
		patch -s -R -p1 -d "$tree" <"$tree/debian/patches/$p"
		[ "$p" = "$CVE.patch" ] && break
	done
	file=$(grep -m1 '^+++ ' "$tree/debian/patches/$CVE.patch" | awk '{print $2}' | cut -d/ -f2-)
	(cd "$tree" && ./configure --with-cc-opt='-O2 -g' >/dev/null &&
		bear -- make -f objs/Makefile "objs/${file%.c}.o" >/dev/null 2>&1)
fi

times=()
for _ in $(seq "$RUNS"); do
	start=$(date +%s%N)
	status=0
	"$OPUS" analyze --source "$tree" --diff "$tree/debian/patches/$CVE.patch" \
		>"$OUT/analyze-$CVE.txt" || status=$?
	[ "$status" -le 3 ] || { cat "$OUT/analyze-$CVE.txt"; exit 1; }
	times+=($((($(date +%s%N) - start) / 1000000)))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "nginx $(cat "$OUT/nginx/version"), $CVE, $RUNS runs"
echo "opus analyze: p50 ${sorted[$((RUNS / 2))]} ms, max ${sorted[$((RUNS - 1))]} ms (goal: 2000 ms)"
echo "findings:"
sed 's/^/  /' "$OUT/analyze-$CVE.txt"
