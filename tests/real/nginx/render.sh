#!/usr/bin/env bash
# Renders build/real/nginx.json as the table of docs/real-world.md.
set -euo pipefail
json=$1
jq -r '
"# Real-world results: Debian 12 nginx security fixes applied live\n",
"nginx \(.nginx), measured \(.date) by `make check-real` (tests/real/nginx/run.sh) on a 2-core machine.",
"Each fix is Debian'"'"'s own patch file, built with `opus build` against the tree with the earlier fixes,",
"and applied with `opus apply` to the master and both workers while wrk drives load. The stack is then reverted, newest first, under load.\n",
"| CVE | object | replaced functions | analysis | build ms | apply ms (3 processes) | max pause us | requests during apply | failed | result |",
"|---|---|---|---|---|---|---|---|---|---|",
(.patches[] | "| \(.cve) | \(.object) | \(.functions | join(", ")) | \(.findings | length) finding(s) | \(.build_ms) | \(.apply_ms) | \(.pause_us | floor) | \(.requests_during_apply) | \(.failed_requests) | \(.result)\(if .reason != "" then ": " + .reason else "" end) |"),
"\nCVE-2026-42945 (`rewrite ^(.*) /new?c=1; set $myvar $1;`, request `/cve42945/a%26b`): before `\(.cve_2026_42945.before)`, after the stack `\(.cve_2026_42945.after)`, after revert `\(.cve_2026_42945.after_revert)`.\n",
"Revert of the whole stack: \(.revert.requests) requests served, \(.revert.failed_requests) failed.\n",
"## Analysis findings\n",
(.patches[] | select(.findings | length > 0) | "- \(.cve): " + (.findings | join("; ")))
' "$json"
