"""Runs libxml2's own python tests (python/tests/*.py) inside this one
process, one per line of stdin; a line "--" ends a round. Prints, per test,
its name, how it ended and a digest of what it printed (numbers left out:
the tests report libxml2's memory in use, which depends on the collector)."""
import contextlib
import hashlib
import io
import os
import re
import runpy
import sys

import libxml2  # noqa: F401 (loaded before the patch is applied)

tests = sys.argv[1]
print("ready", os.getpid(), flush=True)
for line in sys.stdin:
    name = line.strip()
    if name == "--":
        print("round", flush=True)
        continue
    os.chdir(tests)
    out = io.StringIO()
    status = "ok"
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(os.path.join(tests, name), run_name="__main__")
    except SystemExit as e:
        status = f"exit {e.code}"
    except Exception as e:  # a test's failure is part of its result
        status = f"raised {type(e).__name__}"
    digest = hashlib.sha1(re.sub(r"[0-9]+", "N", out.getvalue()).encode()).hexdigest()[:12]
    print(name, status, digest, flush=True)
