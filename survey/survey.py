#!/usr/bin/env python3
"""The survey (issue 14): Debian 12's own CVE fixes, built and applied live.

For each package of survey/packages.txt:
  1. fetch the newest source version apt can download (deb-src);
  2. make the pre-fix tree: the quilt series without its CVE patches (and
     without any other patch that no longer applies once they are gone);
  3. build it as debian/rules does (dpkg-buildpackage -B under bear,
     unstripped, nocheck);
  4. for every CVE patch in series order: opus analyze, opus build against
     the ELF file that compiles the changed files, and, when built, apply it
     to a running process that maps that file (survey/hold for a library, the
     package's runner from packages.txt for a program). The fixes stack: each
     one is built on the tree with the earlier built fixes (--after), as an
     admin applies them one after another. A fix applied and then refused
     leaves the tree as the process runs it.
The work (sources, builds, logs) is kept under build/survey/PKG/; each
package's result under survey/results/PKG.json, in the repository, so that
a run on another machine or in another checkout goes on where the last one
stopped. A complete result is not redone: delete it to redo the package
(after a change to opus that concerns it).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPUS = os.environ.get("OPUS", os.path.join(ROOT, "build", "opus"))
WORK = os.environ.get("SURVEY_WORK", os.path.join(ROOT, "build", "survey"))
HOLD = os.path.join(WORK, "hold")
RESULTS = os.environ.get("SURVEY_RESULTS", os.path.join(ROOT, "survey", "results"))
BUILD_LIMIT = int(os.environ.get("SURVEY_BUILD_LIMIT", 40 * 60))
CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.I)
SCHEMA = 1


def log(pkg, msg):
    print(f"survey: {pkg}: {msg}", flush=True)


def run(cmd, cwd=None, timeout=None, env=None, log_to=None):
    """Runs cmd; returns (status, seconds, output). Output also goes to
    log_to when given."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace")
        status, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        status, out = -1, (e.stdout or b"").decode(errors="replace") + "\n(timed out)"
    if log_to:
        with open(log_to, "w") as f:
            f.write(out)
    return status, round(time.monotonic() - start, 2), out


def last_line(text, prefix=""):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    for l in reversed(lines):
        if not prefix or l.startswith(prefix):
            return l[len(prefix):].strip() if prefix else l.strip()
    return lines[-1].strip() if lines else ""


# ---- the package: fetch, pre-fix tree, build -------------------------------

