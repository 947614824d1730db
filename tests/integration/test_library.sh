# Patching a shared library in a running process, found by its build-id.
D=$TARGETS/libauth

library_fix_cycle() {
	local checks
	start "$WORK/src/authd"
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	checks=$(req CHECKS)
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-compare.diff" \
		--binary "$WORK/src/libauth.so" -o "$WORK/fix.opatch" >"$WORK/build.out"
	assert_contains "replaced auth_check" "$(cat "$WORK/build.out")" "build report"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "libauth.so" "$("$OPUS" list "$PID")" "list names the library"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	# The new code counts in the variable the executable reads.
	assert_eq $((checks + 2)) "$(req CHECKS)" "auth_checks seen by the executable"
	"$OPUS" revert "$PID"
	assert_eq OK "$(req 'AUTH admin ')" "old behaviour after revert"
	assert_eq $((checks + 3)) "$(req CHECKS)" "auth_checks after revert"
	assert_running "$PID"
}

test_shared_library_in_pie() {
	build_libauth "$WORK" -fPIE -pie
	library_fix_cycle
}

# A non-PIE executable holds a COPY of auth_checks; the library's own copy
# is stale, and new code must use the executable's.
test_shared_library_copy_relocated_variable() {
	build_libauth "$WORK" -fno-pie -no-pie
	readelf -rW "$WORK/src/authd" | grep 'R_X86_64_COPY.*auth_checks' >/dev/null ||
		fail "expected a copy relocation for auth_checks"
	library_fix_cycle
}
