# Apply and revert on real processes of every build flavour: the fix must
# take effect, state must survive, the pid must not change.
D=$TARGETS/authsrv

# patch_cycle DIR PATCH-DIFF: the auth fix on a running authsrv, start to end.
auth_fix_cycle() {
	local dir=$1 bin=$2 pid
	start "$bin"
	pid=$PID
	assert_eq OK "$(req 'AUTH admin ')" "exploit before the patch"
	"$OPUS" build --source "$dir/src" --diff "$D/fix-auth.diff" --binary "$dir/src/authsrv" \
		-o "$dir/fix.opatch" >"$dir/build.out"
	"$OPUS" apply "$pid" "$dir/fix.opatch"
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	assert_eq DENIED "$(req 'AUTH admin hunt')" "partial password after the patch"
	assert_eq OK "$(req 'AUTH admin hunter2')" "right password after the patch"
	assert_running "$pid"
	assert_eq 1 "$(opus_patches_mapped "$pid")" "patches visible in /proc/$pid/maps"
	assert_contains fix "$("$OPUS" list "$pid")" "opus list after apply"
	"$OPUS" revert "$pid"
	assert_eq OK "$(req 'AUTH admin ')" "old behaviour after revert"
	assert_eq 0 "$(opus_mappings "$pid")" "opus mappings after revert"
	assert_contains "no patches" "$("$OPUS" list "$pid")" "opus list after revert"
	assert_running "$pid"
	[ "$pid" = "$PID" ] || fail "pid changed"
}

test_pie_O2_multithreaded_inlined_static() {
	build_authsrv "$WORK" -O2 -g -fomit-frame-pointer -fPIE -pie
	auth_fix_cycle "$WORK" "$WORK/src/authsrv"
	# check_password is static and inlined at -O2: its caller is replaced.
	assert_contains "replaced serve" "$(cat "$WORK/build.out")" "build report"
	assert_contains "inlines check_password, whose source changed" "$(cat "$WORK/build.out")" \
		"build report says why serve changed"
	case "$(cat "$WORK/build.out")" in *"replaced check_password"*)
		fail "an inlined static cannot be replaced on its own" ;;
	esac
}

test_nonpie_O0_single_thread() {
	build_authsrv "$WORK" -O0 -g -fno-pie -no-pie -DSINGLE_THREAD
	auth_fix_cycle "$WORK" "$WORK/src/authsrv"
	assert_contains "replaced check_password" "$(cat "$WORK/build.out")" "build report"
	assert_contains "its source changed" "$(cat "$WORK/build.out")" "build report says why"
}

test_nonpie_O2_multithreaded() {
	build_authsrv "$WORK" -O2 -g -fomit-frame-pointer -fno-pie -no-pie
	auth_fix_cycle "$WORK" "$WORK/src/authsrv"
}

test_stripped_running_binary() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	cp "$WORK/src/authsrv" "$WORK/authsrv-stripped"
	strip "$WORK/authsrv-stripped"
	readelf -S "$WORK/authsrv-stripped" | grep -q symtab && fail "strip left a symtab"
	auth_fix_cycle "$WORK" "$WORK/authsrv-stripped"
}

