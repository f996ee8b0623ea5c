"""A TCP relay on loopback that a test can take down and bring back: storage outages.

Clients connect to the relay's port; each connection is copied both ways to
the target. `hang()` makes it a black hole (connections are accepted and held,
nothing is forwarded: a server that stopped answering), `refuse()` closes the
port (connection refused), and `restore()` forwards again on the same port.
Taking it down also cuts the connections already open, as a crash would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from enum import Enum


class Mode(Enum):
    FORWARD = "forward"
    HANG = "hang"
    REFUSE = "refuse"


class TcpRelay:
    """`127.0.0.1:<port>` -> `target_host:target_port`, with outages on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.FORWARD
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self.accepted = 0  # connections accepted, in every mode
        self.port = 0
        self._listen()

    # --- outages -----------------------------------------------------------------------------

    def hang(self) -> None:
        """Accept connections and never answer; cut the open ones."""
        self._cut(Mode.HANG)

    def refuse(self) -> None:
        """Close the port; cut the open connections."""
        self._cut(Mode.REFUSE)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def restore(self) -> None:
        """Forward again, on the same port."""
        with self._lock:
            self.mode = Mode.FORWARD
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stopped.set()
        self.refuse()

    # --- plumbing ----------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _cut(self, mode: Mode) -> None:
        with self._lock:
            self.mode = mode
            open_, self._open = self._open, []
        for sock in open_:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._open.append(client)
                self.accepted += 1
                mode = self.mode
            if mode is Mode.FORWARD:
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.append(upstream)
        threading.Thread(target=self._copy, args=(upstream, client), daemon=True).start()
        self._copy(client, upstream)

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
