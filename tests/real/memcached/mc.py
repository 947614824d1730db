#!/usr/bin/env python3
"""A memcached client for tests/real/memcached: the warm cache and the load.

  mc.py warm PORT N        store N keys, each with a value made from its name
  mc.py check PORT N       print how many of the N keys still hold their value
  mc.py flush PORT         flush_all
  mc.py cmd PORT LINE      send one command line, print the first reply line
  mc.py load PORT STOP OUT get and set on 4 connections until the file STOP
                           exists; write "requests failed" to OUT
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from load import connect, load  # noqa: E402


def value_of(i):
    return hashlib.sha256(b"warm:%d" % i).hexdigest().encode() * (1 + i % 7)


def store(s, f, key, value):
    s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
    return f.readline() == b"STORED\r\n"


def fetch(s, f, key):
    s.sendall(b"get %s\r\n" % key)
    head = f.readline().split()
    if head == [b"END"]:
        return None
    if len(head) != 4 or head[0] != b"VALUE":
        raise IOError("bad reply %r" % head)
    data = f.read(int(head[3]) + 2)[:-2]
    if f.readline() != b"END\r\n":
        raise IOError("no END")
    return data


def warm(port, n):
    s, f = connect(port)
    stored = sum(store(s, f, b"warm:%d" % i, value_of(i)) for i in range(n))
    print(stored)


def check(port, n):
    s, f = connect(port)
    print(sum(fetch(s, f, b"warm:%d" % i) == value_of(i) for i in range(n)))


def cmd(port, line):
    s, f = connect(port)
    s.sendall(line.encode() + b"\r\n")
    print(f.readline().decode().strip())


def store_and_fetch(s, f, key, value):
    return store(s, f, key, value) and fetch(s, f, key) == value

def main():
    what, port = sys.argv[1], sys.argv[2]
    if what == "warm":
        warm(port, int(sys.argv[3]))
    elif what == "check":
        check(port, int(sys.argv[3]))
    elif what == "flush":
        cmd(port, "flush_all")
    elif what == "cmd":
        cmd(port, sys.argv[3])
    elif what == "load":
        load(port, sys.argv[3], sys.argv[4], store_and_fetch)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
