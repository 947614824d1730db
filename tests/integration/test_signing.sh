# Signed patches: with a trusted-keys directory, only patches signed by one
# of its keys are applied or installed; everything else is refused before
# the target is touched.

signing_setup() {
	fleet_setup
	OPS_ID=$(cd "$WORK" && "$OPUS" keygen ops | awk 'NR == 1 {sub(":", "", $2); print $2}')
	(cd "$WORK" && "$OPUS" keygen stranger >/dev/null)
	mkdir -p "$WORK/trusted"
	cp "$WORK/ops.pub" "$WORK/trusted/"
	cp "$WORK/fix.opatch" "$WORK/signed.opatch"
	"$OPUS" sign "$WORK/signed.opatch" --key "$WORK/ops.key" >/dev/null
	start "$WORK/src/authd"
}

# refused WHAT MESSAGE CMD...: fails with MESSAGE; authd is untouched.
refused() {
	local what=$1 msg=$2
	shift 2
	expect_fail "$what" "$@"
	assert_contains "$msg" "$ERR" "$what"
	assert_eq 0 "$(opus_mappings "$PID")" "$what: target untouched"
	assert_eq OK "$(req 'AUTH admin ')" "$what: old behaviour"
	assert_running "$PID"
}

test_only_signed_patches_apply_when_keys_are_trusted() {
	signing_setup
	local t=$WORK/trusted
	refused "unsigned" "fix.opatch: refused: not signed" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/fix.opatch"
	"$OPUS" sign "$WORK/fix.opatch" --key "$WORK/stranger.key" -o "$WORK/stranger.opatch" >/dev/null
	refused "unknown key" "which is not in $t" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/stranger.opatch"

	# One byte of code changed after signing, and then the signature itself.
	local off
	cp "$WORK/signed.opatch" "$WORK/flipped.opatch"
	off=$(($(stat -c %s "$WORK/fix.opatch") / 2))
	printf '\x90' | dd of="$WORK/flipped.opatch" bs=1 seek="$off" conv=notrunc status=none
	refused "altered after signing" "does not match" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/flipped.opatch"
	cp "$WORK/signed.opatch" "$WORK/badsig.opatch"
	off=$(($(stat -c %s "$WORK/signed.opatch") - 10))
	printf '0' | dd of="$WORK/badsig.opatch" bs=1 seek="$off" conv=notrunc status=none
	cmp -s "$WORK/signed.opatch" "$WORK/badsig.opatch" &&
		printf '1' | dd of="$WORK/badsig.opatch" bs=1 seek="$off" conv=notrunc status=none
	refused "bad signature" "does not match" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/badsig.opatch"
	head -c -20 "$WORK/signed.opatch" >"$WORK/cut.opatch"
	refused "truncated trailer" "cut.opatch" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/cut.opatch"
	mkdir -p "$WORK/empty"
	refused "no key in the directory" "holds no trusted key" \
		"$OPUS" apply --trusted "$WORK/empty" "$PID" "$WORK/signed.opatch"

	OPUS_TRUSTED_DIR=$t "$OPUS" apply "$PID" "$WORK/signed.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "the signed patch applies"
	"$OPUS" revert "$PID" >/dev/null
	# Trust fails closed: a directory named on purpose that is not there
	# (misspelt, a dangling link) refuses everything.
	refused "a missing --trusted" "No such file or directory" \
		"$OPUS" apply --trusted "$WORK/trustd" "$PID" "$WORK/signed.opatch"
	ln -s "$WORK/nowhere" "$WORK/dangling"
	refused "a dangling --trusted" "dangling" \
		"$OPUS" apply --trusted "$WORK/dangling" "$PID" "$WORK/signed.opatch"
	refused "a missing \$OPUS_TRUSTED_DIR" "No such file or directory" \
		env OPUS_TRUSTED_DIR="$WORK/trustd" "$OPUS" apply "$PID" "$WORK/signed.opatch"
	# No directory named and none at the default place: no policy.
	[ -e /etc/opus/trusted.d ] || {
		env -u OPUS_TRUSTED_DIR "$OPUS" apply "$PID" "$WORK/fix.opatch" >/dev/null
		assert_eq DENIED "$(req 'AUTH admin ')" "without a policy"
	}
	assert_contains "key $OPS_ID (valid, trusted here)" \
		"$(OPUS_TRUSTED_DIR=$t "$OPUS" inspect "$WORK/signed.opatch" | grep '^signature')" \
		"inspect verifies it"
}

