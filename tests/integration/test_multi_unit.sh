# A fix in a header reaches every translation unit that includes it.
D=$TARGETS/kvsrv

test_header_fix_rebuilds_every_including_unit() {
	build_target kvsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/kvsrv"
	assert_eq STORED "$(req 'PUT abcdefghij 1')" "over-long key accepted before the fix"
	assert_eq STORED "$(req 'PUT short 2')" "normal key"
	assert_eq 1 "$(req 'GET abcdefghij')" "over-long key readable before the fix"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-key-length.diff" \
		--binary "$WORK/src/kvsrv" -o "$WORK/fix.opatch" >"$WORK/build.out"
	assert_contains "replaced kv_put (store.c)" "$(cat "$WORK/build.out")" "store.c rebuilt"
	assert_contains "(server.c)" "$(cat "$WORK/build.out")" "server.c rebuilt"
	"$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_eq REFUSED "$(req 'PUT abcdefghik 3')" "over-long key refused after the fix"
	assert_eq BADKEY "$(req 'GET abcdefghij')" "over-long key rejected by GET after the fix"
	assert_eq 2 "$(req 'GET short')" "stored data kept"
	assert_eq 2 "$(req COUNT)" "store count kept (static in store.c)"
	"$OPUS" revert "$PID"
	assert_eq 1 "$(req 'GET abcdefghij')" "old behaviour after revert"
	assert_running "$PID"
}