def fetch(pkg, d):
    """The newest source version apt can download, unpacked without its
    patches into d/tree. Returns the version."""
    dl = os.path.join(d, "dl")
    if os.path.exists(os.path.join(d, "version")):
        return open(os.path.join(d, "version")).read().strip()
    shutil.rmtree(dl, ignore_errors=True)
    os.makedirs(dl)
    out = subprocess.run(["apt-cache", "showsrc", pkg], capture_output=True, text=True).stdout
    versions = sort_versions({l.split()[1] for l in out.splitlines() if l.startswith("Version:")})
    for v in versions:
        st, _, _ = run(["apt-get", "source", "-qq", "--download-only", f"{pkg}={v}"], cwd=dl)
        if st == 0:
            break
    else:
        raise Failure("fetch", f"apt-get source {pkg} failed for every version ({versions})")
    dsc = [f for f in os.listdir(dl) if f.endswith(".dsc")][0]
    tree = os.path.join(d, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    st, _, out = run(["dpkg-source", "--skip-patches", "-x", dsc, tree], cwd=dl)
    if st:
        raise Failure("unpack", last_line(out))
    # The pre-fix tree rewrites the series: keep the package's own.
    if os.path.exists(os.path.join(tree, "debian", "patches", "series")):
        shutil.copy(os.path.join(tree, "debian", "patches", "series"), os.path.join(d, "series"))
    with open(os.path.join(d, "version"), "w") as f:
        f.write(v + "\n")
    return v


def sort_versions(versions):
    """Newest first, by dpkg's ordering."""
    import functools

    def cmp(a, b):
        if a == b:
            return 0
        gt = subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
        return -1 if gt else 1
    return sorted(versions, key=functools.cmp_to_key(cmp))


class Failure(Exception):
    def __init__(self, stage, reason):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def series(d):
    """The patch names of the package's own series, in order."""
    path = os.path.join(d, "series")
    if not os.path.exists(path):
        return []
    names = []
    for line in open(path, errors="replace"):
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    return names


def patch_header(path):
    """The DEP-3 header: the text before the diff starts."""
    head = []
    for line in open(path, errors="replace"):
        if line.startswith(("--- ", "diff ", "Index: ", "+++ ")):
            break
        head.append(line)
    return "".join(head)


def cves_of(tree, name):
    """The CVE ids a patch names, in its file name or DEP-3 header."""
    path = os.path.join(tree, "debian", "patches", name)
    found = CVE.findall(name) + CVE.findall(patch_header(path))
    return sorted({c.upper() for c in found})


def quilt(tree, *args):
    env = dict(os.environ, QUILT_PATCHES="debian/patches", QUILT_PC=".pc")
    return run(["quilt", "--quiltrc", "/dev/null", *args], cwd=tree, env=env)


def prefix_tree(tree, names, cve):
    """Applies the series without the CVE patches (quilt, as dpkg-source
    would). A patch that fails once they are gone is dropped. Returns the
    dropped names."""
    keep = [n for n in names if n not in cve]
    with open(os.path.join(tree, "debian", "patches", "series"), "w") as f:
        f.write("".join(n + "\n" for n in keep))
    dropped = []
    while True:
        st, _, out = quilt(tree, "push")
        if st in (0,):
            continue
        if st == 2 and ("No patches" in out or "File series fully applied" in out):
            break
        nxt = quilt(tree, "next")[2].strip().split("/")[-1]
        if not nxt:
            break
        dropped.append(nxt)
        quilt(tree, "delete", "-n")
    return dropped


def forget_unfinished_build(d):
    """A build that was interrupted or failed leaves a tree its clean target
    may not handle (tiff's fails on a half-built doc/): the next run unpacks
    the source again."""
    if os.path.exists(os.path.join(d, "building")) and \
            not os.path.exists(os.path.join(d, "built")):
        for name in ("version", "dropped.json", "building"):
            if os.path.exists(os.path.join(d, name)):
                os.remove(os.path.join(d, name))
        shutil.rmtree(os.path.join(d, "tree"), ignore_errors=True)


def prepare_and_build(pkg, d, rec, jobs):
    """Unpacks (again, after a build that did not finish), makes the pre-fix
    tree and builds it. Returns the series' patch names and the CVE ones."""
    forget_unfinished_build(d)
    rec["version"] = fetch(pkg, d)
    tree = os.path.join(d, "tree")
    fmt = open(os.path.join(tree, "debian", "source", "format")).read().strip() \
        if os.path.exists(os.path.join(tree, "debian", "source", "format")) else "1.0"
    names = series(d)
    if fmt != "3.0 (quilt)" or not names:
        raise Failure("series", f"source format {fmt} without a quilt series")
    cve = [n for n in names if cves_of(tree, n)]
    rec["cve_patches"] = cve
    log(pkg, f"{rec['version']}: {len(cve)} CVE patches of {len(names)}")
    if not os.path.exists(os.path.join(d, "dropped.json")):
        dropped = prefix_tree(tree, names, set(cve))
        json.dump(dropped, open(os.path.join(d, "dropped.json"), "w"))
    if not os.path.exists(os.path.join(d, "built")):
        open(os.path.join(d, "building"), "w").close()
        rec["build_seconds"] = build_package(pkg, rec["version"], d, jobs)
        with open(os.path.join(d, "built"), "w") as f:
            f.write(str(rec["build_seconds"]))
    return names, cve


def build_package(pkg, version, d, jobs):
    """Build-deps, then dpkg-buildpackage -B under bear. Returns seconds."""
    tree = os.path.join(d, "tree")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    st, _, out = run(["apt-get", "build-dep", "-y", "-qq", "-o", "DPkg::Lock::Timeout=1800",
                      f"{pkg}={version}"], env=env,
                     log_to=os.path.join(d, "build-dep.log"))
    if st:
        raise Failure("build-dep", last_line(out))
    # A fix that adds a symbol is left out of the pre-fix tree, so the
    # package's symbols file lists one the build lacks: not an error here.
    # The PATH a buildd gives (sbuild's default): a python or tool this
    # machine's user put first (pyenv) must not stand in for Debian's.
    env = dict(os.environ, DEB_BUILD_OPTIONS=f"nocheck nostrip parallel={jobs}",
               DPKG_GENSYMBOLS_CHECK_LEVEL="0",
               PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    st, secs, out = run(["bear", "--output", os.path.join(tree, "compile_commands.json"), "--",
                         "dpkg-buildpackage", "-B", "-us", "-uc", "-d"],
                        cwd=tree, env=env, timeout=BUILD_LIMIT, log_to=os.path.join(d, "build.log"))
    if st == -1:
        raise Failure("build", f"over the limit of {BUILD_LIMIT // 60} minutes")
    if st:
        raise Failure("build", last_line(out))
    # bear can end without writing its database (seen once on c-ares): the
    # build is then of no use to opus, and is done again.
    cdb = os.path.join(tree, "compile_commands.json")
    if not os.path.exists(cdb) or os.path.getsize(cdb) < 3:
        raise Failure("build", "bear wrote no compile_commands.json")
    return secs


# ---- the ELF files the build made ------------------------------------------

def elf_files(tree):
    """Every ELF executable or shared library of the binary packages built."""
    out = []
    deb = os.path.join(tree, "debian")
    for p in sorted(os.listdir(deb)):
        pd = os.path.join(deb, p)
        if p == "tmp" or not os.path.isdir(os.path.join(pd, "DEBIAN")):
            continue
        for dirpath, _, files in os.walk(pd):
            if "/usr/lib/debug" in dirpath:
                continue
            for f in files:
                path = os.path.join(dirpath, f)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as fh:
                    head = fh.read(18)
                if head[:4] == b"\x7fELF" and head[16] in (2, 3):  # EXEC or DYN
                    out.append(path)
    return out


def elf_index(d, tree):
    """For each ELF file: its compile units (DWARF names) and functions."""
    cache = os.path.join(d, "elves.json")
    if os.path.exists(cache):
        index = json.load(open(cache))
        if all("dirs" in e for e in index.values()):
            return index
    index = {}
    for path in elf_files(tree):
        cu = subprocess.run(["readelf", "--debug-dump=info", "--dwarf-depth=1", path],
                            capture_output=True, text=True, errors="replace").stdout
        units = sorted(set(re.findall(r"DW_AT_name\s*:\s*(?:\(indirect[^)]*\):\s*)?(\S+\.c)\b", cu)))
        dirs = sorted(set(re.findall(r"DW_AT_comp_dir\s*:\s*(?:\(indirect[^)]*\):\s*)?(\S+)", cu)))
        syms = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True,
                              errors="replace").stdout
        funcs = sorted({l.split()[2].split("@")[0] for l in syms.splitlines()
                        if len(l.split()) == 3 and l.split()[1] in "tTiW"})
        index[path] = {"units": units, "dirs": dirs, "functions": funcs,
                       "library": ".so" in os.path.basename(path)}
    json.dump(index, open(cache, "w"))
    return index


def binaries_for(index, files, funcs, root="."):
    """The ELF files that compile one of the changed files (from the source
    root's copy, when the build compiles copies), those that define the most
    changed functions first, libraries before programs. DWARF names units,
    not headers: a fix that changes only headers is compiled where one of
    the changed functions (or a caller it is inlined into) is defined."""
    headers = [f for f in files if f.endswith(".h")] if not any(
        f.endswith(".c") for f in files) else []

    def compiles(units):
        return any(u == f or u.endswith("/" + f) or f.endswith("/" + u.lstrip("./"))
                   for u in units for f in files)

    def under_root(dirs):
        return root == "." or any(re.sub(r"^(\./)+", "", d + "/").startswith(root + "/")
                                  for d in dirs)
    ranked = []
    for path, e in index.items():
        hits = len(set(funcs) & set(e["functions"]))
        if not (compiles(e["units"]) or (headers and hits)) or not under_root(e.get("dirs", [])):
            continue
        # The installer's (udeb) copy of a library last.
        ranked.append((-hits, not e["library"], "-udeb/" in path, path))
    return [r[-1] for r in sorted(ranked)]


# ---- running processes -----------------------------------------------------

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    """A process that maps one ELF file: survey/hold for a library, the
    package's own command (packages.txt) for a program."""

    def __init__(self, binary, tree, commands):
        self.binary, self.proc = binary, None
        libdirs = sorted({os.path.dirname(p) for p in elf_files(tree) if ".so" in p})
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs))
        args = next((a for prog, a in commands if binary.endswith("/" + prog)), None)
        module = re.match(r"([A-Za-z0-9_]+)\.cpython-\d+.*\.so$", os.path.basename(binary))
        if module:
            # A Python extension needs libpython's symbols: python3 imports
            # it from where the build put it, and waits.
            argv = ["/usr/bin/python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                    f"import {module.group(1)}; sys.stdin.read()", os.path.dirname(binary)]
        elif ".so" in os.path.basename(binary):
            argv = [HOLD, binary]
        elif args is not None:
            argv = [binary] + [a.replace("{port}", str(free_port())).replace("{work}", WORK)
                               .replace("{conf}", os.path.join(ROOT, "survey", "conf"))
                               for a in args]
        else:
            return
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.5 if argv[0] == HOLD else 1.5)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def maps_binary(self):
        try:
            return self.binary in open(f"/proc/{self.proc.pid}/maps").read()
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- one fix ---------------------------------------------------------------

