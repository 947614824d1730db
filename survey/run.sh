#!/usr/bin/env bash
# make survey: Debian 12's own CVE fixes built and applied live (issue 14).
# Installs what it needs, then build-dependencies package by package: run
# it on a build machine. Resumable: a package already done is kept in the
# repository (survey/results/PKG.json); SURVEY_PACKAGES="a b" runs only
# those.
# Writes build/survey/results.json, docs/survey.md, docs/survey-results.json.
# Then, on the survey's build of libxml2, every function of the library
# replaced in a live python3 that runs libxml2's own tests
# (tests/real/libxml2/self.sh, build/real/libxml2-self.json).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SURVEY_WORK:-$ROOT/build/survey}
mkdir -p "$WORK"
for p in bear quilt jq python3 dpkg-dev build-essential; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
bash "$ROOT/tools/deb-src.sh"
gcc -O2 -Wall -Werror -o "$WORK/hold" "$ROOT/survey/hold.c" -ldl
# What the runners of packages.txt need: sshd a host key and its
# privilege separation directory.
[ -e "$WORK/ssh_host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh_host_key"
mkdir -p /run/sshd
# The survey runs its own copy of opus: a rebuild meanwhile does not change
# the binary halfway through.
cp "$ROOT/build/opus" "$WORK/opus"
commit=$(git -C "$ROOT" rev-parse --short HEAD)
git -C "$ROOT" diff --quiet HEAD -- src || commit=$commit+changes
# shellcheck disable=SC2086
SURVEY_OPUS_COMMIT=$commit OPUS=$WORK/opus python3 "$ROOT/survey/survey.py" ${SURVEY_PACKAGES:-}
python3 "$ROOT/survey/render.py"
if [ -f "$WORK/libxml2/built" ]; then
	OPUS=$WORK/opus SURVEY_WORK=$WORK bash "$ROOT/tests/real/libxml2/self.sh"
fi
