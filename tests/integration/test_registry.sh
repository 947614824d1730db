# The in-target registry cannot be confused, or forged into harm: a memfd is
# opus's only when its record verifies against the mapping and the code, or
# when the process's journal says an opus began it. And one opus acts on a
# process at a time.
RING=$TARGETS/memfdring

# ring_setup NAME: authsrv running with a memfd of its own named NAME
# (tests/targets/memfdring), its fix built.
ring_setup() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	gcc -O2 -shared -fPIC -pthread -o "$WORK/ring.so" "$RING/ring.c"
	RING_NAME=$1 LD_PRELOAD=$WORK/ring.so start "$WORK/src/authsrv"
	RING=$1
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/fix-auth.diff" \
		--binary "$WORK/src/authsrv" -o "$WORK/fix.opatch" >/dev/null
	grep -q "/memfd:$RING" "/proc/$PID/maps" || fail "no ring mapped"
}

# ring_alive WHAT: the program's memfd is still mapped and open, and its
# counter still moves (the program writes it every 10 ms).
ring_alive() {
	local a b
	grep -q "/memfd:$RING" "/proc/$PID/maps" || fail "$1: the program's memfd was unmapped"
	ls -l "/proc/$PID/fd" | grep -q "memfd:$RING" || fail "$1: the program's memfd was closed"
	a=$(ring_counter)
	sleep 0.1
	b=$(ring_counter)
	[ "$b" -gt "$a" ] || fail "$1: the ring stopped ($a -> $b)"
	assert_running "$PID"
}

ring_counter() {
	python3 - "$PID" "$RING" <<'PY'
import sys
pid, name = sys.argv[1:3]
line = next(l for l in open(f"/proc/{pid}/maps") if f"/memfd:{name}" in l)
base = int(line.split("-")[0], 16)
with open(f"/proc/{pid}/mem", "rb") as mem:
    mem.seek(base + 4096)
    print(int.from_bytes(mem.read(8), "little"))
PY
}

# Any program may name a memfd as opus does: apply, recover, revert and
# list never take it for a patch, nor touch it.
test_a_programs_own_opus_named_memfd_is_left_alone() {
	ring_setup "opus-livepatch:audio-ring:0123456789abcdef"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	ring_alive "after apply"
	assert_eq DENIED "$(req 'AUTH admin ')" "the fix in force"
	assert_contains "no opus began it" "$("$OPUS" list "$PID")" "list tells it apart"
	assert_contains "nothing to recover" "$("$OPUS" recover "$PID")" "recover leaves it"
	ring_alive "after recover"
	"$OPUS" revert "$PID" >/dev/null
	ring_alive "after revert"
	assert_eq OK "$(req 'AUTH admin ')" "reverted"
	assert_eq 1 "$(grep -c '/memfd:opus-livepatch:' "/proc/$PID/maps")" "only the program's memfd"
}

# The same with the old naming, as the issue saw it: opus:audio-ring.
test_a_memfd_named_as_opus_used_to_is_left_alone() {
	ring_setup "opus:audio-ring"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	"$OPUS" recover "$PID" >/dev/null
	"$OPUS" revert "$PID" >/dev/null
	ring_alive "after apply, recover and revert"
}

# A target writes a record that describes its own memfd exactly (region,
# nonce, the digest of its "code", a jump into it), but the jump is not in
# the code: nothing leads there. Not a patch in force: opus says so, and
# applies the real fix; the forged mapping is left alone.
test_a_forged_record_is_not_taken_for_a_patch() {
	ring_setup "opus-livepatch:fix:00112233445566ff"
	python3 "$ROOT/tests/registry-forge.py" "$PID" "$RING" "$WORK/src/authsrv" serve consistent
	assert_eq 0 "$("$OPUS" list --json "$PID" | jq '.patches | length')" "no patch in force"
	assert_contains "never written" "$("$OPUS" list "$PID")" "list reports it"
	"$OPUS" apply --all --json "$WORK/fix.opatch" >"$WORK/all.json"
	assert_eq patched "$(jq -r --argjson p "$PID" '.processes[] | select(.pid == $p) | .state' \
		"$WORK/all.json")" "apply --all patches the process for real"
	assert_eq DENIED "$(req 'AUTH admin ')" "the fix in force"
	assert_contains "is already applied" "$("$OPUS" apply "$PID" "$WORK/fix.opatch" 2>&1 || true)" \
		"then, and only then, it is applied"
	ring_alive "after apply"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq OK "$(req 'AUTH admin ')" "reverted"
	ring_alive "after revert"
}

# A record that does not describe its mapping: damaged, or forged sloppily.
test_a_damaged_record_is_reported_as_such() {
	ring_setup "opus-livepatch:fix:00112233445566ff"
	python3 "$ROOT/tests/registry-forge.py" "$PID" "$RING" "$WORK/src/authsrv" serve wrong-region
	assert_contains "another region" "$("$OPUS" list "$PID")" "list says what is wrong"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "the fix applied"
	ring_alive "after apply"
}

# Two opus on one process: the second waits for the first, then refuses
# after its timeout, naming it; the state stays one patch, consistent.
test_one_opus_at_a_time() {
	start_authsrv_with_fix
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/authsrv/slow-v2.diff" \
		--binary "$WORK/src/authsrv" --id slow -o "$WORK/slow.opatch" >/dev/null
	(req "SLEEP 6" >/dev/null) &
	# slow_op is busy for 6 s, room for two sanitized opus runs on a loaded
	# machine (3 s was not): the apply below waits inside its lock.
	sleep 0.3
	"$OPUS" apply --timeout 10 "$PID" "$WORK/slow.opatch" >"$WORK/a.out" 2>&1 &
	local first=$!
	sleep 0.5
	expect_fail "a second apply meanwhile" "$OPUS" apply --timeout 1 "$PID" "$WORK/slow.opatch"
	assert_contains "another opus (pid $first) is acting on it" "$ERR" "the refusal names it"
	expect_fail "a revert meanwhile" "$OPUS" revert --timeout 1 "$PID"
	assert_contains "another opus" "$ERR" "revert too"
	wait "$first" || fail "the first apply: $(cat "$WORK/a.out")"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "one patch, not two"
	# A lock file left by a killed opus for a process now gone (pid, then
	# its start time: no process started at tick 1) is taken out.
	true &
	local dead=$!
	wait "$dead"
	touch "/run/opus/$dead-1.lock"
	assert_contains "already applied" "$("$OPUS" apply "$PID" "$WORK/slow.opatch" 2>&1 || true)" \
		"the same apply afterwards"
	assert_running "$PID"
	# Nothing journaled, nothing left: the lock file goes with its holder.
	local start
	start=$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$PID/stat")
	assert_eq "" "$(ls /run/opus | grep -x "$PID-$start.lock" || true)" "no lock file left"
	assert_eq "" "$(ls /run/opus | grep -x "$dead-1.lock" || true)" \
		"no lock file of a process that is gone"
}
