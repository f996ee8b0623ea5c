"""Servers on loopback for tests: the one accept loop that every test server here builds on.

`LoopbackServer` listens on 127.0.0.1 (a free port unless told), accepts in a
thread, and hands each connection to `handle` in a thread of its own. It
tracks every socket it is given, so `cut()` can drop the open connections (a
crash, as the client sees it) and `close()` shuts them all, joins the
threads and leaves no server behind. A subclass says only what it does with
one connection:

- `SilentServer` (below): holds it and never answers;
- `tcprelay.TcpRelay`: forwards it, and takes the port down on demand;
- `slowservers` (tests/providers): answers a byte at a time, as a tiny S3,
  or with text shaped to be slow to scan;
- `test_transport.py` (tests/providers): a TLS relay and a CONNECT proxy.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class LoopbackServer:
    """Accepts on (host, port) and hands each connection to `handle` in its own thread.

    `accepted` counts the connections accepted; `stop` is set once the server
    closes, for handlers that wait or loop to give up on.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 16) -> None:
        self.host = host
        self.port = port
        self.backlog = backlog
        self.accepted = 0
        self.stop = threading.Event()
        self.lock = threading.RLock()
        self.listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptors: list[threading.Thread] = []
        self.listen()

    # --- the port ---------------------------------------------------------------------------

    def listen(self) -> None:
        """Open the port and accept on it; after `stop_listening()`, the same port again."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(self.backlog)
        listener.settimeout(0.05)
        self.port = int(listener.getsockname()[1])
        self.listener = listener
        acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptors.append(acceptor)
        acceptor.start()

    def stop_listening(self) -> None:
        """Close the port: connecting is refused until `listen()` opens it again."""
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                if listener.fileno() == -1:
                    return  # closed: stop_listening() or close()
                continue  # no connection within the listener's timeout
            with self.lock:
                self.accepted += 1
                self._open.append(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    # --- connections ------------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the client went away: what most tests cause
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        """Serve one connection (subclasses). Returning leaves it open until `cut()` or
        `close()`; a handler that is done with it closes it."""

    def track(self, sock: socket.socket) -> socket.socket:
        """Shut `sock` too on `cut()` and `close()` (an upstream connection, a TLS wrapper)."""
        with self.lock:
            self._open.append(sock)
        return sock

    def cut(self) -> None:
        """Shut and close every connection open now, both ways."""
        with self.lock:
            open_, self._open = self._open, []
        for sock in open_:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Stop accepting, shut every connection, wait for the handlers, close everything."""
        self.stop.set()
        for acceptor in list(self._acceptors):
            acceptor.join()
        with self.lock:
            open_ = list(self._open)
            threads = list(self._threads)
        for sock in open_:  # wakes a handler blocked in recv; it closes what it holds
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        self.cut()
        self.stop_listening()


class SilentServer(LoopbackServer):
    """Accepts TCP connections and never answers; `accepted` counts them."""
