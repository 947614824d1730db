#!/usr/bin/env python3
"""Writes docs/survey.md and docs/survey-results.json from the survey's raw
results (build/survey/results.json) and the hand reviews of refusals
(survey/reviews.txt)."""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("SURVEY_WORK", os.path.join(ROOT, "build", "survey"))


def reviews():
    """survey/reviews.txt: PACKAGE PATCH correct|wrong WHY..., # comments."""
    out = {}
    path = os.path.join(ROOT, "survey", "reviews.txt")
    if os.path.exists(path):
        for line in open(path):
            if line.strip() and not line.startswith("#"):
                pkg, patch, verdict, *why = line.split()
                out[(pkg, patch)] = (verdict, " ".join(why))
    return out


def reason_of(f):
    """The category a fix's outcome counts under."""
    if f["category"] == "refused":
        return f"refused: {f.get('rule') or f.get('stage')}"
    if f["category"] in ("not_buildable", "built", "harmed"):
        return f"{f['category'].replace('_', ' ')}: {f['reason']}"
    return "applied live"


def outcome(f, rev):
    c = f["category"]
    if c == "refused":
        v = rev.get((f["package"], f["patch"]))
        return "refused_" + (v[0] if v else "unreviewed")
    return c


def main():
    sys.path.insert(0, os.path.join(ROOT, "survey"))
    from survey import load_results
    results = load_results()
    json.dump(results, open(os.path.join(WORK, "results.json"), "w"), indent=1)
    rev = reviews()
    fixes, packages = [], []
    for r in results:
        if r.get("failed_stage"):
            packages.append(r)
            continue
        packages.append(r)
        for f in r["fixes"]:
            fixes.append(dict(f, package=r["package"]))
    counts = {}
    reasons = {}
    for f in fixes:
        o = outcome(f, rev)
        counts[o] = counts.get(o, 0) + 1
        k = reason_of(f)
        reasons[k] = reasons.get(k, 0) + 1
    built = [f for f in fixes if f.get("build_seconds") and f["category"] in ("applied_live", "built")]
    ratios = [f["build_seconds"] / f["compile_seconds"] for f in built if f.get("compile_seconds")]
    summary = {
        "packages": sum(1 for r in packages if not r.get("failed_stage")),
        "packages_not_built": sorted(r["package"] for r in packages if r.get("failed_stage")),
        "fixes": len(fixes),
        "applied_live": counts.get("applied_live", 0),
        "built_not_run": counts.get("built", 0),
        "refused_correct": counts.get("refused_correct", 0),
        "refused_wrong": counts.get("refused_wrong", 0),
        "refused_unreviewed": counts.get("refused_unreviewed", 0),
        "not_buildable": counts.get("not_buildable", 0),
        "harmed": counts.get("harmed", 0),
        "runners": sum(len(r.get("runners_alive", [])) for r in packages),
        "runners_alive_after_revert": sum(1 for r in packages for a in r.get("runners_alive", [])
                                          if a["alive"]),
        "revert_errors": sum(len(r.get("revert_errors", [])) for r in packages),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "build_seconds_median": round(statistics.median([f["build_seconds"] for f in built]), 2)
        if built else None,
        "build_over_compile_median": round(statistics.median(ratios), 1) if ratios else None,
    }
    json.dump(summary, open(os.path.join(ROOT, "docs", "survey-results.json"), "w"), indent=1)
    write_md(summary, packages, fixes, rev)


def pct(n, d):
    return f"{100.0 * n / d:.1f}%" if d else "-"


