"""A TLS front for the S3 test server: terminates TLS on 127.0.0.1 with the given certificate
and pipes each connection's bytes to the plain upstream, unchanged (so SigV4 is checked over the
request as pgbackd sent it). Bounded: at most MAX_CONNECTIONS connections and SECONDS seconds,
then it exits by itself.

    python3 tls-front.py CERT KEY UPSTREAM_PORT SECONDS MAX_CONNECTIONS

Prints the port it listens on, then one line per connection ("tls ok" or "tls failed: why").
"""
import socket
import ssl
import sys
import threading
import time

cert, key, upstream_port, seconds, max_connections = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
deadline = time.monotonic() + seconds

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
listener.settimeout(0.5)
print(listener.getsockname()[1], flush=True)


def pipe(source, target):
    try:
        while time.monotonic() < deadline:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    client.settimeout(max(1.0, deadline - time.monotonic()))
    try:
        tls = context.wrap_socket(client, server_side=True)
    except (ssl.SSLError, OSError) as error:
        print(f"tls failed: {error}", flush=True)
        client.close()
        return
    print("tls ok", flush=True)
    upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=max(1.0, deadline - time.monotonic()))
    threads = [threading.Thread(target=pipe, args=(tls, upstream), daemon=True),
               threading.Thread(target=pipe, args=(upstream, tls), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    tls.close()
    upstream.close()


connections = 0
while time.monotonic() < deadline and connections < max_connections:
    try:
        client, _ = listener.accept()
    except socket.timeout:
        continue
    connections += 1
    threading.Thread(target=serve, args=(client,), daemon=True).start()
listener.close()
