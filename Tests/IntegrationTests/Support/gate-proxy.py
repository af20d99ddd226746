#!/usr/bin/env python3
"""An HTTP proxy in front of the S3 server that holds one chosen request until the test opens it.

    gate-proxy.py TARGET_HOST TARGET_PORT CONTROL_DIR

Listens on a free loopback port and writes it to CONTROL_DIR/port. Every request is forwarded
as it came (method, raw target, headers, body: a SigV4 signature stays valid). While the file
CONTROL_DIR/arm exists, holding is armed; it holds lines `hold <regex>` and optionally
`after <regex>`, matched against "METHOD target". With `after`, a request matching it must
pass first; then the next request matching `hold` is held: CONTROL_DIR/held is created and the
request waits until `arm` is removed, then goes on. One request is held per arming. The proxy
ends with its parent process.
"""
import http.client
import http.server
import os
import re
import sys
import threading
import time

target_host, target_port, control = sys.argv[1], int(sys.argv[2]), sys.argv[3]
arm_file, held_file = os.path.join(control, "arm"), os.path.join(control, "held")
lock = threading.Lock()
state = {"armed_by": None, "after_seen": False, "done_for": None}


def should_hold(line):
    try:
        with open(arm_file) as f:
            rules = dict(l.split(" ", 1) for l in f.read().splitlines() if " " in l)
    except OSError:
        return False
    with lock:
        stamp = os.stat(arm_file).st_mtime_ns if os.path.exists(arm_file) else None
        if state["armed_by"] != stamp:
            state.update(armed_by=stamp, after_seen=False, done_for=None)
        if state["done_for"] == stamp:
            return False
        if "after" in rules and not state["after_seen"]:
            if re.search(rules["after"], line):
                state["after_seen"] = True
            return False
        if re.search(rules["hold"], line):
            state["done_for"] = stamp
            return True
    return False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if should_hold(f"{self.command} {self.path}"):
            open(held_file, "w").close()
            while os.path.exists(arm_file):
                time.sleep(0.05)
        upstream = http.client.HTTPConnection(target_host, target_port, timeout=120)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in ("expect", "connection"):
                upstream.putheader(name, value)
        upstream.endheaders(body)
        response = upstream.getresponse()
        data = response.read()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() in ("transfer-encoding", "connection", "content-length", "date", "server"):
                continue
            self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    def forward_quietly(self):
        try:
            self.forward()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client was killed mid-request: that is the test

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward_quietly


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
parent = os.getppid()


def orphaned():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


threading.Thread(target=orphaned, daemon=True).start()
with open(os.path.join(control, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(control, "port.tmp"), os.path.join(control, "port"))
server.serve_forever()