def write_md(s, packages, fixes, rev):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    n = s["fixes"]
    out = []
    w = out.append
    w("# The survey: Debian 12's own CVE fixes, built and applied live\n")
    w("Written by `make survey` (survey/survey.py, then survey/render.py); do not edit by hand.")
    w(f"Rendered at {commit}; each package's row names the opus commit its result was made with.")
    w("Raw data: survey/results/PKG.json; summary: docs/survey-results.json.\n")
    w("## How it is run\n")
    w("The packages are those of survey/packages.txt, chosen by one rule: Debian 12 source")
    w("packages written in C, widely deployed servers and libraries, whose current")
    w("debian/patches carry CVE fixes (a patch whose file name or DEP-3 header names a CVE),")
    w("and which build here in under 20 minutes (each build is given 40: bear and a second")
    w("build on the other core slow it). redis, memcached and dnsmasq are kept out to")
    w("check the survey's predictions later.\n")
    w("For each package: the newest source version the archive serves; the pre-fix tree is its")
    w("quilt series without the CVE patches (a patch that no longer applies without them is")
    w("dropped too, and named); it is built by `dpkg-buildpackage -B` under bear, unstripped,")
    w("`nocheck`, with Debian's flags. Then every CVE patch, in series order: `opus analyze`,")
    w("`opus build` against the ELF file that compiles the changed files, and, when built,")
    w("`opus apply` to a running process that maps that file: survey/hold (which dlopens the")
    w("library and waits) for a library, the package's own program for a program that")
    w("packages.txt knows how to start. Fixes stack: each is built on the tree with the earlier")
    w("built fixes (`--after`) and applied on top of them, as an admin would apply a series.")
    w("At the end every patch is reverted and the process must still be alive. Where")
    w("debian/rules compiles copies of the tree, one per flavour (curl's openssl, gnutls and")
    w("nss builds), or of one of its subdirectories (expat's expat/ to src/ and srcw/),")
    w("opus is given the first copy as the source, with the tree's compile database, and the")
    w("fix is patched into that copy: the flavour an admin would patch.\n")
    w("A fix applied live here has passed every check opus makes (analysis, binding to the")
    w("binary, no thread inside a replaced function) and was redirected in a live process that")
    w("stayed alive through apply and revert. Its new code was not exercised by the fix's")
    w("reproducer; that is what the nginx and expat suites do for their fixes.\n")
    from survey import packages as listed
    w("## Figures\n")
    w(f"Packages surveyed so far: {len(packages)} of the {len(listed())} listed; a rerun goes on "
      "with the others.\n")
    w("| outcome | fixes | share |")
    w("|---|---|---|")
    for key, label in (("applied_live", "applied live"),
                       ("built_not_run", "built; no running program to apply it to"),
                       ("refused_correct", "refused, rightly (reviewed)"),
                       ("refused_wrong", "refused, wrongly (reviewed)"),
                       ("refused_unreviewed", "refused, review pending"),
                       ("not_buildable", "not buildable"),
                       ("harmed", "target harmed")):
        w(f"| {label} | {s[key]} | {pct(s[key], n)} |")
    w(f"| **all** | **{n}** | {len([p for p in packages if not p.get('failed_stage')])} packages |\n")
    w(f"Processes patched: {s['runners']}; alive after every patch was reverted: "
      f"{s['runners_alive_after_revert']}; reverts that failed: {s['revert_errors']}.\n")
    if s["packages_not_built"]:
        w("Packages that did not get as far as their fixes: " + ", ".join(
            f"{p['package']} ({p['failed_stage']}: {p['reason'][:120]})"
            for p in packages if p.get("failed_stage")) + ".\n")
    w("### Reasons\n")
    w("| reason | fixes |")
    w("|---|---|")
    for k, v in s["reasons"].items():
        w(f"| {k} | {v} |")
    w("")
    if s["build_seconds_median"] is not None:
        w(f"Build time per built fix: median {s['build_seconds_median']} s; median ratio to one "
          f"compile of its changed files as the package compiles them: "
          f"{s['build_over_compile_median']}x (opus compiles each changed unit three times: as")
        w("built, and original and patched with a section per function; the analysis parses it")
        w("twice with libclang).\n")
    w("## Packages\n")
    w("| package | version | opus | CVE patches | dropped | build s | applied | built | refused | not buildable |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for p in packages:
        fs = p.get("fixes", [])
        c = lambda k: sum(1 for f in fs if f["category"] == k)
        w(f"| {p['package']} | {p.get('version', '-')} | {p.get('opus', '-')} | "
          f"{len(p.get('cve_patches', []))} | "
          f"{len(p.get('dropped', []))} | {p.get('build_seconds', '-')} | {c('applied_live')} | "
          f"{c('built')} | {c('refused')} | {c('not_buildable')} |")
    w("\n## Every fix\n")
    w("| package | patch | CVEs | outcome | why | functions | build s | compile s |")
    w("|---|---|---|---|---|---|---|---|")
    for f in fixes:
        o = outcome(f, rev).replace("_", " ")
        why = f.get("rule") or f.get("reason") or ""
        if not why and f.get("proven"):
            why = "an analysis error lifted by the binary: " + f["proven"][0]
        if f.get("detail"):
            why += ": " + f["detail"][:160]
        v = rev.get((f["package"], f["patch"]))
        if v:
            why += f" (review: {v[1]})"
        w(f"| {f['package']} | {f['patch']} | {' '.join(f.get('cves', []))} | {o} | "
          f"{why.replace('|', '/')} | {len(f.get('replaced', f.get('functions', [])))} | "
          f"{f.get('build_seconds', '')} | {f.get('compile_seconds') or ''} |")
    open(os.path.join(ROOT, "docs", "survey.md"), "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
