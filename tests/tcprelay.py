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

from loopback import LoopbackServer


class Mode(Enum):
    FORWARD = "forward"
    HANG = "hang"
    REFUSE = "refuse"


class TcpRelay(LoopbackServer):
    """`127.0.0.1:<port>` -> `target_host:target_port`, with outages on demand.

    `accepted` counts the connections accepted, in every mode.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.FORWARD
        super().__init__(backlog=128)

    # --- outages -----------------------------------------------------------------------------

    def hang(self) -> None:
        """Accept connections and never answer; cut the open ones."""
        self._outage(Mode.HANG)

    def refuse(self) -> None:
        """Close the port; cut the open connections."""
        self._outage(Mode.REFUSE)
        self.stop_listening()

    def restore(self) -> None:
        """Forward again, on the same port."""
        with self.lock:
            self.mode = Mode.FORWARD
        if self.listener is None:
            self.listen()

    def _outage(self, mode: Mode) -> None:
        with self.lock:  # a connection accepted from now on meets the new mode
            self.mode = mode
            self.cut()

    # --- forwarding --------------------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        with self.lock:
            mode = self.mode
        if mode is not Mode.FORWARD:
            return  # held, unanswered, until the next outage or close() cuts it
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        self.track(upstream)
        threading.Thread(target=self._copy, args=(upstream, conn), daemon=True).start()
        self._copy(conn, upstream)

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
