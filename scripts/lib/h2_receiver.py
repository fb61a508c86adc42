#!/usr/bin/env python3
"""A webhook receiver for HTTP/2 fan-out tests (issue #25): hypercorn serving HTTPS on 127.0.0.1.

Every POST to /hooks/<anything> is answered 200 after --latency-ms and counted by its X-Herald-Delivery header
(the SHA-256 of the body when the header is missing), so that a delivery that reached the receiver twice shows as a
duplicate. GET /stats answers {requests, distinct, duplicates, duplicate_ids (first 20), http_versions, connections,
max_requests_per_connection}; POST /reset clears the counts.

It generates a throw-away CA and a server certificate for 127.0.0.1/localhost (with the `openssl` command) into a
temporary directory and prints, once listening:

    listening on https://127.0.0.1:PORT cert=/tmp/.../ca.pem

Give that file to Herald as HERALD_CA_FILE (or to curl as --cacert).

By default hypercorn runs with its stock settings. Stock hypercorn (keep_alive_max_requests = 1000) ends an HTTP/2
connection after its 1000th request with a GOAWAY. It still passes the streams it has accepted to the application,
but it drops their responses (after close_connection() the h2 state machine refuses to send, and hypercorn swallows
the ProtocolError). It then closes the connection. Those requests were received but never answered, so a client
that retries them sends duplicates (docs/reliability.md). Pass --keep-alive-max-requests 0 to lift the cap.

Run it with the venv that has hypercorn (python3 -m venv .build-compat/h2venv && .build-compat/h2venv/bin/pip
install hypercorn):

    .build-compat/h2venv/bin/python scripts/lib/h2_receiver.py --alpn h2,http/1.1 --latency-ms 20
"""
import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

try:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
except ImportError:  # pragma: no cover
    sys.exit("hypercorn is not installed: python3 -m venv .build-compat/h2venv && "
             ".build-compat/h2venv/bin/pip install hypercorn")


def make_certificates(directory):
    """A CA and a server certificate signed by it (CN and SAN 127.0.0.1, localhost). Returns (ca, cert, key)."""
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr, cert = (os.path.join(directory, name) for name in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "7",
        "-subj", "/CN=h2_receiver test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", ca_key, "-out", ca)
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "7",
        "-extfile", ext, "-out", cert)
    return ca, cert, key


class Receiver:
    """The ASGI application: counts deliveries, answers after a fixed latency."""

    def __init__(self, latency):
        self.latency = latency
        self.reset()

    def reset(self):
        self.requests = 0
        self.counts = Counter()
        self.duplicate_ids = []
        self.versions = Counter()
        self.per_connection = Counter()
        self.first = self.last = None
        self.max_gap = 0.0

    def stats(self):
        return {
            "requests": self.requests,
            "distinct": len(self.counts),
            "duplicates": self.requests - len(self.counts),
            "duplicate_ids": self.duplicate_ids[:20],
            "http_versions": dict(self.versions),
            "connections": len(self.per_connection),
            "max_requests_per_connection": max(self.per_connection.values(), default=0),
            "first_arrival": self.first,
            "last_arrival": self.last,
            "max_gap_seconds": round(self.max_gap, 3),
        }

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        if method == "POST" and path.startswith("/hooks/"):
            key = None
            for name, value in scope["headers"]:
                if name == b"x-herald-delivery":
                    key = value.decode("latin-1")
                    break
            if key is None:
                key = "sha256:" + hashlib.sha256(body).hexdigest()
            self.requests += 1
            now = time.time()
            if self.last is not None:
                self.max_gap = max(self.max_gap, now - self.last)
            self.first = self.first or now
            self.last = now
            self.versions[scope.get("http_version", "?")] += 1
            if scope.get("client"):
                self.per_connection[tuple(scope["client"])] += 1
            self.counts[key] += 1
            if self.counts[key] == 2:
                self.duplicate_ids.append(key)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            await respond(send, 200, {"ok": True})
        elif method == "GET" and path == "/stats":
            await respond(send, 200, self.stats())
        elif method == "POST" and path == "/reset":
            self.reset()
            await respond(send, 200, {"ok": True})
        else:
            await respond(send, 404, {"error": "not found"})


async def respond(send, status, payload):
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpn", default="h2,http/1.1", help="ALPN protocols offered, e.g. h2,http/1.1 or http/1.1")
    parser.add_argument("--latency-ms", type=float, default=20, help="time before each /hooks/ answer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--cert-dir", help="where to write the certificates (default: a new temporary directory)")
    defaults = Config()
    parser.add_argument("--h2-max-concurrent-streams", type=int, default=defaults.h2_max_concurrent_streams)
    parser.add_argument("--keep-alive-max-requests", type=int, default=defaults.keep_alive_max_requests,
                        help="close a connection (GOAWAY over HTTP/2) after this many requests; 0: never; default: "
                             f"hypercorn's own ({defaults.keep_alive_max_requests})")
    parser.add_argument("--keep-alive-timeout", type=float, default=defaults.keep_alive_timeout)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()

    directory = args.cert_dir or tempfile.mkdtemp(prefix="h2_receiver.")
    os.makedirs(directory, exist_ok=True)
    ca, cert, key = make_certificates(directory)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((args.host, args.port))
    listener.listen(args.backlog)
    port = listener.getsockname()[1]

    config = Config()
    config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns the listening socket from here on
    config.certfile, config.keyfile = cert, key
    config.alpn_protocols = [p.strip() for p in args.alpn.split(",") if p.strip()]
    config.h2_max_concurrent_streams = args.h2_max_concurrent_streams
    config.keep_alive_max_requests = args.keep_alive_max_requests or 2**62
    config.keep_alive_timeout = args.keep_alive_timeout
    config.backlog = args.backlog
    config.loglevel = args.log_level
    config.accesslog = None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    app = Receiver(args.latency_ms / 1000)
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    # The socket already listens, so connections queue from here on even before hypercorn accepts them.
    print(f"listening on https://{args.host}:{port} cert={ca}", flush=True)
    print(f"  alpn={','.join(config.alpn_protocols)} latency={args.latency_ms:g}ms "
          f"h2_max_concurrent_streams={config.h2_max_concurrent_streams} "
          f"keep_alive_max_requests={args.keep_alive_max_requests or 'off'} "
          f"keep_alive_timeout={config.keep_alive_timeout:g}s server_cert={cert} dir={directory}",
          file=sys.stderr, flush=True)
    try:
        await server
    finally:
        if not args.cert_dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
