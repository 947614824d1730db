"""A small XML service over the system's Python (Debian's python3, whose
pyexpat uses libexpat.so.1): one request per connection, one answer line.

  PARSE <xml>   "OK <elements>" or "ERROR <expat's message>"
  NEGLEN        what XML_ParseBuffer says to a negative length (the
                CVE-2024-45490 check), through the libexpat this process
                has loaded
  LIB           the libexpat file this process maps
  SPAWNS        "<spawned> <failed>": with XMLSERVER_SPAWN set, a thread
                runs /bin/true over and over through subprocess, which
                vforks (the thread then waits for a child that runs in
                this process's memory until it execs)
"""
import ctypes
import os
import socket
import subprocess
import sys
import threading
import xml.parsers.expat

expat = ctypes.CDLL("libexpat.so.1")  # the library pyexpat already loaded
expat.XML_ParserCreate.restype = ctypes.c_void_p
expat.XML_ParserCreate.argtypes = [ctypes.c_char_p]
expat.XML_GetBuffer.restype = ctypes.c_void_p
expat.XML_GetBuffer.argtypes = [ctypes.c_void_p, ctypes.c_int]
expat.XML_ParseBuffer.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
expat.XML_GetErrorCode.argtypes = [ctypes.c_void_p]
expat.XML_ErrorString.restype = ctypes.c_char_p
expat.XML_ParserFree.argtypes = [ctypes.c_void_p]


def parse(doc):
    count = [0]

    def start(name, attrs):
        count[0] += 1

    p = xml.parsers.expat.ParserCreate()
    p.StartElementHandler = start
    try:
        p.Parse(doc, True)
    except xml.parsers.expat.ExpatError as e:
        return "ERROR " + str(e)
    return "OK %d" % count[0]


def negative_length():
    p = expat.XML_ParserCreate(None)
    expat.XML_GetBuffer(p, 16)
    status = expat.XML_ParseBuffer(p, -1, 1)
    code = expat.XML_GetErrorCode(p)
    expat.XML_ParserFree(p)
    return "status %d: %s" % (status, expat.XML_ErrorString(code).decode())


def mapped_lib():
    with open("/proc/self/maps") as f:
        for line in f:
            if "libexpat.so" in line:
                return line.split(None, 5)[5].strip()
    return "none"


spawns = [0, 0]


def spawn_forever():
    while True:
        ok = subprocess.run(["/bin/true"]).returncode == 0
        spawns[0 if ok else 1] += 1


def answer(line):
    cmd, _, arg = line.partition(" ")
    if cmd == "PARSE":
        return parse(arg)
    if cmd == "NEGLEN":
        return negative_length()
    if cmd == "LIB":
        return mapped_lib()
    if cmd == "SPAWNS":
        return "%d %d" % (spawns[0], spawns[1])
    return "ERROR unknown request"


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    if os.environ.get("XMLSERVER_SPAWN"):
        threading.Thread(target=spawn_forever, daemon=True).start()
    print("ready %d" % srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            conn.sendall((answer(data.decode().strip()) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