def changed_files(diff):
    files = []
    for line in open(diff, errors="replace"):
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            if name != "/dev/null":
                files.append(name.split("/", 1)[1] if "/" in name else name)
    return files


_roots = {}


def _compiled_files(tree):
    try:
        return [os.path.normpath(os.path.join(e["directory"], e["file"]))
                for e in json.load(open(os.path.join(tree, "compile_commands.json")))]
    except (OSError, ValueError):
        return []


def _copied_subdir(tree, files):
    """(copy, prefix) when debian/rules compiles copies of one subdirectory
    of the tree (expat's copies expat/ to src/ and srcw/ and builds there):
    a compiled directory D whose C files all have twins of the same path
    under P/ that the build does not compile, and that are no newer than
    D's (the build made the copy: sqlite3's compiles src/ and copies it to
    tsrc/ for its amalgamation, the other way round). By name, not content:
    the tree's own files may hold fixes the copies do not. None otherwise."""
    compiled = set(files)
    by_dir = {}
    for f in sorted(files):
        rel = os.path.relpath(f, tree)
        if f.endswith(".c") and not rel.startswith(("..", "debian/")) and "/" in rel:
            by_dir.setdefault(rel.split("/", 1)[0], []).append(rel.split("/", 1)[1])
    tops = sorted(n for n in os.listdir(tree) if not n.startswith(".") and n != "debian"
                  and os.path.isdir(os.path.join(tree, n)))
    for d, rests in sorted(by_dir.items()):
        for p in tops:
            if p == d:
                continue
            pairs = [(os.path.join(tree, d, r), os.path.join(tree, p, r)) for r in rests[:20]]
            if all(os.path.isfile(t) and t not in compiled
                   and os.path.getmtime(t) <= os.path.getmtime(c) for c, t in pairs):
                return os.path.join(tree, d), p
    return None


