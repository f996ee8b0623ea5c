"""Helpers for the S3 provider tests: specs as users write them, Secrets from the server's keys."""

from __future__ import annotations

import socket
import threading
from typing import Any

from destination_operator.api.spec import DestinationSpec, parse_spec


def s3_spec(
    endpoint: str,
    bucket: str,
    *,
    prefix: str = "probes/",
    mode: str = "WriteDelete",
    timeout: str = "5s",
    secret: str = "creds",
) -> DestinationSpec:
    """An S3Compatible spec as a user would write it (Development: http allowed)."""
    return parse_spec(
        {
            "type": "S3Compatible",
            "environment": "Development",
            "s3Compatible": {"endpoint": endpoint, "bucket": bucket, "forcePathStyle": True},
            "pathPrefix": prefix,
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


def as_secret(pair: Any) -> dict[str, bytes]:
    """A KeyPair (from the S3 server) as decoded Secret data."""
    data: dict[str, bytes] = pair.secret_data()
    return data


class SilentServer:
    """Accepts TCP connections and never answers; counts the connections."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self.listener.close()
