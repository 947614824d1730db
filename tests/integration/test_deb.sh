# opus deb's checks of what it is given, before it fetches, installs or
# builds anything (tests/real/installed runs the whole path on memcached
# and nginx from the archive). Each refusal names what was wrong.

# The shell running this test is /usr/bin/bash, from the bash package.
test_deb_refuses_what_it_cannot_take_apart() {
	local v status
	v=$(dpkg-query -W -f='${source:Version}' bash)

	status=0
	"$OPUS" deb >/dev/null 2>&1 || status=$?
	assert_eq 2 "$status" "no arguments: a usage error"
	expect_fail "no such package" "$OPUS" deb opus-no-such-package --to 1.0
	assert_contains "opus-no-such-package is no installed package" "$ERR" "the package named"
	build_authsrv "$WORK" -O2 -g
	start "$WORK/src/authsrv"
	expect_fail "a process from no package" "$OPUS" deb "$PID" --to 1.0
	assert_contains "$PID is no installed package, no file of one and no process running one" \
		"$ERR" "the pid named"
	expect_fail "an older version" "$OPUS" deb $$ --to "$v~older"
	assert_contains "bash $v~older is not newer than the installed $v" "$ERR" "both versions named"
	expect_fail "a new upstream release" "$OPUS" deb /usr/bin/bash --to "99:1.0-1"
	assert_contains "bash 99:1.0-1 is a new upstream release (installed: $v)" "$ERR" "the release named"
	printf 'Format: 3.0 (quilt)\nSource: opus-other\nVersion: %s+1\n' "$v" >"$WORK/other.dsc"
	expect_fail "another package's source" "$OPUS" deb bash --to "$WORK/other.dsc"
	assert_contains "$WORK/other.dsc is not a version of bash" "$ERR" "the .dsc named"
	assert_running "$PID"
}

# An installed opus runs the opus-deb installed with it; the one in a build
# tree, the tree's. OPUS_EXEC_PATH points elsewhere, and a missing script
# is named.
test_deb_names_a_missing_helper() {
	OPUS_EXEC_PATH=$WORK/nowhere expect_fail "missing helper" "$OPUS" deb bash --to 1
	assert_contains "cannot run $WORK/nowhere/opus-deb" "$ERR" "the helper's path named"
}
