#!/usr/bin/env bash
# The redis section of docs/real-world.md, from build/real/redis-fixes.json
# (tests/real/redis/fixes.sh).
set -euo pipefail
jq -r '
  "\n# redis: Debian'"'"'s security fixes applied live\n",
  "redis \(.version) as Debian 12 builds it, a server with 5000 warm keys, two I/O threads and its job threads, under load; each of Debian'"'"'s CVE fixes built from its patch file against the running tree, applied alone, checked and reverted (tests/real/redis/fixes.sh, run by `make survey`; by `make check` until 2026-12-06), measured \(.date):\n",
  "| fix | result |", "|---|---|",
  (.fixes[] | "| \(.fix) | " +
    (if .refused then "refused by the analysis: \(.refused | gsub("\\|"; "/"))"
     else "\(.functions) function(s), \(.mode), paused \(.pause_us | floor) us; \(.requests.apply) + \(.requests.revert) requests during apply and revert, 0 failed" +
       (if (.kept_old | length) > 0 then "; kept its old code, as the build advised: \(.kept_old | join(", "))" else "" end)
     end) + " |")' "$1"
