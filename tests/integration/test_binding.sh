# Binding by content: a patch is built for the code the binary holds, and
# applied only to a process that runs that code.

# The tree given to opus is another version of the source than the binary
# was built from: a struct grew. Building against it would patch kv_put
# with code that indexes the slots with the wrong stride.
test_build_refuses_binary_from_other_source() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	sed -i 's/char value\[32\];/char value[48];/' "$WORK/src/store.c"
	expect_fail "build against another version of the source" \
		"$OPUS" build --source "$WORK/src" --diff "$TARGETS/kvsrv/fix-key-length.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch"
	assert_contains "was the binary built from this source" "$ERR" "the reason"
	assert_contains "kv_" "$ERR" "the function named"
	[ ! -e "$WORK/fix.opatch" ] || fail "a patch was written"
}

# The compile database says -O1; the binary was built with -O2.
test_build_refuses_binary_built_with_other_flags() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	sed -i 's/"-O2"/"-O1"/' "$WORK/src/compile_commands.json"
	expect_fail "build with other flags than the binary's" \
		"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch"
	assert_contains "serve" "$ERR" "the function named"
	assert_contains "was the binary built from this source" "$ERR" "the reason"
}

# The tree calls another function of another library than the binary does
# (a -D in the compile database the binary was not built with: strcmp made
# strcasecmp), through the PLT or, with -fno-plt, through the GOT. The
# entry's GOT slot, and the loader's relocation there, name the function.
# Before, any PLT entry was taken for the same call, and a GOT load was not
# looked at: the patch made user names case-blind.
test_build_refuses_a_call_to_another_library_function() {
	local flags
	for flags in "" -fno-plt; do
		rm -rf "$WORK/src"
		LIB_CFLAGS=$flags build_libauth "$WORK" -fPIE -pie
		sed -i 's/"-c", "auth.c"/"-Dstrcmp=strcasecmp", "-c", "auth.c"/' "$WORK/src/compile_commands.json"
		grep -q strcasecmp "$WORK/src/compile_commands.json" || fail "the -D is not in the database"
		expect_fail "build against a tree that calls strcasecmp (${flags:-plt})" \
			"$OPUS" build --source "$WORK/src" --diff "$TARGETS/libauth/fix-compare.diff" \
			--binary "$WORK/src/libauth.so" -o "$WORK/fix.opatch"
		assert_contains "auth_check" "$ERR" "the function named (${flags:-plt})"
		assert_contains "(strcasecmp): was the binary built from this source" "$ERR" \
			"the callee named (${flags:-plt})"
		[ ! -e "$WORK/fix.opatch" ] || fail "a patch was written (${flags:-plt})"
	done
}

# A process runs other code under the same build-id (a binary altered in
# place, or a build-id set by hand): apply refuses and touches nothing.
test_apply_refuses_other_code_under_same_build_id() {
	local id=0x0123456789abcdef0123456789abcdef01234567
	build_authsrv "$WORK" -O2 -g -fPIE -pie -Wl,--build-id=$id
	mkdir "$WORK/other"
	cp "$WORK/src/authsrv.c" "$WORK/other/"
	sed -i 's/strlen(pass)) == 0;/strlen(pass) + 1) == 0;/' "$WORK/other/authsrv.c"
	gcc -O2 -g -fPIE -pie -Wl,--build-id=$id -pthread "$WORK/other/authsrv.c" \
		-o "$WORK/other/authsrv"
	cmp -s "$WORK/src/authsrv" "$WORK/other/authsrv" && fail "the two builds are the same"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch" >/dev/null
	start "$WORK/other/authsrv"
	before=$(req 'AUTH admin hunter2')
	expect_fail "apply to other code with the same build-id" \
		"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "is not the code patch fix was built against" "$ERR" "the reason"
	assert_contains "serve" "$ERR" "the function named"
	assert_running "$PID"
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings left"
	assert_eq "$before" "$(req 'AUTH admin hunter2')" "behaviour unchanged"
}
