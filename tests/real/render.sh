#!/usr/bin/env bash
# docs/real-world.md from the suites' results under build/real.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${REAL_WORK:-$ROOT/build/real}
[ -e "$WORK/nginx.json" ] && bash "$ROOT/tests/real/nginx/render.sh" "$WORK/nginx.json"
[ -e "$WORK/expat.json" ] && bash "$ROOT/tests/real/expat/render.sh" "$WORK/expat.json"
[ -e "$WORK/redis-fixes.json" ] && bash "$ROOT/tests/real/redis/render.sh" "$WORK/redis-fixes.json"
bash "$ROOT/tests/real/self-render.sh" "$WORK"
true
