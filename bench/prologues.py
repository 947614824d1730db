#!/usr/bin/env python3
"""How a function's entry could be changed while other threads run it
(issue 15; docs/reliability.md). A page swap replaces whole instructions
atomically, so a thread can never run half of one; but a thread may sit
between two instructions of the entry. So only the first instruction may
change, into a jump of the same length or shorter:

  jmp rel32 (5 bytes)     where the first instruction has 5 bytes or more;
  jmp rel8 (2 bytes)      where it has 2 to 4 and at least 5 bytes of
                          padding lie just before the function, for a
                          landing jmp rel32 that no other code runs;
  push, then the above    where the first instruction is a 1-byte push and
                          the second one qualifies (the new path pops it).

Usage: prologues.py [--dynamic] ELF...   (--dynamic: exported symbols only,
for stripped libraries). Prints one line per class for each file."""
import bisect
import collections
import re
import subprocess
import sys


def functions(path, dynamic):
    out = subprocess.run(["nm", "-S", "--defined-only"] + (["-D"] if dynamic else []) + [path],
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "Tt" and int(f[1], 16) > 0:
            found[int(f[0], 16)] = int(f[1], 16)
    return found


def instructions(path):
    """address -> (length, text, next address)"""
    out = subprocess.run(["objdump", "-d", "-j", ".text", "--insn-width=16", path],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)", line)
        if m:
            rows.append((int(m.group(1), 16), len(m.group(2).split()), m.group(3)))
    return {a: (n, text) for a, n, text in rows}


def all_padding(insns, start, end):
    """Are [start, end) only the assembler's fill (nops, int3), no code?"""
    a = start
    while a < end:
        if a not in insns or not re.search(r"\bnop|int3|xchg\s+%ax,%ax", insns[a][1]):
            return False
        a += insns[a][0]
    return a == end


def kind(n, text, padding):
    """How one instruction at an entry could be diverted, or None."""
    if text.split()[:1] and text.split()[0].startswith(("j", "call", "ret")):
        return None  # a branch: the jump would have to be followed
    tail = " (rip-relative: moved with its offset fixed)" if "(%rip)" in text else ""
    if n >= 5:
        return "jmp rel32 over the first instruction" + tail
    if n >= 2 and padding >= 5:
        return "jmp rel8 to a landing in the padding" + tail
    return None


def survey(path, dynamic):
    funcs = functions(path, dynamic)
    insns = instructions(path)
    ends = sorted(a + size for a, size in funcs.items())
    classes = collections.Counter()
    for a in sorted(funcs):
        if a not in insns:
            continue
        i = bisect.bisect_right(ends, a) - 1
        padding = a - ends[i] if i >= 0 and all_padding(insns, ends[i], a) else 0
        n, text = insns[a]
        k = kind(n, text, padding)
        if not k and n == 1 and text.startswith("push") and a + 1 in insns:
            second = kind(*insns[a + 1], padding)
            k = second and "push, then " + second
        classes[k or "none: global stop"] += 1
    total = sum(classes.values())
    print(f"{path}: {total} functions")
    for k, v in sorted(classes.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * v / total:5.1f}%  {v:6d}  {k}")


def main():
    args = sys.argv[1:]
    dynamic = "--dynamic" in args
    for path in (a for a in args if a != "--dynamic"):
        survey(path, dynamic)


if __name__ == "__main__":
    main()
