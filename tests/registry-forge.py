#!/usr/bin/env python3
"""Writes an opus registry record into a test target's own memfd (made by
tests/targets/memfdring), through /proc/PID/mem: a forgery, for the tests.

  registry-forge.py PID MEMFD-NAME BINARY FUNCTION consistent|wrong-region

consistent: a record that describes the mapping exactly (region, nonce, the
digest of its third page as "code", a site at FUNCTION's entry whose jump
leads into that code) but whose jump was never written; wrong-region: the
same with a region that is not the mapping's."""
import hashlib
import subprocess
import sys

pid, name, binary, func, kind = sys.argv[1:6]
maps = open(f"/proc/{pid}/maps").read().splitlines()
ring = [l for l in maps if l.endswith(name) or l.endswith(name + " (deleted)")]
base, end = (int(x, 16) for x in ring[0].split()[0].split("-"))
exe = next(l for l in maps if l.split()[-1] == binary and l.split()[2] == "00000000")
bias = int(exe.split()[0].split("-")[0], 16)
nm = subprocess.run(["nm", "-S", binary], capture_output=True, text=True).stdout
value, size = next((int(f[0], 16), int(f[1], 16)) for f in (l.split() for l in nm.splitlines())
                   if len(f) == 4 and f[3] == func)
addr = bias + value
with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
    mem.seek(base + 2 * 4096)
    text = mem.read(4096)
    mem.seek(addr)
    saved = mem.read(5)
    text_lo, text_hi = base + 2 * 4096, base + 3 * 4096
    jump = b"\xe9" + ((text_lo - (addr + 5)) & 0xFFFFFFFF).to_bytes(4, "little")
    region = (base, end - base) if kind == "consistent" else (base + 4096, end - base)
    nonce = name.rsplit(":", 1)[1]
    record = (
        "opus-registry 2\n"
        f"id=fix\nnonce={nonce}\nseq=1\nbuild-id=00\ntarget=authsrv\ndescription=forged\n"
        f"text-sha256={hashlib.sha256(text).hexdigest()}\n"
        f"region=0x{region[0]:x} 0x{region[1]:x}\ntext=0x{text_lo:x} 0x{text_hi:x}\n"
        f"func {func} 0x{addr:x} {size} 0x{text_lo:x} 16 replace\n"
        f"site 0x{addr:x} {saved.hex()} {jump.hex()}\n"
    ).encode() + b"\0"
    mem.seek(base)
    mem.write(record)
