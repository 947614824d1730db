#!/usr/bin/env python3
"""A redis client for tests/real/redis: the warm cache and the load.

  rc.py warm PORT N        store N keys, each with a value made from its name
  rc.py check PORT N       print how many of the N keys still hold their value
  rc.py load PORT STOP OUT SET and GET on 4 connections until the file STOP
                           exists; write "requests failed" to OUT
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from load import connect, load  # noqa: E402


def command(s, f, *args):
    """One command in RESP, its reply: bytes, int, None or an IOError."""
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return reply(f)


def reply(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        return [reply(f) for _ in range(int(rest))]
    raise IOError("bad reply %r" % line)


def value_of(i):
    return hashlib.sha256(b"warm:%d" % i).hexdigest().encode() * (1 + i % 7)


def warm(port, n):
    s, f = connect(port)
    print(sum(command(s, f, b"SET", b"warm:%d" % i, value_of(i)) == b"OK" for i in range(n)))


def check(port, n):
    s, f = connect(port)
    held = 0
    for lo in range(0, n, 500):
        keys = [b"warm:%d" % i for i in range(lo, min(n, lo + 500))]
        values = command(s, f, b"MGET", *keys)
        held += sum(v == value_of(lo + j) for j, v in enumerate(values))
    print(held)


def store_and_fetch(s, f, key, value):
    return command(s, f, b"SET", key, value) == b"OK" and command(s, f, b"GET", key) == value

def main():
    what, port = sys.argv[1], sys.argv[2]
    if what == "warm":
        warm(port, int(sys.argv[3]))
    elif what == "check":
        check(port, int(sys.argv[3]))
    elif what == "load":
        load(port, sys.argv[3], sys.argv[4], store_and_fetch)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
