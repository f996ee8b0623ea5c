"""A local token service's HTTP server, served by a thread of its own while it is used as a
context manager (the fronts of tests/identity)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class ThreadedServer(ThreadingHTTPServer):
    """Listens on a free loopback port from construction; serves between enter and exit."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], thread_name: str) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, name=thread_name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
