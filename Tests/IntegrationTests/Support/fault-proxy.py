#!/usr/bin/env python3
"""An HTTP proxy in front of the S3 server that injects faults, for the S3 fault suite (issue #16).

    fault-proxy.py TARGET_HOST TARGET_PORT CONTROL_DIR [--rate 0.2] [--seed 1] [--stall 4]
                   [--max-consecutive 3] [--max-requests 200000] [--max-seconds 3600]

Listens on a free loopback port and writes it to CONTROL_DIR/port. Every request is forwarded as
it came (method, raw target, headers, body: a SigV4 signature stays valid), except that a fraction
`rate` of the requests of every kind (GetObject, HeadObject, PutObject, ListObjectsV2, DeleteObject,
CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
ListMultipartUploads) get one fault. A file CONTROL_DIR/rate, when present, overrides the rate.

Faults, and whether the S3 server saw the request:
  lost (never forwarded):   "500 InternalError", "503 SlowDown", "429 TooManyRequests" (S3 XML
                            error bodies), "reset before body" (RST after the request's headers),
                            "reset mid request body" (RST after half the request body),
                            "200 with <Error>" (CompleteMultipartUpload only: S3's own way to fail
                            a completion after answering 200)
  executed (forwarded):     "reset after forward" (RST instead of the answer: a retry repeats a
                            request that already took effect), "reset mid response body" (the
                            headers and half the body, then RST), "truncated response" (the
                            headers with the full Content-Length, half the body, then a clean
                            close), "stall" (half the body of a GET, else nothing, then silence
                            for --stall seconds: past the client's low-speed timeout, then close)
A fault that does not apply (a HEAD has no body to cut) becomes "reset after forward".

Seeded: whether the n-th request with a given method and target gets a fault, and which, is a hash
of (seed, method, target, n), so the same requests get the same faults whatever the threads do.
Never more than --max-consecutive faults in a row for one method and target: a retrying client
(pgbackd retries 5 times) then always gets through, so a failed job is a bug, not bad luck.

CONTROL_DIR/requests.log has a line per request (time, method, target, fault, forwarded or lost).
CONTROL_DIR/stats.json (rewritten after every request) counts requests by kind, faults by fault
and by kind and fault, and the stalls the client gave up on before --stall ran out. Bounded: it exits after --max-requests requests or --max-seconds seconds,
and with its parent process. Loopback only.
"""
import argparse
import hashlib
import http.client
import json
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("target_host")
parser.add_argument("target_port", type=int)
parser.add_argument("control")
parser.add_argument("--rate", type=float, default=0.2)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--stall", type=float, default=4.0)
parser.add_argument("--max-consecutive", type=int, default=3)
parser.add_argument("--max-requests", type=int, default=200000)
parser.add_argument("--max-seconds", type=float, default=3600)
args = parser.parse_args()
if args.target_host not in ("127.0.0.1", "localhost", "::1"):
    sys.exit("fault-proxy.py forwards to loopback only, not %s" % args.target_host)

LOST = ["500 InternalError", "503 SlowDown", "429 TooManyRequests", "reset before body", "reset mid request body"]
EXECUTED = ["reset after forward", "reset mid response body", "truncated response", "stall"]
ERRORS = {
    "500 InternalError": (500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    "503 SlowDown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "429 TooManyRequests": (429, "Too Many Requests", "TooManyRequests", "Please reduce your request rate."),
}

lock = threading.Lock()
seen = {}         # (method, target) -> requests so far
consecutive = {}  # (method, target) -> faults in a row
stats = {"requests": {}, "faults": {}, "by_kind": {}, "forwarded": 0, "total": 0}
started = time.monotonic()


def kind_of(method, target):
    path, _, query = target.partition("?")
    names = {part.split("=", 1)[0] for part in query.split("&") if part}
    has_key = path.strip("/").count("/") >= 1  # /bucket/key...
    if method == "GET":
        if "uploads" in names:
            return "ListMultipartUploads"
        return "GetObject" if has_key else "ListObjectsV2"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "PUT":
        return "UploadPart" if "uploadId" in names else "PutObject"
    if method == "POST":
        if "uploads" in names:
            return "CreateMultipartUpload"
        if "uploadId" in names:
            return "CompleteMultipartUpload"
        return "DeleteObjects" if "delete" in names else "POST"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in names else "DeleteObject"
    return method


def current_rate():
    try:
        with open(os.path.join(args.control, "rate")) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return args.rate


def decide(method, target, kind):
    """The fault for this request, or None."""
    identity = (method, target)
    with lock:
        n = seen.get(identity, 0)
        seen[identity] = n + 1
        digest = hashlib.sha256(("%d|%s|%s|%d" % (args.seed, method, target, n)).encode()).digest()
        draw, pick = struct.unpack(">II", digest[:8])
        fault = None
        if draw / 2**32 < current_rate() and consecutive.get(identity, 0) < args.max_consecutive:
            if kind == "CompleteMultipartUpload" and pick % 2 == 0:
                fault = "200 with <Error>"
            else:
                choices = LOST + EXECUTED
                fault = choices[(pick >> 1) % len(choices)]
        consecutive[identity] = consecutive.get(identity, 0) + 1 if fault else 0
        return fault


def write_stats():
    """Under `lock`."""
    path = os.path.join(args.control, "stats.json")
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(stats, sort_keys=True))
    os.replace(path + ".tmp", path)


