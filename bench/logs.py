"""Counting from the logs of the servers: the API server's audit log, the S3 request log.

The audit log records every write (hack/controlplane.py's policy), with the
user who made it; the S3 server logs one line per request. Both are read
incrementally (a benchmark at 10,000 objects makes hundreds of thousands of
lines), and a position in either is a `mark()`: an index into what has been
read so far, so a figure is "what happened between two marks".
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT = "destination-operator-system", "destination-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class LineReader:
    """The complete lines appended to a file since the last read; follows a rotation."""

    CHUNK = 8 << 20  # read in pieces: a run at 10,000 objects writes hundreds of MiB

    def __init__(self, path: Path, rotated_glob: str | None = None) -> None:
        self.path = path
        self.rotated_glob = rotated_glob
        self._inode: int | None = None
        self._offset = 0

    def _lines_from(self, path: Path) -> Iterator[str]:
        """Complete lines from `self._offset` on; a line being written waits for the next read."""
        with path.open("rb") as handle:
            handle.seek(self._offset)
            pending = b""
            while chunk := handle.read(self.CHUNK):
                pending += chunk
                end = pending.rfind(b"\n") + 1
                if end:
                    self._offset += end
                    yield from pending[:end].decode(errors="replace").splitlines()
                    pending = pending[end:]

    def read(self) -> Iterator[str]:
        if not self.path.exists():
            return
        inode = os.stat(self.path).st_ino
        if self._inode is not None and inode != self._inode and self.rotated_glob:
            # The writer renamed the file being read: finish it, then start the new one.
            for old in self.path.parent.glob(self.rotated_glob):
                if os.stat(old).st_ino == self._inode:
                    yield from self._lines_from(old)
            self._offset = 0
        self._inode = inode
        yield from self._lines_from(self.path)


@dataclass(frozen=True)
class Write:
    """One write the API server recorded (metadata only: never a body)."""

    user: str
    verb: str
    resource: str  # "destinations/status", "events", ...
    namespace: str
    name: str
    code: int

    @property
    def kind(self) -> str:
        return f"{self.verb} {self.resource}"


class AuditLog:
    """The API server's writes, in order."""

    def __init__(self, path: Path) -> None:
        # kube-apiserver (lumberjack) renames a full log to audit-<time>.log
        self._reader = LineReader(path, rotated_glob=f"{path.stem}-*{path.suffix}")
        self.writes: list[Write] = []

    def mark(self) -> int:
        for line in self._reader.read():
            entry = json.loads(line)
            if entry.get("verb") not in WRITE_VERBS:
                continue
            ref = entry.get("objectRef") or {}
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            self.writes.append(
                Write(
                    user=entry.get("user", {}).get("username", ""),
                    verb=entry["verb"],
                    resource=resource,
                    namespace=ref.get("namespace", ""),
                    name=ref.get("name", ""),
                    code=int((entry.get("responseStatus") or {}).get("code", 0)),
                )
            )
        return len(self.writes)

    def operator_writes(
        self,
        since: int,
        until: int | None = None,
        *,
        namespace: str | None = None,
        names: frozenset[str] | None = None,
    ) -> list[Write]:
        """The operator's writes between two marks, in one namespace or to some objects."""
        until = self.mark() if until is None else until
        return [
            write
            for write in self.writes[since:until]
            if write.user == OPERATOR_USER
            and (namespace is None or write.namespace == namespace)
            and (names is None or write.name in names)
        ]


def by_kind(writes: list[Write]) -> dict[str, int]:
    return dict(sorted(collections.Counter(write.kind for write in writes).items()))


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    access_key_id: str
    status: str


class S3RequestLog:
    """The S3 server's requests, in order (hack/s3server.py's requests.log)."""

    def __init__(self, path: Path) -> None:
        self._reader = LineReader(path)
        self.requests: list[S3Request] = []

    def mark(self) -> int:
        for line in self._reader.read():
            parts = line.split()
            if len(parts) == 5:
                self.requests.append(S3Request(*parts[1:]))
        return len(self.requests)

    def since(self, since: int, until: int | None = None) -> list[S3Request]:
        until = self.mark() if until is None else until
        return self.requests[since:until]


def probe_writes(requests: list[S3Request], bucket: str, prefix: str) -> list[S3Request]:
    """The PUTs of probe objects under `prefix`: one per probe that got as far as writing."""
    start = f"/{bucket}/{prefix}"
    return [r for r in requests if r.method == "PUT" and r.path.startswith(start)]