def source_root(tree):
    """Where the build compiles the sources, and the prefix the diff's paths
    lose there: the tree itself; or the copy of it under debian/ that
    debian/rules made for each flavour (curl copies the tree to
    debian/build, build-gnutls and build-nss); or a copy of one of its
    subdirectories (expat's src/ and srcw/, from expat/). A fix goes into
    the first copy, which is the source opus is given, as a user patching
    that flavour's library would."""
    if tree not in _roots:
        top = os.path.abspath(tree)
        files = _compiled_files(top)
        deb = os.path.join(top, "debian") + "/"
        _roots[tree] = (tree, "")
        if files and all(f.startswith(deb) for f in files):
            copies = sorted({f[len(deb):].split("/")[0] for f in files})
            _roots[tree] = (os.path.join(deb, copies[0]), "")
        elif files:
            _roots[tree] = _copied_subdir(top, files) or (tree, "")
    return _roots[tree][0]


def diff_at_root(tree, diff):
    """The diff as the source root sees it: its paths without the copied
    subdirectory's prefix (a/expat/lib/x.c is a/lib/x.c in src/)."""
    source_root(tree)
    prefix = _roots[tree][1]
    if not prefix:
        return diff
    out = os.path.join(os.path.dirname(tree), "at-root", os.path.basename(diff))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(diff, errors="replace") as src, open(out, "w") as dst:
        for line in src:
            if line.startswith(("--- ", "+++ ")):
                line = re.sub(r"^(--- |\+\+\+ )([^/\s]+/)" + re.escape(prefix) + "/", r"\1\2",
                              line)
            dst.write(line)
    return out


def files_at_root(tree, files):
    """The diff's files as the build compiled them: in a copied
    subdirectory, under the copy's name (expat/lib/x.c is src/lib/x.c)."""
    root, prefix = source_root(tree), _roots[tree][1]
    if not prefix:
        return files
    rel = os.path.relpath(root, os.path.abspath(tree))
    return [os.path.join(rel, f[len(prefix) + 1:]) if f.startswith(prefix + "/") else f
            for f in files]


