#!/usr/bin/env bash
# Renders build/real/expat.json as a section of docs/real-world.md.
set -euo pipefail
jq -r '
"\n# A shared library: Debian 12 libexpat, \(.cve), patched live in python3\n",
"expat \(.expat), measured \(.date) by `make check-real` (tests/real/expat/run.sh).",
"libexpat.so.1 built from Debian'"'"'s source (original tarball plus the non-CVE patches, Debian'"'"'s hardening flags, `-Wl,-Bsymbolic-functions`),",
"loaded by Debian'"'"'s python3 (pyexpat) in two XML servers; Debian'"'"'s patch file for \(.cve) built with `opus build` in \(.build_ms) ms",
"and applied with one `opus apply --all` (\(.apply_ms | floor) ms) while both servers answered \(.requests_during_apply) parse requests (\(.failed_requests) failed).\n",
"- replaced: \(.functions | join(", "))",
"- processes patched: \([.processes[] | "pid \(.pid) (paused \(.pause_us | floor) us)"] | join(", "))",
"- `XML_ParseBuffer(parser, -1, 1)`: before `\(.neglen.before)`, after `\(.neglen.after)`, after `opus revert --all` `\(.neglen.after_revert)`",
"- a third python3 on the system'"'"'s libexpat (another build-id) was left alone; it answers `\(.neglen.system_libexpat)`"
' "$1"
