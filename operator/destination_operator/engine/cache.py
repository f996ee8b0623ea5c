"""The engine's cache of watched Destinations, and which of them name which Secret.

A watch event replaces a Destination's cached body (`slim`med: only what
decisions read, the status compressed); the status this engine wrote
is kept beside it until the watch shows it. Each Destination is linked to
the Secret it names, so a Secret's change finds the Destinations to queue
without a scan.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from destination_operator import decide
from destination_operator.api import VERIFY_REQUESTED_AT

__all__ = [
    "KEPT_METADATA",
    "Cache",
    "Entry",
    "Key",
    "key_of",
    "packed",
    "slim",
    "unpacked",
    "version",
]

Key = tuple[str, str]  # (namespace, name)

KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "finalizers",
    "deletionTimestamp",
)


def version(value: Any) -> int:
    """A resourceVersion as a number: etcd's are, and only ordering within one object matters."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine keeps of a watched Destination: its spec, its status and the metadata
    decisions read. Not `managedFields`, nor annotations other than the verify request (a
    client-side `kubectl apply` stores a whole copy of the object in one): at 10,000
    Destinations those were most of the operator's memory."""
    meta = body.get("metadata") or {}
    kept: dict[str, Any] = {key: meta[key] for key in KEPT_METADATA if key in meta}
    if isinstance(kept.get("namespace"), str):  # one copy per namespace, not per Destination
        kept["namespace"] = sys.intern(kept["namespace"])
    request = (meta.get("annotations") or {}).get(VERIFY_REQUESTED_AT)
    if request is not None:
        kept["annotations"] = {VERIFY_REQUESTED_AT: request}
    return {
        "metadata": kept,
        "spec": _interned(body.get("spec") or {}),
        "status": packed(body.get("status") or {}),
    }


def packed(status: Mapping[str, Any]) -> bytes:
    """A status as compressed compact JSON. It is read only through `Entry.status` (once
    or twice a pass), and a verified status then costs about 400 bytes instead of about
    1.5 KiB as dicts and strings. Packing costs some 70 us a watch event, reading 15 us."""
    text = json.dumps(status, separators=(",", ":"), ensure_ascii=False).encode()
    return zlib.compress(text, 1)


def unpacked(status: Any) -> dict[str, Any]:
    """A kept status as a new dict: `packed`, or a mapping (a body not `slim`med)."""
    if isinstance(status, bytes):
        found = json.loads(zlib.decompress(status))
        return found if isinstance(found, dict) else {}
    return dict(status or {})


def key_of(body: Mapping[str, Any]) -> Key:
    """The (namespace, name) of a Destination's body."""
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("name")))


def _interned(value: Any) -> Any:
    """A copy of a JSON value whose keys and short strings are interned: each watch event
    is parsed on its own, so without this every body holds its own copy of
    "lastTransitionTime", "ProbeSucceeded", ..."""
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(item) for item in value]
    if isinstance(value, str) and len(value) <= 32:
        return sys.intern(value)
    return value


@dataclass(slots=True)  # one per Destination: no __dict__ each
class Entry:
    """One Destination in the engine's cache (its body `slim`med)."""

    body: Mapping[str, Any]
    memory: decide.Memory = field(default_factory=decide.Memory)
    written_status: dict[str, Any] | None = None  # until the watch shows our own write
    written_version: int = -1
    seen: bool = False  # processed once since the operator started

    @property
    def uid(self) -> str:
        return str(self.body.get("metadata", {}).get("uid", ""))

    @property
    def secret_name(self) -> str | None:
        spec = self.body.get("spec") or {}
        credentials = spec.get("credentials") if isinstance(spec, Mapping) else None
        ref = credentials.get("secretRef") if isinstance(credentials, Mapping) else None
        name = ref.get("name") if isinstance(ref, Mapping) else None
        return name if isinstance(name, str) else None

    def _watch_caught_up(self) -> bool:
        """The watched body is at least as new as the status this engine last wrote."""
        return version(self.body.get("metadata", {}).get("resourceVersion")) >= self.written_version

    def status(self) -> dict[str, Any]:
        """The freshest status known: the one just written until the watch shows it, else
        the watched body's."""
        if self.written_status is not None and not self._watch_caught_up():
            return dict(self.written_status)
        return unpacked(self.body.get("status"))

    def wrote(self, stored: Mapping[str, Any]) -> None:
        """The engine wrote this status; `stored` is the object as the API server stored it.

        Kept only while the watch is behind: the watch event of this very write often
        arrives before the patch's answer, and a status kept then would never be let go
        (no later event comes at rest), a second copy of every status."""
        self.written_status = _interned(stored.get("status") or {})
        self.written_version = version((stored.get("metadata") or {}).get("resourceVersion"))
        self.drop_written_status_once_watched()

    def drop_written_status_once_watched(self) -> None:
        """Let go of the status this engine wrote once the watched body shows it (or newer)."""
        if self.written_status is not None and self._watch_caught_up():
            self.written_status = None


class Cache:
    """Every watched Destination by key, and the Destinations naming each Secret.

    `on_secret_unused` is told a Secret's key when no Destination names it any more.
    """

    def __init__(self, on_secret_unused: Callable[[Key], None] = lambda _key: None) -> None:
        self._entries: dict[Key, Entry] = {}
        self._users: dict[Key, set[Key]] = {}  # Secret key -> Destination keys naming it
        self._on_secret_unused = on_secret_unused

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: Key) -> Entry | None:
        """The cached Destination, if any."""
        return self._entries.get(key)

    def put(self, key: Key, body: Mapping[str, Any]) -> Entry:
        """Cache `body` (`slim`med) as `key`'s newest: a new entry, or the known one with its
        memory kept. The caller forgets a replaced object (another uid) first."""
        entry = self._entries.get(key)
        before = None
        if entry is None:
            entry = self._entries[key] = Entry(body=body)
        else:
            before = entry.secret_name
            entry.body = body
            entry.drop_written_status_once_watched()
        secret = entry.secret_name
        if secret is not None:
            self._users.setdefault((key[0], secret), set()).add(key)
        if before != secret:
            # only now: a Secret still named is never let go (and read again) in between
            self._unlink(key, before)
        return entry

    def pop(self, key: Key) -> Entry | None:
        """Drop `key` (the Destination was deleted); its entry, if there was one."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._unlink(key, entry.secret_name)
        return entry

    def users(self, namespace: str, secret: str) -> list[Key]:
        """The Destinations that name this Secret."""
        return list(self._users.get((namespace, secret), ()))

    def _unlink(self, key: Key, secret: str | None) -> None:
        if secret is None:
            return
        users = self._users.get((key[0], secret))
        if users is not None:
            users.discard(key)
            if not users:
                del self._users[(key[0], secret)]
                self._on_secret_unused((key[0], secret))
