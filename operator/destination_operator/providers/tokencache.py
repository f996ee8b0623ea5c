"""Access tokens kept in memory until shortly before they expire, one exchange per key.

A cloud's token endpoint answers with a bearer token and its lifetime (an
hour for Google, about as long for Entra ID). Fetching one for every probe
costs an exchange each time (the GCS service-account path spent 80 ms of a
probe's 86 on it) and loads the cloud's token service for nothing. The cache
keeps each token until `REFRESH_MARGIN` before its expiry, keyed by
everything that changes the answer (the caller builds the key: a key file's
fingerprint and scope; a ServiceAccount's uid, audience, role, tenant and
client). Concurrent probes with one key make one exchange: the others wait
for it, each no longer than its own deadline allows.

A token lives only here: never written to a file, a status or a log. The
cache is bounded (`MAX_ENTRIES`): when full, the entry that expires first
goes, so a tenant with many keys costs exchanges, not memory. A storage
server that refuses a cached token (revoked, or its key deleted) gets the
entry dropped (`forget`), so the next probe exchanges again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

__all__ = ["MAX_ENTRIES", "REFRESH_MARGIN", "AccessToken", "TokenCache", "shared_tokens"]

REFRESH_MARGIN = 300.0
"""Seconds before expiry when a token is exchanged again (Google's own libraries use 225)."""

MAX_ENTRIES = 4096


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it expires (`time.time()` seconds); `repr` shows no token."""

    token: str = field(repr=False)
    expires_at: float

    def fresh(self, now: float, margin: float = REFRESH_MARGIN) -> bool:
        return now < self.expires_at - margin


class TokenCache:
    """Tokens by key; `get(key, fetch, wait)` returns a fresh one, fetching it at most once
    at a time per key."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max = max_entries
        self._margin = margin
        self._clock = clock
        self._tokens: dict[Hashable, AccessToken] = {}
        self._fetching: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.exchanges = 0  # how many fetches ran: the tests count them

    def _fresh(self, key: Hashable) -> AccessToken | None:
        found = self._tokens.get(key)
        if found is not None and found.fresh(self._clock(), self._margin):
            return found
        return None

    def get(
        self, key: Hashable, fetch: Callable[[], AccessToken], wait: float
    ) -> tuple[AccessToken, bool]:
        """(a fresh token for `key`, whether it came from the cache).

        `fetch` runs when none is fresh, with no other fetch for `key` at the
        same time; a caller that waits for another's fetch waits at most
        `wait` seconds, then fetches itself. A failed fetch stores nothing.
        """
        with self._lock:
            found = self._fresh(key)
            if found is not None:
                return found, True
            gate = self._fetching.setdefault(key, threading.Lock())
        acquired = gate.acquire(timeout=max(wait, 0.0))
        try:
            with self._lock:
                found = self._fresh(key)
            if found is not None:
                return found, True
            token = fetch()
            with self._lock:
                self.exchanges += 1
                self._store(key, token)
            return token, False
        finally:
            if acquired:
                gate.release()
            with self._lock:
                if not gate.locked() and self._fetching.get(key) is gate:
                    del self._fetching[key]

    def _store(self, key: Hashable, token: AccessToken) -> None:
        if key not in self._tokens and len(self._tokens) >= self._max:
            now = self._clock()
            stale = [k for k, v in self._tokens.items() if not v.fresh(now, self._margin)]
            for old in stale:
                del self._tokens[old]
            if len(self._tokens) >= self._max:
                del self._tokens[min(self._tokens, key=lambda k: self._tokens[k].expires_at)]
        self._tokens[key] = token

    def forget(self, key: Hashable) -> None:
        """Drop `key`'s token: the server refused it."""
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


_SHARED = TokenCache()


def shared_tokens() -> TokenCache:
    """The operator's one cache: every provider's exchanges share it."""
    return _SHARED
