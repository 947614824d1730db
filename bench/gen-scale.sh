#!/usr/bin/env bash
# Writes a program of NU translation units of NF functions each to DIR
# (unitN.c, main.c, a compile database, the built program), and with K > 0
# a second copy DIR.fixed whose first K functions of every unit changed,
# and DIR.diff between them: the input of build-time scaling.
#   gen-scale.sh DIR NU NF [K]
set -euo pipefail
dir=$1 nu=$2 nf=$3 k=${4:-0}

# unit U CHANGED: each function calls its neighbour and reads a global, a
# literal table and libc: the references a real function has.
unit() {
	awk -v u="$1" -v c="$2" -v nf="$nf" 'BEGIN {
		print "#include <string.h>"
		printf "int u%d_counter;\n", u
		printf "static const char *const u%d_names[] = {\"alpha\", \"beta\", \"gamma\"};\n", u
		for (i = 0; i < nf; i++) {
			extra = i < c ? " if (x < 0) return -1;" : ""
			if (i == 0)
				printf "__attribute__((noinline)) int u%d_f0(int x) {%s u%d_counter++; return (int)strlen(u%d_names[x %% 3]) + x; }\n", u, extra, u, u
			else
				printf "__attribute__((noinline)) int u%d_f%d(int x) {%s if (x > %d) return u%d_f%d(x - 1); return x * %d + (int)strlen(\"u%d_f%d\"); }\n", u, i, extra, i, u, i - 1, i, u, i
		}
	}'
}

rm -rf "$dir" && mkdir -p "$dir"
for u in $(seq 0 $((nu - 1))); do
	unit "$u" 0 >"$dir/unit$u.c"
done
{
	echo "#include <stdio.h>"
	echo "#include <unistd.h>"
	for u in $(seq 0 $((nu - 1))); do echo "int u${u}_f$((nf - 1))(int);"; done
	echo "int main(void) { int s = 0;"
	for u in $(seq 0 $((nu - 1))); do echo "s += u${u}_f$((nf - 1))(3);"; done
	echo "printf(\"%d\\n\", s); fflush(stdout); pause(); return 0; }"
} >"$dir/main.c"
(
	cd "$dir"
	entries=""
	for c in main.c $(for u in $(seq 0 $((nu - 1))); do echo "unit$u.c"; done); do
		entries="$entries${entries:+,
}{\"directory\": \"$dir\", \"file\": \"$c\", \"arguments\": [\"gcc\", \"-O2\", \"-g\", \"-c\", \"$c\", \"-o\", \"${c%.c}.o\"]}"
	done
	printf '[%s]\n' "$entries" >compile_commands.json
	printf '%s\n' ./*.c | xargs -P "$(nproc)" -I{} sh -c 'gcc -O2 -g -c {} -o "$(basename {} .c).o"'
	gcc -O2 -g ./*.o -o program
)
[ "$k" -gt 0 ] || exit 0
rm -rf "$dir.fixed" && mkdir -p "$dir.fixed"
cp "$dir"/*.c "$dir.fixed/"
for u in $(seq 0 $((nu - 1))); do
	unit "$u" "$k" >"$dir.fixed/unit$u.c"
done
base=$(basename "$dir")
(cd "$(dirname "$dir")" && diff -ru "$base" "$base.fixed" -x '*.o' -x program -x compile_commands.json |
	sed -e "s#^--- $base/#--- a/#" -e "s#^+++ $base.fixed/#+++ b/#" >"$dir.diff") || true
