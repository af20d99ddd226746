#!/usr/bin/env python3
"""A TCP proxy that a test can take down and bring back, to play an S3 server that goes away.

    outage-proxy.py TARGET_HOST TARGET_PORT PORT_FILE

Listens on a free loopback port and writes it to PORT_FILE (atomically, by rename). SIGUSR1: down (the
listening socket and every open connection are closed, so clients see connection refused);
SIGUSR2: up again on the same port. SIGTERM ends it.
"""
import os
import signal
import socket
import sys
import threading
import time

target = (sys.argv[1], int(sys.argv[2]))
lock = threading.Lock()
connections = set()
state = {"listener": None, "port": 0}


def listen(port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return  # closed: down
        try:
            upstream = socket.create_connection(target)
        except OSError:
            client.close()
            continue
        with lock:
            connections.update((client, upstream))
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def down(*_):
    with lock:
        listener, state["listener"] = state["listener"], None
        if listener is not None:
            listener.close()
        for s in connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        connections.clear()


def up(*_):
    with lock:
        if state["listener"] is None:
            state["listener"] = listen(state["port"])
            threading.Thread(target=serve, args=(state["listener"],), daemon=True).start()


# A test runner's threads may block signals, and a child inherits the mask: unblock ours.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM})
state["listener"] = listen(0)
state["port"] = state["listener"].getsockname()[1]
threading.Thread(target=serve, args=(state["listener"],), daemon=True).start()
parent = os.getppid()


def orphaned():
    """Ends the proxy when the test process is gone, however it ended (a killed runner)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


threading.Thread(target=orphaned, daemon=True).start()
signal.signal(signal.SIGUSR1, down)
signal.signal(signal.SIGUSR2, up)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(state["port"]))
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
while True:
    signal.pause()
