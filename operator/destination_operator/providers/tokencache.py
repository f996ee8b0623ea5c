"""Tokens and credentials kept in memory until shortly before they expire, one fetch per key.

A cloud's token endpoint answers with a bearer token or temporary credentials
and their lifetime (an hour for Google and Entra ID, up to 12 for AWS STS; 600 s
for the ServiceAccount tokens the operator requests). Fetching them for every
probe costs an exchange each time (the GCS service-account path spent 80 ms of
a probe's 86 on it) and loads the cloud's token service for nothing. The cache
keeps each value until `refresh_margin` of its lifetime before its expiry,
keyed by everything that changes the answer (the caller builds the key: a key
file's fingerprint and scope; a ServiceAccount's uid, audience, role, tenant
and client). Concurrent fetches of one key make one call: the others wait for
its result, each no longer than its own deadline allows.

    issued = shared_tokens().fetch(("AWS", uid, role_arn), lambda: (exchange(), expires_at))

A value lives only here: never written to a file, a status or a log. The cache
is bounded (`MAX_ENTRIES`): when full, stale entries go first, then the least
recently used, so a tenant with many keys costs exchanges, not memory. A
storage server that refuses a cached value (revoked, or its key deleted) gets
the entry dropped (`forget`), so the next probe exchanges again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["MAX_ENTRIES", "AccessToken", "TokenCache", "refresh_margin", "shared_tokens"]

T = TypeVar("T")

MAX_ENTRIES = 4096
MAX_MARGIN_SECONDS = 300.0


def refresh_margin(lifetime_seconds: float) -> float:
    """How long before its expiry an entry is fetched anew: a fifth of its lifetime, at most
    five minutes (a 600 s token: 120 s; one-hour credentials: 300 s, Google's own libraries
    use 225)."""
    return min(MAX_MARGIN_SECONDS, max(0.0, lifetime_seconds) / 5)


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it expires (`time.time()` seconds); `repr` shows no token."""

    token: str = field(repr=False)
    expires_at: float


@dataclass
class _Entry:
    value: Any
    refresh_at: float


class TokenCache:
    """Values with an expiry, by key; `clock` is wall-clock seconds (expiries are absolute)."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time):
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._fetching: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The value under `key` while it is fresh, else None."""
        with self._lock:
            return self._fresh(key)

    def _fresh(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.refresh_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: Hashable, value: Any, expires_at: float) -> None:
        """Keep `value` until shortly before `expires_at`; one already due is not kept."""
        now = self._clock()
        refresh_at = expires_at - refresh_margin(expires_at - now)
        if refresh_at <= now:
            return
        with self._lock:
            self._entries[key] = _Entry(value, refresh_at)
            self._entries.move_to_end(key)
            if len(self._entries) > self._max:
                for stale in [k for k, e in self._entries.items() if now >= e.refresh_at]:
                    del self._entries[stale]
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def fetch(
        self, key: Hashable, make: Callable[[], tuple[T, float]], wait: float | None = None
    ) -> T:
        """The fresh value under `key`, else `make()`'s (value, expires_at), kept.

        One caller makes it; the others with the same key wait for it, at most
        `wait` seconds (None: as long as it takes), then make it themselves.
        `make`'s exceptions propagate and nothing is kept.
        """
        with self._lock:
            found = self._fresh(key)
            if found is not None:
                return found  # type: ignore[no-any-return]
            gate = self._fetching.setdefault(key, threading.Lock())
        acquired = gate.acquire(timeout=-1 if wait is None else max(wait, 0.0))
        try:
            found = self.get(key)
            if found is not None:
                return found  # type: ignore[no-any-return]
            value, expires_at = make()
            self.put(key, value, expires_at)
            return value
        finally:
            if acquired:
                gate.release()
            with self._lock:
                if not gate.locked() and self._fetching.get(key) is gate:
                    del self._fetching[key]

    def forget(self, key: Hashable) -> None:
        """Drop `key`'s value: the server refused it."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_SHARED = TokenCache()


def shared_tokens() -> TokenCache:
    """The operator's one cache: key files' access tokens and every workload identity's
    tokens and credentials."""
    return _SHARED