def root_of_copies(tree):
    """The compile directories of the flavour the fixes go to, relative to
    the tree (debian/build for curl), or "." when the unit names tell the
    flavours apart (expat's src/ and srcw/) or there is one."""
    root = source_root(tree)
    if _roots[tree][1]:
        return "."
    return os.path.relpath(root, tree)


def source_args(tree):
    root = source_root(tree)
    if root == tree:
        return ["--source", tree]
    return ["--source", root, "--cdb", os.path.join(tree, "compile_commands.json")]


def patch_args(diff, reverse):
    args = ["patch", "-p1", "-s", "-f", "--no-backup-if-mismatch", "-i", diff]
    return args + ["-R"] if reverse else args


def _roots_and_diffs(tree, diff):
    root = source_root(tree)
    return [(tree, diff)] + ([(root, diff_at_root(tree, diff))] if root != tree else [])


def applies(tree, diff, reverse=False):
    return all(run(patch_args(d, reverse) + ["--dry-run"], cwd=root)[0] == 0
               for root, d in _roots_and_diffs(tree, diff))


def patch_tree(tree, diff, reverse=False):
    """The fix into the tree, and into the copy the build compiles."""
    for root, d in _roots_and_diffs(tree, diff):
        st, _, out = run(patch_args(d, reverse), cwd=root)
        if st:
            raise Failure("patch", last_line(out))


def compile_seconds(tree, files):
    """How long compiling the changed C files once takes, as the package's
    build compiles them: the figure a fix's build time compares with."""
    try:
        cdb = json.load(open(os.path.join(tree, "compile_commands.json")))
    except (OSError, ValueError):
        return None
    total, found = 0.0, False
    for f in files:
        if not f.endswith(".c"):
            continue
        for e in cdb:
            path = os.path.normpath(os.path.join(e["directory"], e["file"]))
            if path.endswith("/" + f):
                args = e.get("arguments") or e["command"].split()
                if "-o" in args:
                    i = args.index("-o")
                    args = args[:i + 1] + ["/dev/null"] + args[i + 2:]
                st, secs, _ = run(args, cwd=e["directory"], timeout=600)
                if st == 0:
                    total, found = total + secs, True
                break
    return round(total, 2) if found else None


def refusal_rule(findings):
    errors = sorted({f["kind"] for f in findings if f["severity"] == "error"})
    return ", ".join(errors)


def keep_in_tree(ctx, diff):
    patch_tree(ctx["tree"], diff)
    with open(os.path.join(ctx["dir"], "fixes-in-tree"), "a") as f:
        f.write(diff + "\n")


def survey_fix(ctx, name):
    """Analyze, build and apply one CVE patch. Returns its record. A fix that
    changes no code the build compiles (docs, code configured out) is still
    patched into the tree: the running code is the same with it, and later
    fixes may need its lines."""
    r = analyze_build_apply(ctx, name)
    if r.get("reason") in (NO_C_CHANGE, NOT_BUILT) and applies(ctx["tree"], r["diff"]):
        keep_in_tree(ctx, r["diff"])
        r["in_tree"] = True
    if not r.get("in_tree") and r["category"] not in ("built", "applied_live"):
        ctx.setdefault("left_out", []).append(name)
    r.pop("diff", None)
    return r


NO_C_CHANGE = "no C change"
NOT_BUILT = "code not built in Debian's configuration"


