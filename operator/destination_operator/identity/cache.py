"""One thread-safe cache of ServiceAccount tokens and the credentials clouds issue for them.

Each entry is kept until shortly before it expires (a fifth of its lifetime, at most five
minutes, before), so N probes of a Destination cost one token request and one exchange
until then. Entries live in memory only: nothing here is written anywhere, logged or
counted by value. Keys hold everything that changes the result (the ServiceAccount's uid,
the audience, the role or service account, the tenant and client), so a changed
annotation or a ServiceAccount made anew under the same name gets a fresh exchange.

    cache = CredentialCache()
    issued = cache.fetch(("AWS", uid, role_arn), lambda: (exchange(), expires_at))

Concurrent fetches of one key make one call: the others wait for its result.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["CacheKey", "CredentialCache", "refresh_margin"]

T = TypeVar("T")

CacheKey = tuple[Hashable, ...]
"""What identifies one token or one set of credentials."""

MAX_MARGIN_SECONDS = 300.0


def refresh_margin(lifetime_seconds: float) -> float:
    """How long before its expiry an entry is fetched anew: a fifth of its lifetime, at most
    five minutes (a 600 s token: 120 s; one-hour credentials: 300 s)."""
    return min(MAX_MARGIN_SECONDS, max(0.0, lifetime_seconds) / 5)


@dataclass
class _Entry:
    value: Any
    refresh_at: float


class CredentialCache:
    """Values with an expiry, by key; `clock` is wall-clock seconds (expiries are absolute)."""

    def __init__(self, *, max_entries: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._fetching: dict[CacheKey, threading.Lock] = {}

    def get(self, key: CacheKey) -> Any | None:
        """The value under `key` while it is fresh, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry.refresh_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: CacheKey, value: Any, expires_at: float) -> None:
        """Keep `value` until shortly before `expires_at`; one already expired is not kept."""
        now = self._clock()
        refresh_at = expires_at - refresh_margin(expires_at - now)
        if refresh_at <= now:
            return
        with self._lock:
            self._entries[key] = _Entry(value, refresh_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def fetch(self, key: CacheKey, make: Callable[[], tuple[T, float]]) -> T:
        """The fresh value under `key`, else `make()`'s (value, expires_at), kept. One caller
        makes it; the others with the same key wait for it. `make`'s exceptions propagate
        and nothing is kept."""
        found = self.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        with self._lock:
            lock = self._fetching.setdefault(key, threading.Lock())
        with lock:
            found = self.get(key)
            if found is not None:
                return found  # type: ignore[no-any-return]
            try:
                value, expires_at = make()
                self.put(key, value, expires_at)
                return value
            finally:
                with self._lock:
                    self._fetching.pop(key, None)

    def forget(self, key: CacheKey) -> None:
        """Drop `key` (credentials the storage refused, say)."""
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
