"""A loopback OTLP/HTTP receiver that keeps the raw request bytes (protobuf, as exported), nothing decoded.

``OtlpReceiver(delay_s=0).start()``: ``url``, ``bodies`` (list of (path, bytes)), ``close()``. A delay makes it
a slow collector. ``closed_port()`` is a port nobody listens on (a collector that is down).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OtlpReceiver:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.bodies: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                with receiver._lock:
                    receiver.bodies.append((self.path, body))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def all_bytes(self) -> bytes:
        with self._lock:
            return b"".join(b for _, b in self.bodies)

    def paths(self) -> set[str]:
        with self._lock:
            return {p for p, _ in self.bodies}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
