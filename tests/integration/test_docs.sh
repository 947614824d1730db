# What a user reads: opus --version, and the man pages (docs/man/opus.md,
# built beside the binary) covering every command and every option the
# binary's own --help shows.

commands() {
	"$OPUS" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'
}

test_version_is_the_projects() {
	local want
	want=$(sed -n "s/^  version : '\(.*\)',\$/\1/p" "$ROOT/meson.build")
	[ -n "$want" ] || fail "no version in meson.build"
	assert_eq "opus $want" "$("$OPUS" --version)" "opus --version"
}

test_every_command_and_option_has_its_man_page() {
	local dir c opt page
	dir=$(dirname "$OPUS")
	[ -n "$(commands)" ] || fail "opus --help lists no command"
	for c in $(commands); do
		page=$dir/opus-$c.1
		[ -f "$page" ] || fail "no man page $page"
		sed 's/\\-/-/g' "$dir/opus.1" | grep -qF "opus-$c(1)" || fail "opus(1) does not list $c"
		for opt in $("$OPUS" "$c" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u); do
			[ "$opt" = --help ] && continue
			sed 's/\\-/-/g' "$page" | grep -q -- "$opt" || fail "opus-$c(1) does not describe $opt"
		done
		man -l "$page" >/dev/null 2>"$WORK/man.err" || fail "man cannot read $page"
		[ ! -s "$WORK/man.err" ] || fail "man warns about $page: $(cat "$WORK/man.err")"
	done
}