test_install_and_daemon_check_signatures() {
	signing_setup
	export OPUS_TRUSTED_DIR=$WORK/trusted
	expect_fail "installing an unsigned patch" "$OPUS" install --store "$WORK/store" \
		"$WORK/fix.opatch"
	assert_contains "not signed" "$ERR" "install refuses"
	assert_contains "no patches installed" "$("$OPUS" list --installed --store "$WORK/store")" \
		"nothing stored"
	# An unsigned file dropped into the store behind install's back.
	mkdir -p "$WORK/store"
	cp "$WORK/fix.opatch" "$WORK/store/000001-fix.opatch"
	start_daemon "$WORK/store"
	wait_log "skipping $WORK/store/000001-fix.opatch"
	assert_contains "not signed" "$(grep skipping "$WORK/daemon.log")" "the daemon says why"
	sleep 0.3
	assert_eq 0 "$(opus_mappings "$PID")" "the daemon applied nothing"
	rm "$WORK/store/000001-fix.opatch"
	"$OPUS" install --store "$WORK/store" "$WORK/signed.opatch" >/dev/null
	wait_log "patched $PID (authd) with $PATCH_ID"
	assert_eq DENIED "$(req 'AUTH admin ')" "the signed patch, installed, is applied"
	stop_daemon
}

test_sign_refuses_what_is_not_a_patch() {
	(cd "$WORK" && "$OPUS" keygen k >/dev/null)
	echo "not a patch" >"$WORK/x.opatch"
	expect_fail "signing a non-patch" "$OPUS" sign "$WORK/x.opatch" --key "$WORK/k.key"
	assert_contains "x.opatch" "$ERR" "names the file"
	expect_fail "a public key cannot sign" "$OPUS" sign "$WORK/x.opatch" --key "$WORK/k.pub"
	assert_contains "not an opus secret key" "$ERR" "says so"
	expect_fail "keygen does not overwrite" "$OPUS" keygen "$WORK/k"
	assert_eq "600" "$(stat -c %a "$WORK/k.key")" "the secret key is private"
}

# StrictModes: trust and the store are only what root or the user put
# there. Anything others could write is refused, naming the path.
test_trust_and_store_must_be_private() {
	signing_setup
	local t=$WORK/trusted
	chmod 777 "$t"
	refused "a world-writable trusted dir" "$t: writable by others" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/signed.opatch"
	chmod 755 "$t"
	chmod 664 "$t/ops.pub"
	refused "a group-writable key" "ops.pub: writable by others" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/signed.opatch"
	chmod 644 "$t/ops.pub"
	chown nobody "$t/ops.pub"
	refused "a key owned by another user" "owned by uid" \
		"$OPUS" apply --trusted "$t" "$PID" "$WORK/signed.opatch"
	chown root "$t/ops.pub"
	"$OPUS" apply --trusted "$t" "$PID" "$WORK/signed.opatch" >/dev/null
	assert_eq DENIED "$(req 'AUTH admin ')" "a private policy works"
	"$OPUS" revert "$PID" >/dev/null

	# A secret key others may read is not used to sign.
	chmod 644 "$WORK/ops.key"
	expect_fail "signing with a readable secret key" \
		"$OPUS" sign "$WORK/fix.opatch" --key "$WORK/ops.key" -o "$WORK/x.opatch"
	assert_contains "readable or writable by others" "$ERR" "the reason"

	# The store: a world-writable directory, a patch file owned by another.
	local st=$WORK/store
	"$OPUS" install --store "$st" "$WORK/fix.opatch" >/dev/null
	chmod 777 "$st"
	expect_fail "a world-writable store" "$OPUS" list --installed --store "$st"
	assert_contains "patch store $st: writable by others" "$ERR" "the store named"
	chmod 700 "$st"
	chown nobody "$st"/*.opatch
	expect_fail "a stored patch owned by another user" "$OPUS" list --installed --store "$st"
	assert_contains "owned by uid" "$ERR" "the file named"
	assert_running "$PID"
}
