"""An HTTP proxy in front of the real kube-apiserver that injects faults on chosen requests.

The operator under test gets a kubeconfig whose server is this proxy (plain
HTTP on loopback, its ServiceAccount token passed through); the proxy forwards
every request to the API server over TLS and streams the answer back (watches
included). A rule makes matching requests fail instead, a number of times:

- `status`: answer with that HTTP status and a Kubernetes `Status` body, as an
  overloaded or failing API server does (500, 503, 429 with Retry-After);
- `reset`: close the connection without an answer (the client sees a protocol
  error);
- `hang`: accept and never answer (the client's request timeout must fire).

Requests are counted by (method, path) so that a test can check what was asked,
and each answer is kept as an `Exchange`: what the request accepted, what came
back, how many bytes, and which of the test's `needles` its (decoded) body held,
so that a test can show what data reached the operator and what never did.
"""

from __future__ import annotations

import collections
import json
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    action: str  # "status", "reset" or "hang"
    times: int
    status: int = 500


@dataclass
class Exchange:
    """One forwarded request and its answer so far (a watch's grows while it streams)."""

    method: str
    path: str
    accept: str
    status: int = 0
    content_type: str = ""
    size: int = 0  # bytes of the answer so far
    head: bytes = b""  # the first `HEAD` bytes of the (decoded) answer
    found: set[bytes] = field(default_factory=set)

    HEAD = 512


class _Scan:
    """Looks for needles in a body that arrives in chunks, gzip-encoded or not."""

    def __init__(self, needles: frozenset[bytes], gzipped: bool) -> None:
        self.needles = needles
        self.keep = max((len(n) for n in needles), default=1) - 1
        self.tail = b""
        self.inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None

    def feed(self, chunk: bytes, exchange: Exchange) -> None:
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        if len(exchange.head) < Exchange.HEAD:
            exchange.head = (exchange.head + chunk)[: Exchange.HEAD]
        window = self.tail + chunk
        self.tail = window[-self.keep :] if self.keep else b""
        exchange.found |= {needle for needle in self.needles if needle in window}


class ApiProxy:
    """`http://127.0.0.1:<port>` -> the API server, with faults on demand."""

    def __init__(self, server: str, ca_file: Path) -> None:
        self.upstream = server.rstrip("/")
        self.pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=str(ca_file), maxsize=64, retries=False
        )
        self.faults: list[Fault] = []
        self.injected: collections.Counter[str] = collections.Counter()
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self.exchanges: list[Exchange] = []
        self.needles: frozenset[bytes] = frozenset()  # looked for in every answer's body
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(
        self, method: str, path: str, action: str, *, times: int = 1, status: int = 500
    ) -> None:
        """Make the next `times` requests `method` on paths matching `path` fail."""
        with self.lock:
            self.faults.append(Fault(method, re.compile(path), action, times, status))

    def pending(self) -> int:
        """Faults not yet injected."""
        with self.lock:
            return sum(f.times for f in self.faults)

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            self.seen[(method, path.split("?", 1)[0])] += 1
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.path.search(path):
                    fault.times -= 1
                    self.injected[fault.action] += 1
                    return fault
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(proxy: ApiProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault = proxy.take(self.command, self.path)
            if fault is not None and fault.action == "reset":
                # RST rather than FIN: the client sees the connection die mid-request.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                self.close_connection = True
                return
            if fault is not None and fault.action == "hang":
                time.sleep(120)
                self.close_connection = True
                return
            if fault is not None:
                self._status(fault.status)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host"}}
            exchange = Exchange(self.command, self.path, self.headers.get("Accept") or "")
            with proxy.lock:
                proxy.exchanges.append(exchange)
            upstream = proxy.pool.urlopen(
                self.command,
                proxy.upstream + self.path,
                body=body,
                headers=headers,
                preload_content=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=5, read=None),
            )
            exchange.status = upstream.status
            exchange.content_type = upstream.headers.get("Content-Type") or ""
            scan = _Scan(proxy.needles, upstream.headers.get("Content-Encoding") == "gzip")
            try:
                self.send_response(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # chunk by chunk: a watch's events reach the client as they come
                chunks = (
                    upstream.read_chunked(decode_content=False)
                    if upstream.chunked
                    else iter([upstream.read(decode_content=False)])
                )
                for chunk in chunks:
                    if chunk:
                        exchange.size += len(chunk)
                        scan.feed(chunk, exchange)
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (OSError, ssl.SSLError, urllib3.exceptions.HTTPError):
                self.close_connection = True
            finally:
                upstream.release_conn()

        def _status(self, code: int) -> None:
            body = json.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f"injected by the test proxy: HTTP {code}",
                    "code": code,
                    "reason": "TooManyRequests" if code == 429 else "InternalError",
                }
            ).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if code == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    return Handler
