"""The load of the self-replacement suites (mc.py, rc.py): 4 connections,
each storing a value under one of its own 500 keys and reading it back, until
the file STOP exists; then "requests failed" written to OUT. A request that
fails (an error, a wrong answer, a connection lost) counts as failed and the
connection is made again.

store_and_fetch(s, f, key, value) is the protocol's: True if the value came
back."""
import os
import socket
import threading


def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    return s, s.makefile("rb")


def loader(port, stop, store_and_fetch, counts, k):
    done = failed = 0
    try:
        s, f = connect(port)
    except OSError:
        counts[k] = (0, 1)
        return
    while not os.path.exists(stop):
        try:
            ok = store_and_fetch(s, f, b"load:%d:%d" % (k, done % 500), b"%d" % done)
        except (OSError, IOError, ValueError):
            ok = False
            try:
                s, f = connect(port)
            except OSError:
                pass
        done += 1
        failed += not ok
    counts[k] = (done, failed)


def load(port, stop, out, store_and_fetch):
    counts = [(0, 0)] * 4
    threads = [
        threading.Thread(target=loader, args=(port, stop, store_and_fetch, counts, k))
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as o:
        o.write("%d %d\n" % (sum(c[0] for c in counts), sum(c[1] for c in counts)))