def analyze_build_apply(ctx, name):
    tree, d = ctx["tree"], ctx["dir"]
    diff = os.path.join(tree, "debian", "patches", name)
    tag = tag_of(name)
    r = {"patch": name, "cves": cves_of(tree, name), "files": changed_files(diff), "diff": diff}
    c_files = [f for f in r["files"] if f.endswith((".c", ".h"))]
    if not c_files:
        return dict(r, category="not_buildable", reason=NO_C_CHANGE)
    if not applies(tree, diff):
        left_out = ctx.get("left_out")
        if left_out:
            return dict(r, category="not_buildable",
                        reason="does not apply to the pre-fix tree (an earlier fix it needs was not built)",
                        detail="left out before it: " + ", ".join(left_out))
        return dict(r, category="not_buildable", reason="does not apply to the pre-fix tree")
    st, secs, out = run([OPUS, "analyze", *source_args(tree), "--diff", diff_at_root(tree, diff),
                         "--json"],
                        timeout=3600, log_to=os.path.join(d, tag + ".analyze"))
    r["analyze_seconds"] = secs
    if st == CLI_NOTHING:
        return dict(r, category="not_buildable", reason=NOT_BUILT,
                    detail=last_line(out, "opus analyze:"))
    if st not in (0, 3):
        return dict(r, category="not_buildable", reason="analysis failed",
                    detail=last_line(out, "opus analyze:"))
    a = json.loads(out[out.index("{"):])
    r["functions"] = [f["name"] for f in a["functions"]]
    r["findings"] = [{k: f[k] for k in ("severity", "kind", "function", "message")}
                     for f in a["findings"]]
    # An error opus build may lift from the binary (a global function's
    # signature change) goes on to the build, which decides.
    if st == 3 and a.get("unsafe", True):
        return dict(r, category="refused", stage="analysis", rule=refusal_rule(a["findings"]))
    return build_and_apply(ctx, r, diff, tag)


CLI_NOTHING = 4


def inlined_into(findings):
    """The callers the analysis says changed static functions are inlined
    into ("... its callers are replaced with it (a, b)")."""
    out = []
    for f in findings:
        m = re.search(r"\(([^()]*)\)$", f["message"]) if f["kind"] == "inlined-into" else None
        if m:
            out += [n.strip() for n in m.group(1).split(",")]
    return out


def build_and_apply(ctx, r, diff, tag):
    tree, d = ctx["tree"], ctx["dir"]
    bins = binaries_for(ctx["index"], files_at_root(tree, r["files"]),
                        r["functions"] + inlined_into(r["findings"]), root_of_copies(tree))
    if not bins:
        return dict(r, category="not_buildable", reason=NOT_BUILT,
                    detail="no ELF file of the build compiles " + ", ".join(r["files"]))
    r["compile_seconds"] = compile_seconds(tree, files_at_root(tree, r["files"]))
    for binary in bins[:2]:
        out_patch = os.path.join(d, tag + ".opatch")
        args = [OPUS, "build", *source_args(tree), "--diff", diff_at_root(tree, diff),
                "--binary", binary,
                "--id", tag, "-o", out_patch]
        for prev in ctx["chain"].get(binary, []):
            args += ["--after", prev]
        st, secs, out = run(args, timeout=3600, log_to=os.path.join(d, tag + ".build"))
        r.update(binary=os.path.relpath(binary, tree), build_seconds=secs)
        if st == 0:
            break
    r["replaced"] = [l.split()[1] for l in out.splitlines() if l.startswith("replaced ")]
    # The analysis's errors the build lifted, with the binary's proof.
    r["proven"] = [l.split(": ", 1)[1] for l in out.splitlines()
                   if l.startswith("info ") and "the signature change is safe live" in l]
    if st == CLI_NOTHING:
        return dict(r, category="not_buildable", reason=NOT_BUILT,
                    detail=last_line(out, "opus build:"))
    if st == 3:
        return dict(r, category="refused", stage="build", rule=refusal_rule(r["findings"]),
                    detail=last_line(out, "opus build:"))
    if st and unsupported_rule(out):
        return dict(r, category="refused", stage="build", rule=unsupported_rule(out),
                    detail=last_line(out, "opus build:"))
    if st:
        return dict(r, category="not_buildable", reason="opus build failed",
                    detail=last_line(out, "opus build:"))
    patch_tree(tree, diff)
    with open(os.path.join(d, "fixes-in-tree"), "a") as f:
        f.write(diff + "\n")
    ctx["chain"].setdefault(binary, []).append(out_patch)
    return apply_live(ctx, r, binary, out_patch, diff)


def apply_live(ctx, r, binary, out_patch, diff):
    runner = ctx["runners"].get(binary)
    if runner is None:
        runner = Runner(binary, ctx["tree"], ctx["command"])
        ctx["runners"][binary] = runner
    if runner.proc is None:
        return dict(r, category="built", reason="no runner for this program")
    if not runner.alive() or not runner.maps_binary():
        return dict(r, category="built", reason="the runner does not map " + r["binary"])
    st, secs, out = run([OPUS, "apply", str(runner.proc.pid), out_patch], timeout=120)
    r["apply_seconds"] = secs
    if not runner.alive():
        return dict(r, category="harmed", reason="the process died during apply: " + last_line(out))
    if st:
        # The process runs without this fix: so must the tree the next ones
        # build on.
        patch_tree(ctx["tree"], diff, reverse=True)
        in_tree = os.path.join(ctx["dir"], "fixes-in-tree")
        kept = open(in_tree).read().split()[:-1]
        open(in_tree, "w").write("".join(k + "\n" for k in kept))
        ctx["chain"][binary].pop()
        return dict(r, category="refused", stage="apply", rule=apply_rule(out),
                    detail=last_line(out, "opus apply:"))
    return dict(r, category="applied_live")


