#!/usr/bin/env bash
# tools/stage.sh NAME COMMAND...: runs COMMAND, then prints how long stage
# NAME took, so a log of make check says where its time went. Keeps
# COMMAND's exit status.
name=$1
shift
start=$(date +%s)
"$@"
rc=$?
echo "== stage $name: $(($(date +%s) - start)) s (exit $rc)"
exit "$rc"
