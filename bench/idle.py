#!/usr/bin/env python3
"""Holds N kept-alive connections to a server: each sends GET /healthz, reads
the answer, then stays open and idle until this process gets SIGTERM/SIGINT.
Prints 'ready N' when all are in. Usage: idle.py PORT N"""
import selectors, signal, socket, sys, time

port, count = int(sys.argv[1]), int(sys.argv[2])
request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
sockets, answered = [], 0
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request)
    sockets.append(s)
    if len(sockets) % 500 == 0:  # read the answers in batches
        for t in sockets[-500:]:
            data = t.recv(4096)
            answered += data.startswith(b"HTTP/1.1 200")
rest = len(sockets) % 500
for t in sockets[len(sockets) - rest:] if rest else []:
    answered += t.recv(4096).startswith(b"HTTP/1.1 200")
print(f"ready {len(sockets)} answered {answered}", flush=True)
stop = False
def handler(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handler)
signal.signal(signal.SIGINT, handler)
while not stop:
    time.sleep(0.2)
# Still open? Every socket should be, since the server's idle timeout is longer than the run.
sel = selectors.DefaultSelector()
closed = 0
for t in sockets:
    t.setblocking(False)
    try:
        if t.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
print(f"closed by the server meanwhile: {closed}", flush=True)