def unsupported_rule(out):
    """A build that stops at what a live patch cannot do by design (a new
    thread-local variable: threads alive have no room for it) is a refusal,
    under its rule; "" for any other failure."""
    line = last_line(out, "opus build:")
    for key, rule in (("new thread-local variable", "new TLS variable"),
                      ("new common variable", "new common variable"),
                      ("new IFUNC", "new IFUNC"), ("TLS descriptors", "TLS descriptors")):
        if key in line and "not supported" in line:
            return rule
    return ""


def apply_rule(out):
    line = last_line(out, "opus apply:")
    for key, rule in (("inside", "function active"), ("build-id", "build-id"),
                      ("sha", "code differs"), ("timed out", "timeout")):
        if key in line:
            return rule
    return "apply error"


def revert_all(ctx, rec):
    """Reverts every patch from each runner, newest first; the process must
    still be alive and answer as before."""
    for binary, runner in ctx["runners"].items():
        if not runner.alive():
            continue
        n = sum(1 for f in rec["fixes"] if f.get("category") == "applied_live"
                and f.get("binary") == os.path.relpath(binary, ctx["tree"]))
        for _ in range(n):
            st, _, out = run([OPUS, "revert", str(runner.proc.pid)], timeout=120)
            if st:
                rec.setdefault("revert_errors", []).append(last_line(out))
                break
        rec.setdefault("runners_alive", []).append(
            {"binary": os.path.relpath(binary, ctx["tree"]), "alive": runner.alive(),
             "reverted": n})
        runner.stop()


# ---- the package -----------------------------------------------------------

def survey_package(pkg, command):
    """One package, unless another survey run holds it."""
    import fcntl
    d = os.path.join(WORK, pkg)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log(pkg, "another survey run has it")
            return None
        return survey_locked(pkg, command, d)


def survey_locked(pkg, command, d):
    res_path = result_path(pkg)
    if os.path.exists(res_path):
        rec = json.load(open(res_path))
        if rec.get("schema") == SCHEMA and rec.get("complete"):
            log(pkg, "kept from an earlier run")
            return rec
        earlier = rec if rec.get("schema") == SCHEMA else {}
    else:
        earlier = {}
    rec = {"schema": SCHEMA, "package": pkg, "complete": False, "fixes": [],
           "opus": opus_commit()}
    try:
        try:
            names, cve = prepare_and_build(pkg, d, rec, os.cpu_count())
        except Failure as e:
            # Parallel make races in some packages' docs (tiff's two
            # sphinx runs share one cache): once more, with one job.
            if e.stage != "build" or "over the limit" in e.reason or os.cpu_count() == 1:
                raise
            log(pkg, f"build failed ({e.reason}): once more with one job")
            names, cve = prepare_and_build(pkg, d, rec, 1)
        tree = os.path.join(d, "tree")
        rec["dropped"] = json.load(open(os.path.join(d, "dropped.json")))
        rec["build_seconds"] = float(open(os.path.join(d, "built")).read())
        # Each fix is patched into the tree as it is built: start again from
        # the built state.
        reset_tree(tree, d)
        ctx = {"tree": tree, "dir": d, "index": elf_index(d, tree), "chain": {},
               "runners": {}, "command": command}
        try:
            if earlier.get("version") == rec["version"]:
                rec["fixes"] = resume(ctx, earlier.get("fixes", []))
            done = {f["patch"] for f in rec["fixes"]}
            for name in cve:
                if name in done:
                    continue
                log(pkg, f"{name}")
                f = survey_fix(ctx, name)
                log(pkg, f"{name}: {f['category']} {f.get('rule') or f.get('reason') or ''}")
                rec["fixes"].append(f)
                json.dump(rec, open(res_path, "w"), indent=1)  # a checkpoint
        finally:
            revert_all(ctx, rec)
        rec["complete"] = True
    except Failure as e:
        rec.update(failed_stage=e.stage, reason=e.reason, complete=e.stage != "fetch")
        log(pkg, f"{e.stage}: {e.reason}")
    json.dump(rec, open(res_path, "w"), indent=1)
    return rec