def record(kind, fault, forwarded, method="", target=""):
    with lock:
        with open(os.path.join(args.control, "requests.log"), "a") as log:
            log.write("%.3f %s %s %s %s\n" % (time.monotonic() - started, method, target, fault or "-", "forwarded" if forwarded else "lost"))
        stats["total"] += 1
        stats["requests"][kind] = stats["requests"].get(kind, 0) + 1
        if forwarded:
            stats["forwarded"] += 1
        if fault:
            stats["faults"][fault] = stats["faults"].get(fault, 0) + 1
            per = stats["by_kind"].setdefault(kind, {})
            per[fault] = per.get(fault, 0) + 1
        write_stats()
        total = stats["total"]
    if total >= args.max_requests:
        os._exit(0)


def error_xml(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message>"
            "<RequestId>fault-proxy</RequestId></Error>" % (code, message)).encode()


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.settimeout(120)
        self.buffer = b""

    def read_until(self, marker, limit=1 << 20):
        while marker not in self.buffer:
            chunk = self.request.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > limit:
                return None
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_exactly(self, count):
        while len(self.buffer) < count:
            chunk = self.request.recv(min(1 << 20, count - len(self.buffer)))
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def reset(self):
        """Closes with RST: the client sees ECONNRESET."""
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.request.close()
        self.closed = True

    def send_response(self, status, reason, headers, body, declared=None, head=False):
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        lines += ["%s: %s" % (name, value) for name, value in headers]
        if not head:
            lines.append("Content-Length: %d" % (len(body) if declared is None else declared))
        self.request.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))

    def handle(self):
        self.closed = False
        while not self.closed:
            if time.monotonic() - started > args.max_seconds:
                os._exit(0)
            try:
                if not self.one_request():
                    return
            except (OSError, http.client.HTTPException):
                return

    def one_request(self):
        head = self.read_until(b"\r\n\r\n")
        if head is None:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {name.lower(): value for name, value in headers}
        length = int(lower.get("content-length", "0") or 0)
        kind = kind_of(method, target)
        fault = decide(method, target, kind)

        if fault == "reset before body" or (fault == "reset mid request body" and length < 2):
            record(kind, "reset before body", False, method, target)
            self.reset()
            return False
        if fault == "reset mid request body":
            self.read_exactly(length // 2)
            record(kind, fault, False, method, target)
            self.reset()
            return False
        body = self.read_exactly(length) if length else b""
        if body is None:
            return False
        if fault in ERRORS:
            status, reason, code, message = ERRORS[fault]
            record(kind, fault, False, method, target)
            self.send_response(status, reason, [("Content-Type", "application/xml")], error_xml(code, message), head=method == "HEAD")
            return True
        if fault == "200 with <Error>":
            record(kind, fault, False, method, target)
            # Real S3 sends the 200 at once and the error when the completion fails.
            self.send_response(200, "OK", [("Content-Type", "application/xml")],
                               error_xml("InternalError", "We encountered an internal error. Please try again."))
            return True

        upstream = http.client.HTTPConnection(args.target_host, args.target_port, timeout=300)
        upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in ("expect", "connection", "content-length", "transfer-encoding"):
                upstream.putheader(name, value)
        if method in ("PUT", "POST") or length:
            upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body if body else None)
        response = upstream.getresponse()
        data = response.read()
        out_headers = [(n, v) for n, v in response.getheaders()
                       if n.lower() not in ("transfer-encoding", "connection", "content-length")]
        if method == "HEAD":
            out_headers.append(("Content-Length", response.getheader("Content-Length", "0")))
        upstream.close()

        if fault in ("reset mid response body", "truncated response") and (method == "HEAD" or (fault == "reset mid response body" and not data)):
            fault = "reset after forward"
        record(kind, fault, True, method, target)
        if fault == "reset after forward":
            self.reset()
            return False
        if fault == "reset mid response body":
            self.send_response(response.status, response.reason, out_headers, data[: len(data) // 2], declared=len(data))
            self.reset()
            return False
        if fault == "truncated response":
            self.send_response(response.status, response.reason, out_headers, data[: len(data) // 2], declared=max(len(data), 64))
            self.request.shutdown(socket.SHUT_RDWR)
            self.request.close()
            self.closed = True
            return False
        if fault == "stall":
            if method == "GET" and len(data) > 1:
                self.send_response(response.status, response.reason, out_headers, data[: len(data) // 2], declared=len(data))
            # The client should give up first (its low-speed timeout): count whether it did.
            deadline = time.monotonic() + args.stall
            gave_up = False
            while time.monotonic() < deadline and not gave_up:
                readable, _, _ = select.select([self.request], [], [], 0.1)
                if readable:
                    try:
                        gave_up = self.request.recv(65536) == b""
                    except OSError:
                        gave_up = True
            with lock:
                stats["stalls abandoned by the client"] = stats.get("stalls abandoned by the client", 0) + (1 if gave_up else 0)
                write_stats()
            self.reset()
            return False
        self.send_response(response.status, response.reason, out_headers, data, head=method == "HEAD")
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Handler)
parent = os.getppid()


def watchdog():
    """Ends the proxy with its parent (however that ended) and after --max-seconds."""
    while os.getppid() == parent and time.monotonic() - started < args.max_seconds:
        time.sleep(1)
    os._exit(0)


threading.Thread(target=watchdog, daemon=True).start()
os.makedirs(args.control, exist_ok=True)
with open(os.path.join(args.control, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(args.control, "port.tmp"), os.path.join(args.control, "port"))
server.serve_forever()
