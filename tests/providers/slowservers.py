"""Servers on loopback that answer too slowly, answer as a tiny S3, or answer with text shaped
to be slow to scan, for the deadline and hostile-answer tests.

Each is a `loopback.LoopbackServer`: it serves every connection in a thread of
its own and `close()` ends them all, so a test leaves no server thread behind.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Mapping

from loopback import LoopbackServer

TRICKLED_RESPONSE = (
    b'HTTP/1.1 200 OK\r\nETag: "d41d8cd98f00b204e9800998ecf8427e"\r\nContent-Length: 0\r\n\r\n'
)
"""A valid PutObject answer (80 bytes): one byte at a time, it takes 80 times the delay."""


def _receive(conn: socket.socket, stop: threading.Event) -> bytes | None:
    """The next bytes the client sends; None at EOF or once `stop` is set."""
    while not stop.is_set():
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        return chunk or None
    return None


def read_request(conn: socket.socket, stop: threading.Event) -> tuple[str, bytes] | None:
    """(request line, body) of the next request; answers `Expect: 100-continue`. None at EOF."""
    conn.settimeout(0.1)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _receive(conn, stop)
        if chunk is None:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("expect", "").lower() == "100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    length = int(headers.get("content-length", "0"))
    while len(body) < length and not stop.is_set():
        chunk = _receive(conn, stop)
        if chunk is None:
            if stop.is_set():
                break  # shutting down: hand back what came
            return None
        body += chunk
    return lines[0], body


TRICKLED_SERVER_HELLO = b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03" + bytes(range(80))
"""The start of a TLS ServerHello: a client's handshake waits for every byte of the record."""


class TrickleServer(LoopbackServer):
    """Sends `payload` one byte every `delay` seconds: after reading an HTTP request, or
    (`tls=True`) as soon as the client connects, as a server stuck mid-handshake would.

    `closed_at` records when the client's end of the connection closed (the
    server saw EOF or a reset), so a test can prove the socket was shut.
    """

    def __init__(self, delay: float = 0.8, *, tls: bool = False) -> None:
        self.delay = delay
        self.tls = tls
        self.requests: list[str] = []
        self.got_request = threading.Event()
        self.closed_at: float | None = None
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        if not self.tls:
            request = read_request(conn, self.stop)
            if request is None:
                return
            self.requests.append(request[0])
        self.got_request.set()
        try:
            trickle(
                conn,
                TRICKLED_SERVER_HELLO if self.tls else TRICKLED_RESPONSE,
                self.delay,
                self.stop,
            )
        finally:
            self.closed_at = time.monotonic()


def trickle(conn: socket.socket, payload: bytes, delay: float, stop: threading.Event) -> None:
    """Send `payload` a byte every `delay` seconds; stop when the client closes its end."""
    conn.settimeout(0.1)
    for byte in payload:
        conn.sendall(bytes([byte]))
        readable, _, _ = select.select([conn], [], [], delay)
        if stop.is_set() or (readable and not conn.recv(1)):
            return


class TinyS3(LoopbackServer):
    """Answers PutObject (200) and DeleteObject (204) on keep-alive connections; records them.

    Each record is (method, path, the local address the request arrived at).
    The answer to a method in `trickled` comes a byte every 0.8 s.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, trickled: tuple[str, ...] = ()
    ) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.trickled = trickled
        super().__init__(host, port)

    def handle(self, conn: socket.socket) -> None:
        local = str(conn.getsockname()[0])
        while not self.stop.is_set():
            request = read_request(conn, self.stop)
            if request is None:
                return
            method, path, _ = request[0].split(" ", 2)
            self.requests.append((method, path, local))
            answer = b"HTTP/1.1 204 No Content\r\n\r\n" if method == "DELETE" else TRICKLED_RESPONSE
            if method in self.trickled:
                trickle(conn, answer, 0.8, self.stop)
                return
            conn.sendall(answer)


class HostileServer(LoopbackServer):
    """Answers every request with the same answer, whatever was asked: the status line
    `HTTP/1.1 <status> <reason>`, `headers`, then `body` with its Content-Length.

    The connection stays open for the next request (`keep_alive`), or the
    answer says `Connection: close` and the server's side ends after it.
    `requests` records each request line.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        keep_alive: bool = True,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if not keep_alive:
            lines.append("Connection: close")
        self.answer = "\r\n".join([*lines, "", ""]).encode("latin-1") + body
        self.keep_alive = keep_alive
        self.requests: list[str] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        while not self.stop.is_set():
            request = read_request(conn, self.stop)
            if request is None:
                return
            self.requests.append(request[0])
            send_all(conn, self.answer, self.stop)
            if not self.keep_alive:
                conn.shutdown(socket.SHUT_WR)
                return


def send_all(conn: socket.socket, data: bytes, stop: threading.Event) -> None:
    """`conn.sendall(data)` that gives up once `stop` is set (a client that stopped reading
    would otherwise hold the thread); an error once the client closed its end."""
    conn.settimeout(0.1)
    view = memoryview(data)
    while view and not stop.is_set():
        try:
            sent = conn.send(view[:65536])
        except TimeoutError:
            continue
        view = view[sent:]


SHAPES: dict[str, Callable[[int], str]] = {
    # Many starts of a URL scheme ([a-z][a-z0-9+.-]*://), each scanned to the end of the text.
    "dotted": lambda n: ("a." * (n // 2 + 1))[:n],
    "dotted-url": lambda n: ("http://" + "a." * (n // 2 + 1))[:n],
    # Many starts of a JSON Web Token (eyJ...), each scanned to the end for its first dot;
    # a URL scheme's characters too.
    "jwt": lambda n: ("eyJ-" * (n // 4 + 1))[:n],
    # The same for the token alone: "_" ends a URL scheme but not a token.
    "jwt-only": lambda n: ("eyJ_-" * (n // 5 + 1))[:n],
}
"""Text of `n` characters that a pattern with overlapping repetition scans in quadratic time,
by name: what a hostile endpoint puts in an error message to hold the GIL for minutes."""


class Heartbeat:
    """A thread that sleeps `interval` in a loop; `longest` is the longest time between two
    of its wakeups, i.e. how long something else held the interpreter (or the CPU) from it.

    Used as a context manager around the work to watch.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            time.sleep(self.interval)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
