#!/usr/bin/env bash
# The self-replacement section of docs/real-world.md, from
# build/real/nginx-self.json, build/real/expat-self.json,
# build/real/memcached-self.json, build/real/redis-self.json and
# build/real/libxml2-self.json (make survey).
set -euo pipefail
WORK=$1
echo
echo "# Self-replacement: every function replaced by its own code while it runs"
echo
echo "The proof that the engine links every reference a compiler emits, on code nobody here"
echo "wrote: \`opus build --replace-all\` replaces every function of every translation unit"
echo "the binary holds with its own recompiled code, and the suites check that the running"
echo "program answers exactly as before (tests/real/nginx/self.sh, tests/real/expat/self.sh,"
echo "tests/real/memcached/self.sh, tests/real/redis/self.sh, tests/real/libxml2/self.sh)."
echo "A function always on some thread's stack (a main loop) is named by opus's refusal and"
echo "kept; any other refusal fails the suite."
if [ -e "$WORK/nginx-self.json" ]; then
	jq -r 'def small: [.left_out[] | select(test("too small")) | split(" ")[0]];
	  "\nnginx (master and two workers, under wrk load), measured \(.date):\n",
	  (.objects[] | ([.kept_busy[] | select(. != "")]) as $kept | "- \(.object): \(.replaced) functions replaced; kept (always on a stack): \(if ($kept | length) > 0 then ($kept | join(", ")) else "none" end)" +
	    (if (small | length) > 0 then "; left out, under 5 bytes (no room for a jump): \(small | length) (\(small | join(", ")))" else "" end)),
	  "- requests under load: \(.load.apply.requests) while applying (\(.load.apply.failed) failed), \(.load.revert.requests) while reverting (\(.load.revert.failed) failed)",
	  "- 18 probes (rewrite, DAV PUT/MKCOL/COPY/DELETE, proxy, charset, mp4, scgi/uwsgi/grpc errors, stream proxy, SMTP, the Date header): the same answers before, patched and reverted"' \
		"$WORK/nginx-self.json"
fi
if [ -e "$WORK/expat-self.json" ]; then
	jq -r 'def small: [.left_out[] | select(test("too small")) | split(" ")[0]];
	  "\nlibexpat in two python3 processes (pyexpat), measured \(.date): \(.replaced) functions replaced, built in \(.build_ms) ms; \(.documents) documents (namespaces, entities, CDATA, encodings, errors, a recursive entity, a large one) answered the same patched and reverted; \(.requests_during) requests meanwhile, \(.failed_requests) failed" +
	  (if (small | length) > 0 then "; left out, under 5 bytes: \(small | join(", "))" else "" end)' \
		"$WORK/expat-self.json"
fi
if [ -e "$WORK/memcached-self.json" ]; then
	jq -r '"\nmemcached \(.version) as Debian 12 configures it (SASL, TLS), a server with a warm cache and four workers, measured \(.date): \(.replaced) functions replaced; kept (always on a stack): \(.kept_busy | join(", ")); memcached'"'"'s own tests (\(.test_files) files of t/, \(.checks) checks, pointed at the running server by their harness) gave the patched and then the reverted server the outcomes they gave a server never patched (\(.checks_passed_by_reference) checks passed there); \(.warm_keys) warm keys held through apply and revert; \(.load.apply.requests) and \(.load.revert.requests) requests under load during the apply and the revert, \(.load.apply.failed + .load.revert.failed) failed; the apply paused its \(.apply_stats.threads) threads \(.apply_stats.pause_us | floor) us, \(.apply_stats.scanned_bytes / 1048576 | floor) MiB scanned for suspended stacks (libcrypto imports makecontext), \(.apply_stats.dead_stacks_skipped) stack(s) of exited threads known for what they are and skipped"' \
		"$WORK/memcached-self.json"
fi
if [ -e "$WORK/redis-self.json" ]; then
	jq -r '"\nredis \(.version) as Debian 12 builds it (jemalloc, systemd, TLS), a server with a warm cache, two I/O threads and its background-job threads, measured \(.date): \(.replaced) functions replaced; kept (always on a stack): \(.kept_busy | join(", ")); redis'"'"'s own tests (\(.test_units) units of tests/unit, \(.checks) tests, run by its harness against the running server) gave the patched and then the reverted server the outcomes they gave a server never patched (\(.checks_passed_by_reference) passed there); \(.warm_keys) warm keys held through apply and revert; \(.load.apply.requests) and \(.load.revert.requests) requests under load during the apply and the revert, \(.load.apply.failed + .load.revert.failed) failed; the apply paused its \(.apply_stats.threads) threads \(.apply_stats.pause_us | floor) us"' \
		"$WORK/redis-self.json"
fi
if [ -e "$WORK/libxml2-self.json" ]; then
	jq -r '"\nlibxml2 as Debian 12 builds it (the survey'"'"'s build), in a python3 that loads it through Debian'"'"'s python3-libxml2, measured \(.date): \(.functions_replaced) functions replaced, built in \(.build_seconds) s; libxml2'"'"'s own python tests (python/tests, \(.tests)) run inside the patched process ended and printed the same as in an unpatched one, and \(.tests_after_revert) of them again after the revert (the three that register XPath functions crash a second round in an unpatched process too: the binding keeps its table'"'"'s size after freeing it); \(.apply)"' \
		"$WORK/libxml2-self.json"
fi
if [ -e "$WORK/kinds-self.txt" ]; then
	echo
	echo "tests/targets/kinds (a server whose functions reach every symbol kind: extern data"
	echo "through COPY and the GOT, TLS in the executable and the library, jump tables, const"
	echo "tables of function pointers, IFUNCs, static locals, weak and common symbols, .cold"
	echo "parts), every function of the executable and of libkinds.so replaced while it runs,"
	echo "in each flavour of tests/integration/test_self_replace.sh, measured $(date -r "$WORK/kinds-self.txt" +%F);"
	echo "a second instance of the same build answers the same requests before, patched and"
	echo "reverted:"
	echo
	echo "| flavour | object | replaced | kept (always on a stack) | left out (under 5 bytes) |"
	echo "|---|---|---|---|---|"
	sort "$WORK/kinds-self.txt"
fi