def resume(ctx, fixes):
    """Puts back what the fixes an interrupted run recorded did: each built
    one patched into the tree and on its binary's chain, each applied one
    applied again to a new process. Returns the fixes kept: all, or none
    when one cannot be put back."""
    for f in fixes:
        if f.get("in_tree"):
            keep_in_tree(ctx, os.path.join(ctx["tree"], "debian", "patches", f["patch"]))
        if f["category"] not in ("applied_live", "built"):
            continue
        binary = os.path.join(ctx["tree"], f["binary"])
        diff = os.path.join(ctx["tree"], "debian", "patches", f["patch"])
        out_patch = os.path.join(ctx["dir"], tag_of(f["patch"]) + ".opatch")
        patch_tree(ctx["tree"], diff)
        with open(os.path.join(ctx["dir"], "fixes-in-tree"), "a") as fh:
            fh.write(diff + "\n")
        ctx["chain"].setdefault(binary, []).append(out_patch)
        if f["category"] != "applied_live":
            continue
        runner = ctx["runners"].get(binary) or Runner(binary, ctx["tree"], ctx["command"])
        ctx["runners"][binary] = runner
        st = run([OPUS, "apply", str(runner.proc.pid), out_patch], timeout=120)[0] \
            if runner.alive() else -1
        if st:
            log(os.path.basename(ctx["dir"]), f"cannot put back {f['patch']}: starting over")
            for r in ctx["runners"].values():
                r.stop()
            ctx["runners"].clear()
            ctx["chain"].clear()
            reset_tree(ctx["tree"], ctx["dir"])
            return []
    if fixes:
        log(os.path.basename(ctx["dir"]), f"{len(fixes)} fixes kept from an interrupted run")
    return list(fixes)


def tag_of(name):
    """A patch's name as a file name of the survey's."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def reset_tree(tree, d):
    """Undoes fixes an interrupted run patched into the tree."""
    applied = os.path.join(d, "fixes-in-tree")
    if os.path.exists(applied):
        for diff in reversed(open(applied).read().split()):
            patch_tree(tree, diff, reverse=True)
        os.remove(applied)


def packages():
    """packages.txt: PACKAGE [PROGRAM ARGS...] per line, # comments; a
    package may have several lines, one per program. Returns [(package,
    [(program, args)])] in file order."""
    out = {}
    for line in open(os.path.join(ROOT, "survey", "packages.txt")):
        line = line.split("#", 1)[0].split()
        if line:
            out.setdefault(line[0], [])
            if len(line) > 1:
                out[line[0]].append((line[1], line[2:]))
    return list(out.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("only", nargs="*", help="packages to run (default: packages.txt)")
    ap.add_argument("--fetch-only", action="store_true",
                    help="fetch each package and print its CVE patches")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    todo = [(p, c) for p, c in packages() if not args.only or p in args.only]
    for pkg, command in todo:
        if args.fetch_only:
            d = os.path.join(WORK, pkg)
            os.makedirs(d, exist_ok=True)
            try:
                v = fetch(pkg, d)
                tree = os.path.join(d, "tree")
                cve = [n for n in series(d) if cves_of(tree, n)]
                print(f"{pkg} {v} {len(cve)}", flush=True)
            except Failure as e:
                print(f"{pkg} - fetch failed: {e.reason}", flush=True)
            continue
        survey_package(pkg, command)
    if not args.fetch_only:
        json.dump(load_results(), open(os.path.join(WORK, "results.json"), "w"), indent=1)
    return 0


def result_path(pkg):
    os.makedirs(RESULTS, exist_ok=True)
    return os.path.join(RESULTS, pkg + ".json")


def opus_commit():
    """The commit of the tree opus was built from, and whether it had
    changes: a result says which opus made it. run.sh names the commit of
    the copy it runs (SURVEY_OPUS_COMMIT); else the tree's, as it is now."""
    if os.environ.get("SURVEY_OPUS_COMMIT"):
        return os.environ["SURVEY_OPUS_COMMIT"]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    return head + ("+changes" if dirty else "")


def load_results():
    """Each package's kept result, in packages.txt order."""
    out = []
    for pkg, _ in packages():
        p = result_path(pkg)
        if os.path.exists(p):
            out.append(json.load(open(p)))
    return out


if __name__ == "__main__":
    sys.exit(main())
