"""A product service for the gateway's end-to-end tests (tests/e2e/gateway_test.py), run as its own process:
`upstream_server.py NAME PORT`. HTTP/1.1 with keep-alive, one thread per connection.

  GET  /healthz                 200, or 503 while the file $UPSTREAM_UNHEALTHY_FILE exists
  any  /slow?ms=N               answers after N milliseconds
  GET  /download?bytes=N        N bytes, chunked, streamed 64 KiB at a time
  GET  /events[?gate=FILE]      server-sent events: three (the last two once FILE exists)
  GET  /ws                      WebSocket (RFC 6455) echo of text frames
  POST /upload                  reads the body as it streams; answers its length and SHA-256
  any  /empty-error?status=N     answers N with an empty body
  any  /shape                   a JSON list in the newest shape, with the JSON request body it received
  any  /reset                   closes the connection without an answer
  GET  /__seen?key=K            how many requests carried Idempotency-Key or X-Test-Key K
  any  other                    JSON echo: server name, method, target, headers, body length
"""

import base64
import hashlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = sys.argv[1]
PORT = int(sys.argv[2])
SEEN = {}
SEEN_LOCK = threading.Lock()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _count(self):
        for header in ("Idempotency-Key", "X-Test-Key"):
            key = self.headers.get(header)
            if key:
                with SEEN_LOCK:
                    SEEN[key] = SEEN.get(key, 0) + 1

    def _read_body(self):
        """The request body as it streams: (length, sha256 hex)."""
        digest = hashlib.sha256()
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    digest.update(chunk)
                    total += len(chunk)
                    remaining -= len(chunk)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
                remaining -= len(chunk)
        return total, digest.hexdigest()

    def _json(self, status, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", NAME)
        self.send_header("X-Internal-Debug", "secret")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self):
        self._count()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            unhealthy = os.environ.get("UPSTREAM_UNHEALTHY_FILE")
            return self._json(503 if unhealthy and os.path.exists(unhealthy) else 200, {"server": NAME})
        if url.path == "/__seen":
            with SEEN_LOCK:
                return self._json(200, {"count": SEEN.get(query.get("key", [""])[0], 0)})
        if url.path == "/reset":
            self._read_body()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if url.path == "/empty-error":
            self._read_body()
            self.send_response(int(query.get("status", ["500"])[0]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000.0)
        if url.path == "/download":
            remaining = int(query.get("bytes", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * (1 << 16)
            while remaining:
                n = min(remaining, len(block))
                self.wfile.write(b"%x\r\n" % n + block[:n] + b"\r\n")
                remaining -= n
            self.wfile.write(b"0\r\n\r\n")
            return None
        if url.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            gate = query.get("gate", [""])[0]
            for i in range(3):
                event = f"id: {i}\ndata: tick {i} {time.time()}\n\n".encode()
                self.wfile.write(b"%x\r\n" % len(event) + event + b"\r\n")
                self.wfile.flush()
                # With ?gate=FILE the rest waits until FILE exists: a client that saw the first event through a
                # proxy creates it, so a proxy that buffered would never deliver anything.
                deadline = time.monotonic() + 120  # beyond the test client's 60 s: a buffering proxy fails it
                while i == 0 and gate and not os.path.exists(gate) and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return None
        if url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket()
        if url.path == "/shape":
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return self._json(200, {"data": [{"id": 1, "amount_cents": 5, "currency": "EUR"}], "total_count": 1,
                                    "received": json.loads(raw) if raw else None,
                                    "chunked": "Transfer-Encoding" in self.headers})
        length, digest = self._read_body()
        if url.path == "/upload":
            return self._json(200, {"server": NAME, "length": length, "sha256": digest})
        return self._json(200, {"server": NAME, "method": self.command, "target": self.path,
                                "headers": {k: v for k, v in self.headers.items()}, "length": length})

    def _websocket(self):
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                break
            opcode = head[0] & 0x0F
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(self.rfile.read(2), "big")
            elif length == 127:
                length = int.from_bytes(self.rfile.read(8), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:  # close
                self.wfile.write(b"\x88\x00")
                break
            reply = f"{NAME}: ".encode() + payload
            self.wfile.write(bytes([0x81, len(reply)]) + reply if len(reply) < 126 else
                             bytes([0x81, 126]) + len(reply).to_bytes(2, "big") + reply)
            self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    server = Server(("127.0.0.1", PORT), Handler)
    print(f"upstream {NAME} on {PORT}", flush=True)
    server.serve_forever()
