#!/usr/bin/env bash
# Man pages from their one source, docs/man/opus.md: each "# name(1) --
# summary" heading starts a page, written as OUTDIR/name.1 in roff.
#   ## HEADING          a section
#   <4 spaces>text      a verbatim line (synopsis, examples)
#   term, then <2 sp>text  a definition (options, commands, files)
#   anything else       running text; a blank line ends a paragraph
# usage: tools/man.sh SOURCE OUTDIR VERSION
set -euo pipefail
src=$1 out=$2 version=$3
mkdir -p "$out"
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y "$src")}" +%Y-%m-%d)
awk -v out="$out" -v version="$version" -v date="$date" '
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	while (match(s, /`[^`]*`/))
		s = substr(s, 1, RSTART - 1) "\\fB" substr(s, RSTART + 1, RLENGTH - 2) "\\fR" \
		    substr(s, RSTART + RLENGTH)
	if (s ~ /^[.\047]/)
		s = "\\&" s
	return s
}
function emit(s) { print s > file }
{ line[NR] = $0 }
END {
	for (i = 1; i <= NR; i++) {
		l = line[i]
		if (pre && l !~ /^    /) { emit(".fi\n.in"); pre = 0 }
		if (l ~ /^# /) {
			if (file) close(file)
			at = index(l, " -- ")
			name = substr(l, 3, at - 3); sub(/\(1\)$/, "", name)
			file = out "/" name ".1"
			emit(".TH " toupper(name) " 1 \"" date "\" \"opus " version "\" \"opus manual\"")
			emit(".SH NAME\n" esc(name) " \\- " esc(substr(l, at + 4)))
		} else if (l ~ /^## /) {
			emit(".SH " substr(l, 4)); para = 0
		} else if (l ~ /^    /) {
			if (!pre) emit(".PP\n.in +4n\n.nf")
			pre = 1
			emit(esc(substr(l, 5)))
		} else if (l ~ /^  [^ ]/) {
			emit(esc(substr(l, 3)))
		} else if (l == "") {
			para = 1
		} else if (line[i + 1] ~ /^  [^ ]/) {
			emit(".TP\n\\fB" esc(l) "\\fR"); para = 0
		} else {
			if (para) emit(".PP")
			para = 0
			emit(esc(l))
		}
	}
	if (pre) emit(".fi\n.in")
}
' "$src"