# A patch takes from the target only the memory its code and data need:
# the four pages of exit stubs (used only by a busy thread's catch) stay
# out of the memfd until one is written, where every apply used to fill
# them with zeros (16 KiB in each patched process).
test_apply_leaves_the_unused_exit_stub_pages_out_of_the_target() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	"$OPUS" build --source "$WORK/src" --diff "$D/fix-auth.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/fix.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "exploit after the patch"
	local ranges pages=0 resident r lo hi
	ranges=$(awk '/\/memfd:opus-livepatch:/ {print $1}' "/proc/$PID/maps")
	for r in $ranges; do
		lo=$((0x${r%-*})) hi=$((0x${r#*-}))
		pages=$((pages + (hi - lo) / 4096))
	done
	resident=$(($(fincore -b -n -o PAGES "/proc/$PID/map_files/${ranges%%$'\n'*}")))
	[ "$resident" -le $((pages - 4)) ] ||
		fail "$resident of the patch's $pages pages are in memory"
	assert_running "$PID"
}

# Static variables, file-scope and function-local, keep their running values.
test_state_survives() {
	local before after n s
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	req HELLO >/dev/null
	req HELLO >/dev/null
	before=$(req STATS)
	n=$(echo "$before" | sed -n 's/^requests=\([0-9]*\) stats=\([0-9]*\)$/\1/p')
	s=$(echo "$before" | sed -n 's/^requests=\([0-9]*\) stats=\([0-9]*\)$/\2/p')
	[ -n "$n" ] && [ -n "$s" ] || fail "unexpected STATS answer '$before'"
	"$OPUS" build --source "$WORK/src" --diff "$D/stats-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/stats.opatch"
	"$OPUS" apply "$PID" "$WORK/stats.opatch"
	after=$(req STATS)
	assert_eq "v2 requests=$((n + 1)) stats=$((s + 1))" "$after" "counters after the patch"
	"$OPUS" revert "$PID"
	assert_eq "requests=$((n + 2)) stats=$((s + 2))" "$(req STATS)" "counters after revert"
	assert_running "$PID"
}

# New string literals, new calls into libc (snprintf, an IFUNC strlen) and a
# new static local in the patch.
test_new_literals_libc_and_static_local() {
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	assert_eq hello "$(req HELLO)" "before"
	"$OPUS" build --source "$WORK/src" --diff "$D/hello-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/hello.opatch" 2>"$WORK/build.err"
	assert_contains "buf" "$(cat "$WORK/build.err")" "warning about the new static local"
	"$OPUS" apply "$PID" "$WORK/hello.opatch"
	assert_eq "hello, authsrv has 1 users" "$(req HELLO)" "after the patch"
	"$OPUS" revert "$PID"
	assert_eq hello "$(req HELLO)" "after revert"
}

# Threads blocked in accept, read, nanosleep, futex and epoll_wait carry on.
test_blocked_syscalls_continue() {
	local answer
	build_authsrv "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/authsrv"
	assert_eq "wakes=0 pokes=0" "$(req EVENTS)" "events before"
	# A connection whose serving thread is blocked in read() during the apply.
	exec 4<>"/dev/tcp/127.0.0.1/$PORT"
	sleep 0.1
	"$OPUS" build --source "$WORK/src" --diff "$D/slow-v2.diff" --binary "$WORK/src/authsrv" \
		-o "$WORK/slow.opatch"
	"$OPUS" apply "$PID" "$WORK/slow.opatch"
	printf 'SLEEP 0\n' >&4
	IFS= read -r -t 10 answer <&4 || true
	exec 4<&-
	assert_eq "slept 100" "$answer" "request on a connection opened before the apply"
	ticks_advance
	req WAKE >/dev/null
	req POKE >/dev/null
	sleep 0.2
	assert_eq "wakes=1 pokes=1" "$(req EVENTS)" "futex and epoll_wait threads after apply"
	"$OPUS" revert "$PID"
	req WAKE >/dev/null
	req POKE >/dev/null
	sleep 0.2
	assert_eq "wakes=2 pokes=2" "$(req EVENTS)" "futex and epoll_wait threads after revert"
	ticks_advance
	assert_running "$PID"
}

# text_differs_from_file PID BIN: how many bytes of BIN's code, as the
# process maps it, differ from the file.
text_differs_from_file() {
	python3 - "$1" "$2" <<'PY'
import os, sys
pid, binary = sys.argv[1], os.path.realpath(sys.argv[2])
for line in open(f"/proc/{pid}/maps"):
    f = line.split()
    if len(f) >= 6 and f[5] == binary and "x" in f[1]:
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        with open(f"/proc/{pid}/mem", "rb") as mem, open(binary, "rb") as elf:
            mem.seek(lo)
            elf.seek(int(f[2], 16))
            print(sum(a != b for a, b in zip(mem.read(hi - lo), elf.read(hi - lo))))
PY
}

# wait_sum_change OLD: the target's next sum that is not OLD (2 s at most).
wait_sum_change() {
	local now
	for _ in $(seq 100); do
		now=$(tail -1 "$START_OUT")
		[ "$now" != "$1" ] && break
		sleep 0.02
	done
	echo "$now"
}

# 64 functions side by side, all on one page: a fix to every one of them
# puts 64 jumps there, written with one read and one write of the page.
# Every answer changes; the revert leaves the code byte for byte as the
# binary file has it.
test_many_jumps_on_one_page_apply_and_revert_exactly() {
	build_target pagefull "$WORK" -O2 -g
	start "$WORK/src/pagefull"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/pagefull/fix-all.diff" \
		--binary "$WORK/src/pagefull" -o "$WORK/fix.opatch" >/dev/null
	local n pages before after
	n=$(nm "$WORK/src/pagefull" | grep -c ' T f[0-9][0-9]$')
	pages=$(nm "$WORK/src/pagefull" | awk '/ T f[0-9][0-9]$/ {print substr($1, 1, length($1) - 3)}' |
		sort -u | wc -l)
	[ "$n" = 64 ] && [ "$pages" -le 2 ] || fail "$n functions on $pages pages"
	sleep 0.1
	before=$(tail -1 "$START_OUT")
	assert_eq 0 "$(text_differs_from_file "$PID" "$WORK/src/pagefull")" "code before the patch"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	after=$(wait_sum_change "$before")
	assert_eq $((before + n)) "$after" "every function answers one more"
	[ "$(text_differs_from_file "$PID" "$WORK/src/pagefull")" -ge $((4 * n)) ] ||
		fail "not every entry holds a jump"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq "$before" "$(wait_sum_change "$after")" "every function answers as before"
	assert_eq 0 "$(text_differs_from_file "$PID" "$WORK/src/pagefull")" "code after the revert"
	assert_running "$PID"
}

# build_pagefull_with_f11_at OFFSET FLAGS...: tests/targets/pagefull built
# in $WORK with FLAGS and a pad unit linked before it, sized so that f11's
# entry starts OFFSET bytes into a page; fails the test if it cannot.
build_pagefull_with_f11_at() {
	local want=$1 skip=1 at
	shift
	for _ in 1 2 3; do
		mkdir -p "$WORK/src"
		printf 'void opus_test_pad(void) { __asm__(".skip %d"); }\n' "$skip" >"$WORK/src/pad.c"
		build_target pagefull "$WORK" "$@"
		at=$((0x$(nm "$WORK/src/pagefull" | awk '$3 == "f11" {print $1}') % 4096))
		[ "$at" = "$want" ] && return 0
		skip=$(((skip + want - at + 4096) % 4096))
	done
	fail "f11 is at $at bytes into its page, not $want"
}

# Code not aligned (-Os) can put a function's entry across a page
# boundary. The kernel writes /proc/PID/mem a page at a time and stops
# between pages when opus is killed: a jump there could be left half
# written. opus refuses such a patch, names the function, and leaves the
# process exactly as it was; one entry a page further on is patched.
test_entry_across_a_page_boundary_is_refused() {
	build_pagefull_with_f11_at 4094 -Os -g
	start "$WORK/src/pagefull"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/pagefull/fix-all.diff" \
		--binary "$WORK/src/pagefull" -o "$WORK/fix.opatch" >/dev/null
	sleep 0.1
	local before maps
	before=$(tail -1 "$START_OUT")
	maps=$(cat "/proc/$PID/maps")
	expect_fail "a jump across a page boundary" "$OPUS" apply "$PID" "$WORK/fix.opatch"
	assert_contains "the entry of f11 at" "$ERR" "the function named"
	assert_contains "crosses a page boundary" "$ERR" "why"
	assert_eq "$maps" "$(cat "/proc/$PID/maps")" "the memory map"
	assert_eq 0 "$(text_differs_from_file "$PID" "$WORK/src/pagefull")" "the code"
	sleep 0.1
	assert_eq "$before" "$(tail -1 "$START_OUT")" "the answers"
	assert_running "$PID"
	stop_all
	build_pagefull_with_f11_at 4091 -Os -g
	start "$WORK/src/pagefull"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/pagefull/fix-all.diff" \
		--binary "$WORK/src/pagefull" -o "$WORK/fix.opatch" >/dev/null
	sleep 0.1
	before=$(tail -1 "$START_OUT")
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq $((before + 64)) "$(wait_sum_change "$before")" "every function answers one more"
}

# poke PID ADDR HEX: write bytes into the process's memory, as another
# tool might (HEX empty: write nothing); prints the 5 bytes there before.
poke() {
	python3 - "$@" <<'PY'
import sys
pid, addr, data = sys.argv[1], int(sys.argv[2], 0), bytes.fromhex(sys.argv[3])
with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
    mem.seek(addr)
    print(mem.read(5).hex())
    mem.seek(addr)
    mem.write(data)
PY
}

# One of the 64 jumps on a page changed by someone else: revert refuses
# and changes nothing; with the jump written again, it goes through (each
# jump of the page checked in one read) and the code is the file's.
test_revert_refuses_when_one_jump_of_a_page_was_changed() {
	build_target pagefull "$WORK" -O2 -g
	start "$WORK/src/pagefull"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/pagefull/fix-all.diff" \
		--binary "$WORK/src/pagefull" -o "$WORK/fix.opatch" >/dev/null
	local base off addr old jump other before patched
	base=$(awk -v b="$(readlink -f "$WORK/src/pagefull")" '$6 == b {split($1, a, "-"); print a[1]; exit}' \
		"/proc/$PID/maps")
	off=$(nm "$WORK/src/pagefull" | awk '$3 == "f44" {print $1}')
	addr=$(printf '0x%x' $((0x$base + 0x$off)))
	sleep 0.1
	before=$(tail -1 "$START_OUT")
	old=$(poke "$PID" "$addr" "")
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	patched=$(wait_sum_change "$before")
	# Another tool sends f44 to f45 (whose own jump leads to its new
	# code): f44(1000) now answers f45's, one more.
	other=$(printf 'e9%08x' $((0x$(nm "$WORK/src/pagefull" | awk '$3 == "f45" {print $1}') - 0x$off - 5)))
	other=${other:0:2}${other:8:2}${other:6:2}${other:4:2}${other:2:2}
	jump=$(poke "$PID" "$addr" "$other")
	[ "$jump" != "$old" ] || fail "no jump at f44"
	assert_eq $((patched + 1)) "$(wait_sum_change "$patched")" "f44 sent to f45"
	expect_fail "revert with a jump changed" "$OPUS" revert "$PID"
	assert_contains "the entry of f44 at $addr holds bytes opus did not write" "$ERR" \
		"names the function and address changed"
	assert_eq "$other" "$(poke "$PID" "$addr" "$jump")" "revert left the bytes as they were"
	assert_eq "$patched" "$(wait_sum_change $((patched + 1)))" "the patch whole again"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq "$before" "$(wait_sum_change "$patched")" "every function answers as before"
	assert_eq 0 "$(text_differs_from_file "$PID" "$WORK/src/pagefull")" "code after the revert"
	assert_running "$PID"
}

# A handler that stores its own address for the next tick (a timer that
# re-arms itself, as memcached's clock_handler does) takes it with a lea
# the assembler resolves, no relocation left: bound to the new code, the
# program called into the patch after the revert had unmapped it, and
# died of SIGSEGV. The address is the binary's, whose entry leads to the
# code in force: new while applied, old once reverted. Stop-world, and per
# thread, where the copy of the old code takes its own address too. The
# handler also stores a pointer to a constant table (a clock: a function
# and a name): the patch binds it to the binary's copy, which outlives the
# patch (carried in the patch, revert refused to leave it dangling).
handler_rearms_itself() {
	build_target rearm "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/rearm"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/rearm/step-100.diff" \
		--binary "$WORK/src/rearm" -o "$WORK/fix.opatch" >/dev/null
	assert_eq 1 "$(req STEP)" "the old handler ticks"
	"$OPUS" apply "$@" "$PID" "$WORK/fix.opatch" >/dev/null
	sleep 0.05
	assert_eq 100 "$(req STEP)" "the new handler ticks"
	assert_eq steady "$(req CLOCK)" "the clock the new handler stored"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq 0 "$(opus_mappings "$PID")" "the patch is unmapped"
	counter_advances TICKS 0.1 "the ticks"
	assert_eq 1 "$(req STEP)" "the old handler ticks again"
	assert_eq steady "$(req CLOCK)" "the clock the old handler stored"
	assert_running "$PID"
}

test_a_handler_that_rearms_itself_survives_a_revert() {
	handler_rearms_itself --stop-world
}

test_a_handler_that_rearms_itself_survives_a_per_thread_revert() {
	handler_rearms_itself
}

# rearm_applied FIX: the rearm target running, tests/targets/rearm/FIX.diff
# built into $WORK/fix.opatch and applied.
rearm_applied() {
	build_target rearm "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/rearm"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/rearm/$1.diff" \
		--binary "$WORK/src/rearm" -o "$WORK/fix.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
}

# patch_span: "LO HI" (hex, no 0x) of the patch's mappings in $PID.
patch_span() {
	awk '/memfd:opus-livepatch/ {split($1, a, "-"); if (!lo) lo = a[1]; hi = a[2]}
		END {print lo, hi}' "/proc/$PID/maps"
}

# A fix that makes the timer call a function only the patch has: the
# pointer the program keeps leads into the patch, and unmapping it would
# leave it dangling (the program died of SIGSEGV on the next tick). revert
# finds the pointer, refuses at once naming where it is (memory seldom lets
# go of a pointer while a retry waits), and the patch stays in, the
# program ticking on the new code.
test_revert_refuses_to_leave_a_pointer_into_the_patch_dangling() {
	rearm_applied new-handler
	sleep 0.05
	assert_eq 7 "$(req STEP)" "the new function ticks"
	expect_fail "reverting while the program holds a pointer into the patch" \
		"$OPUS" revert "$PID"
	assert_contains "holds a pointer into fix" "$ERR" "the reason"
	assert_not_contains "gave up after" "$ERR" "a pointer in memory is not waited for"
	assert_contains "dangling" "$ERR" "what it would do"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "the patch stays"
	counter_advances TICKS 0.1 "the ticks"
	assert_eq 7 "$(req STEP)" "the new function ticks on"
	assert_running "$PID"
}

# A word that points into the patch's mapping where nothing of the patch
# is (its registry record) was not made by the patch: glibc's ld.so keeps
# one to where it mapped /etc/ld.so.cache before unmapping it, and nginx's
# workers were refused a revert when a patch was placed in that hole.
# revert takes such a patch out; a word that points into its code still
# keeps it in (the test above).
test_revert_ignores_a_stale_word_where_the_patch_has_nothing() {
	local base out
	rearm_applied step-100
	base=$(patch_span | cut -d' ' -f1)
	assert_eq "kept $base" "$(req "KEEP $base")" "the program keeps the mapping's start"
	out=$("$OPUS" revert "$PID" 2>&1) || fail "revert refused: $out"
	assert_eq 0 "$(opus_patches_mapped "$PID")" "the patch is taken out"
	assert_eq "kept $base" "$(req "KEEP $base")" "the program keeps the word"
	counter_advances TICKS 0.1 "the ticks"
	assert_eq 1 "$(req STEP)" "the old function ticks again"
	assert_running "$PID"
}

# The same word, kept before the patch is placed: opus reads the words the
# loaded objects keep in their data and places the patch where none points
# (ld.so keeps one to its unmapped cache, and the nearest free range to a
# library can be that cache's). The second apply would otherwise go where
# the first went, over the word, and its revert be refused.
test_a_patch_is_not_placed_over_a_word_the_program_keeps() {
	local base word lo hi out
	rearm_applied step-100
	base=$(patch_span | cut -d' ' -f1)
	"$OPUS" revert "$PID" >/dev/null
	# The first page after the record: the patch's code.
	word=$(printf '%x' $((0x$base + 4096)))
	assert_eq "kept $word" "$(req "KEEP $word")" "the program keeps a word where the patch was"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	counter_advances TICKS 0.1 "the ticks"
	assert_eq 100 "$(req STEP)" "the new function ticks"
	read -r lo hi < <(patch_span)
	if ((0x$word >= 0x$lo && 0x$word < 0x$hi)); then
		fail "the patch (0x$lo-0x$hi) was placed over the kept word 0x$word"
	fi
	out=$("$OPUS" revert "$PID" 2>&1) || fail "revert refused: $out"
	assert_eq 0 "$(opus_patches_mapped "$PID")" "the patch is taken out"
	counter_advances TICKS 0.1 "the ticks"
	assert_eq 1 "$(req STEP)" "the old function ticks again"
	assert_eq "kept $word" "$(req "KEEP $word")" "the program keeps its word"
	assert_running "$PID"
}

# A fix that installs a signal handler only the patch has: the kernel
# holds that pointer, where no read of the process's memory sees it, and
# after the revert the next SIGUSR2 would have jumped into unmapped memory.
# revert asks the kernel for each caught signal's handler (rt_sigaction in
# the target, every thread stopped), refuses naming the signal, and the
# patch stays: the signal still finds its handler.
test_revert_refuses_to_leave_a_signal_handler_dangling() {
	local before
	rearm_applied new-signal-handler
	sleep 0.05
	before=$(req TICKS)
	kill -USR2 "$PID"
	sleep 0.05
	[ "$(req TICKS)" -ge $((before + 1000)) ] || fail "the new handler did not run"
	expect_fail "reverting while a signal handler leads into the patch" "$OPUS" revert "$PID"
	assert_contains "the handler of signal 12 (SIGUSR2)" "$ERR" "the signal named"
	assert_contains "dangling" "$ERR" "what it would do"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "the patch stays"
	before=$(req TICKS)
	kill -USR2 "$PID"
	sleep 0.05
	[ "$(req TICKS)" -ge $((before + 1000)) ] || fail "the handler did not run after the refusal"
	assert_running "$PID"
}

# A process that catches ten signals, as a server does. Asking the kernel
# for each handler takes two ptrace stops a signal inside the revert's
# pause, and only a patch that makes a pointer to a function of its own
# can have given the kernel one: the revert of a fix that only calls asks
# none, the revert of one that takes its new function's address asks all
# ten (the refusal above is what they are asked for). Both go out whole,
# and the program's own handler still counts what it catches.
test_revert_asks_for_signal_handlers_only_where_the_patch_makes_code_pointers() {
	local fix want pointers asked
	build_target catcher "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/catcher"
	for fix in value-2000 pointer; do
		"$OPUS" build --source "$WORK/src" --diff "$TARGETS/catcher/$fix.diff" \
			--binary "$WORK/src/catcher" -o "$WORK/$fix.opatch" >/dev/null
	done
	for fix in value-2000:0:false pointer:10:true; do
		IFS=: read -r fix want pointers <<<"$fix"
		assert_eq "$pointers" "$("$OPUS" inspect --json "$WORK/$fix.opatch" | jq .code_pointers)" \
			"inspect's code_pointers for $fix"
		"$OPUS" apply "$PID" "$WORK/$fix.opatch" >/dev/null
		wait_line "$START_OUT" VALUE 2000 >/dev/null
		asked=$("$OPUS" revert --json "$PID" | jq .stats.handlers_asked)
		assert_eq "$want" "$asked" "handlers asked by the revert of $fix"
		wait_line "$START_OUT" VALUE 1000 >/dev/null
		assert_eq 0 "$(opus_patches_mapped "$PID")" "$fix unmapped"
	done
	kill -USR1 "$PID"
	wait_line "$START_OUT" CAUGHT 1 >/dev/null
	assert_running "$PID"
}

# A fix that stores a pointer to a constant only the patch has (a new
# string) in a worker thread's thread-local variable. That variable lies in
# the worker's stack mapping, beside the frames the scan then left alone
# (they keep stale words): after the revert, the next MOOD read unmapped
# memory.
# revert reads each thread's static TLS blocks and glibc's descriptor (its
# thread-specific data) too, refuses, and the mood stays readable.
test_revert_refuses_to_leave_a_thread_local_pointer_dangling() {
	build_target moody "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/moody"
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/moody/restless.diff" \
		--binary "$WORK/src/moody" -o "$WORK/fix.opatch" >/dev/null
	assert_eq ok "$(req FEEL)" "the worker woken"
	sleep 0.05
	assert_eq calm "$(req MOOD)" "the old mood"
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	assert_eq ok "$(req FEEL)" "the worker woken"
	sleep 0.05
	assert_eq restless "$(req MOOD)" "the new mood"
	expect_fail "reverting while a thread-local variable points into the patch" \
		"$OPUS" revert "$PID"
	assert_contains "holds a pointer into fix" "$ERR" "the reason"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "the patch stays"
	assert_eq restless "$(req MOOD)" "the mood still readable"
	assert_running "$PID"
}

# A write blocked on a full pipe whose buffer is a constant only the patch
# has: the kernel reads it once a reader makes room, and while it waits
# only the syscall's argument register points there. The revert read a
# thread's callee-saved registers alone in a syscall, unmapped the patch,
# and the write failed with EFAULT once the pipe drained. Now it waits for
# the register, refuses at --timeout, and the patch's bytes go through.
test_revert_refuses_while_a_blocked_syscall_reads_the_patch() {
	build_target blockwrite "$WORK" -O2 -g -fPIE -pie
	start "$WORK/src/blockwrite"
	local fd=$PORT bytes
	bytes=$(awk '/^ready/ {print $3}' "$START_OUT")
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/blockwrite/fixed.diff" \
		--binary "$WORK/src/blockwrite" -o "$WORK/fix.opatch" >/dev/null
	"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
	kill -USR1 "$PID"
	for _ in $(seq 100); do
		[ "$(cut -d' ' -f1 "/proc/$PID/syscall")" = 1 ] && break
		sleep 0.05
	done
	assert_eq 1 "$(cut -d' ' -f1 "/proc/$PID/syscall")" "the target blocked in write"
	expect_fail "reverting while a blocked write reads the patch" \
		"$OPUS" revert "$PID" --timeout 1
	assert_contains "a register of thread $PID points into fix (rsi, an argument of the syscall it is in)" \
		"$ERR" "the reason"
	assert_eq 1 "$(opus_patches_mapped "$PID")" "the patch stays"
	assert_eq fixed "$(timeout 5 head -c $((bytes + 5)) "/proc/$PID/fd/$fd" | tail -c 5)" \
		"the bytes the write took from the patch"
	for _ in $(seq 100); do
		grep -q "^wrote\|^write failed" "$START_OUT" && break
		sleep 0.05
	done
	assert_eq "wrote 5" "$(tail -1 "$START_OUT")" "the write's outcome"
	"$OPUS" revert "$PID" >/dev/null
	assert_eq 0 "$(opus_mappings "$PID")" "opus mappings after the revert"
	assert_running "$PID"
}

# until_line FILE LINE: waits (5 s at most) for a line of FILE to be LINE.
until_line() {
	for _ in $(seq 100); do
		grep -qx "$2" "$1" && return 0
		sleep 0.05
	done
	fail "never printed '$2': $(cat "$1")"
}

# The kernel keeps a pointer the target gave it and hands it back later: an
# epoll registration's data, a POSIX timer's value, a queued signal's value.
# No register or memory of the target holds it meanwhile.
test_revert_refuses_while_the_kernel_keeps_a_pointer_into_the_patch() {
	build_target handback "$WORK" -O2 -g -fPIE -pie
	"$OPUS" build --source "$WORK/src" --diff "$TARGETS/handback/fixed.diff" \
		--binary "$WORK/src/handback" -o "$WORK/fix.opatch" >/dev/null
	local mode reason
	for mode in epoll timer queued; do
		start "$WORK/src/handback" "$mode"
		"$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
		kill -USR1 "$PID"
		until_line "$START_OUT" given
		expect_fail "reverting while the kernel keeps a pointer into the patch ($mode)" \
			"$OPUS" revert "$PID" --timeout 1
		case $mode in
		epoll) reason="its epoll descriptor [0-9]* keeps a pointer into fix (0x[0-9a-f]*, the data of descriptor [0-9]*'s registration)" ;;
		timer) reason="its POSIX timer 0 keeps a pointer into fix (0x[0-9a-f]*, the value of its signal $(kill -l USR2))" ;;
		queued) reason="signal $(kill -l USR2), queued for the process, keeps a pointer into fix" ;;
		esac
		grep -q "$reason" <<<"$ERR" || fail "$mode: the reason: expected '$reason', got '$ERR'"
		assert_eq 1 "$(opus_patches_mapped "$PID")" "$mode: the patch stays"
		kill -USR1 "$PID"
		until_line "$START_OUT" released
		assert_eq fixed "$(tail -2 "$START_OUT" | head -1)" "$mode: what the kernel handed back"
		"$OPUS" revert "$PID" >/dev/null
		assert_eq 0 "$(opus_mappings "$PID")" "$mode: opus mappings after the revert"
		assert_running "$PID"
	done
}
