"""A steady memcached load for the installed-binary suite: one connection
per thread, set then get of its own key, for SECONDS. Prints JSON: requests
done, requests failed (a wrong or missing answer, a broken connection)."""
import json
import socket
import sys
import threading
import time

port, seconds, threads = int(sys.argv[1]), float(sys.argv[2]), 2
done = [0] * threads
failed = [0] * threads


def client(n):
    end = time.time() + seconds
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    key = b"k%d" % n
    i = 0
    while time.time() < end:
        value = b"v%d" % i
        try:
            s.sendall(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (key, len(value), value, key))
            ok = f.readline() == b"STORED\r\n"
            ok = f.readline().startswith(b"VALUE ") and ok
            ok = f.readline() == value + b"\r\n" and ok
            ok = f.readline() == b"END\r\n" and ok
        except OSError:
            ok = False
            s = socket.create_connection(("127.0.0.1", port))
            f = s.makefile("rb")
        done[n] += 1
        failed[n] += 0 if ok else 1
        i += 1


ts = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"done": sum(done), "failed": sum(failed)}))
