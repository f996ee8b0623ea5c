"""A work queue for many objects, in the manner of client-go's `engine.workqueue`.

- A key waits in the queue at most once: adding it again while it waits does
  nothing (deduplication).
- A key is never handed to two workers at once: adding it while a worker
  holds it marks it dirty, and it is queued again when that worker is `done`.
- Keys due later wait in one timer heap (`add_after`), not in a sleeping task
  per object; the earliest due time wins when a key is scheduled twice.
- Failures back off per key, as client-go's rate-limiting queue does:
  `add_rate_limited` counts the key's failures in a row and adds it after the
  delay its `rate_limit` gives for that count; `forget` ends the row (the key
  succeeded), `num_requeues` tells its length.

The queue knows nothing about Kubernetes: keys are any hashable values, and the
clock is injectable so that tests need not sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["RateLimit", "WorkQueue", "exponential"]

K = TypeVar("K", bound=Hashable)

RateLimit = Callable[[int], float]
"""Seconds a key waits after its n-th failure in a row (n >= 1)."""


def exponential(base: float = 0.005, cap: float = 1000.0) -> RateLimit:
    """`base * 2**(n-1)` seconds, at most `cap` (client-go's per-item default)."""
    return lambda failures: min(cap, base * 2.0 ** min(max(failures, 1) - 1, 62))


class WorkQueue(Generic[K]):
    """Deduplicated keys, one worker per key at a time, a timer heap for due times, and
    per-key backoff for failures."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, rate_limit: RateLimit | None = None
    ) -> None:
        self._clock = clock
        self._rate_limit = rate_limit or exponential()
        self._failures: dict[K, int] = {}  # failures in a row, per key
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()  # in _ready
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added while processing: queue again on done()
        self._timers: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}  # the live timer of each key
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._closed = False
        self.last_done = clock()
        self._ready_since = clock()  # when the ready queue last became non-empty

    def __len__(self) -> int:
        """Keys ready to be processed now (not those waiting for a due time)."""
        return len(self._ready)

    @property
    def scheduled(self) -> int:
        """Keys waiting for a due time."""
        return len(self._due)

    def add(self, key: K) -> None:
        """Make `key` ready now (dropping any later due time it had)."""
        if self._closed:
            return
        self._due.pop(key, None)
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            if not self._ready:
                self._ready_since = self._clock()
            self._queued.add(key)
            self._ready.append(key)
            self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        """Make `key` ready after `delay` seconds, unless it is due sooner already."""
        if self._closed:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self._clock() + delay
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._timers, (due, next(self._seq), key))
        self._wakeup.set()

    def add_rate_limited(self, key: K) -> None:
        """`key` failed once more: make it ready after the backoff its failures in a row
        earn (unless it is due sooner already)."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, self._rate_limit(failures))

    def forget(self, key: K) -> None:
        """End `key`'s row of failures (it succeeded): its next failure waits the least."""
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        """`key`'s failures in a row."""
        return self._failures.get(key, 0)

    def discard(self, key: K) -> None:
        """Drop all `key` has here (the object is gone): its due time, a re-add while it was
        processed, its failures. A worker holding it finishes as usual."""
        self._due.pop(key, None)
        self._dirty.discard(key)
        self._failures.pop(key, None)

    def _release_due(self) -> float | None:
        """Move keys whose time has come to the ready queue; seconds until the next one."""
        now = self._clock()
        while self._timers:
            due, _, key = self._timers[0]
            if self._due.get(key) != due:
                heapq.heappop(self._timers)  # superseded or forgotten
                continue
            if due > now:
                return due - now
            heapq.heappop(self._timers)
            del self._due[key]
            self.add(key)
        return None

    async def get(self) -> K | None:
        """The next ready key (the caller must call `done` with it); None once closed."""
        while True:
            wait = self._release_due()
            if self._closed:
                return None
            if self._ready:
                key = self._ready.popleft()
                self._queued.discard(key)
                self._processing.add(key)
                return key
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)

    def done(self, key: K) -> None:
        """The worker has finished with `key`; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        self.last_done = self._clock()
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        elif self._ready:
            self._wakeup.set()  # hand the next key to another waiting worker

    def oldest_wait(self) -> float:
        """Seconds since the queue last made progress, when keys are ready; else 0."""
        if not self._ready:
            return 0.0
        return max(0.0, self._clock() - max(self.last_done, self._ready_since))

    def close(self) -> None:
        """Stop handing out keys; every waiting `get` returns None."""
        self._closed = True
        self._wakeup.set()
