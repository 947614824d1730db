# The Ansible role (contrib/ansible) against this machine over Ansible's
# local connection: check mode lists what would be patched and touches
# nothing; a run patches both programs; a second run changes nothing; state
# reverted takes the patch back out.

# playbook ARGS...: runs contrib/ansible/playbook.yml on localhost; prints
# the opus_patch task's result as JSON.
playbook() {
	ANSIBLE_STDOUT_CALLBACK=json ANSIBLE_LOCALHOST_WARNING=false \
		ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_NOCOLOR=1 \
		ansible-playbook -i localhost, -c local -e ansible_become=false \
		-e ansible_python_interpreter=/usr/bin/python3 \
		-e "opus_patch_file=$WORK/fix.opatch" -e "opus_bin=$OPUS" \
		-e "opus_patch_store=$WORK/store" "$@" "$ROOT/contrib/ansible/playbook.yml" \
		>"$WORK/ansible.json" 2>"$WORK/ansible.err" ||
		fail "ansible-playbook $*: $(jq -c '.plays[].tasks[].hosts.localhost | select(.failed) | .msg' \
			"$WORK/ansible.json" 2>/dev/null || cat "$WORK/ansible.err")"
	jq '.plays[0].tasks[] | select(.task.name | contains("Live-patch")) | .hosts.localhost' \
		"$WORK/ansible.json"
}

pids_of() { jq -r ".$1[]?.pid" <<<"$2" | sort -n | xargs; }

test_ansible_role_check_mode_apply_and_revert() {
	command -v ansible-playbook >/dev/null || fail "ansible-playbook is not installed (tools/deps.sh)"
	fleet_setup
	start "$WORK/src/authd"
	start_poll "$WORK/poll.out" ""
	local both r
	both=$(printf '%s\n' "$PID" "$POLL_PID" | sort -n | xargs)

	r=$(playbook --check)
	assert_eq "$both" "$(pids_of would_patch "$r")" "check mode lists both programs"
	assert_eq true "$(jq .changed <<<"$r")" "check mode reports a change to come"
	assert_eq 0 "$(opus_mappings "$PID")" "check mode patched nothing"
	assert_eq OK "$(req 'AUTH admin ')" "authd unchanged by check mode"

	r=$(playbook -e opus_patch_install=true)
	assert_eq "$both" "$(pids_of patched "$r")" "the run patches both"
	assert_eq DENIED "$(req 'AUTH admin ')" "authd patched"
	assert_eq DENIED "$(wait_line "$WORK/poll.out" "$POLL_PID" DENIED)" "authpoll patched"
	assert_contains "$PATCH_ID" "$("$OPUS" list --installed --store "$WORK/store")" "installed"

	r=$(playbook -e opus_patch_install=true)
	assert_eq false "$(jq .changed <<<"$r")" "a second run changes nothing"
	assert_eq "$both" "$(pids_of already_patched "$r")" "and says both are patched"

	r=$(playbook -e opus_patch_state=reverted -e opus_patch_install=true)
	assert_eq "$both" "$(pids_of reverted "$r")" "state reverted"
	assert_eq OK "$(req 'AUTH admin ')" "authd reverted"
	assert_contains "no patches installed" "$("$OPUS" list --installed --store "$WORK/store")" \
		"uninstalled"
	assert_running "$PID"
	assert_running "$POLL_PID"
}
