"""Wake-ups for the per-Destination loops, in memory: a trigger costs no API write.

Every watch event of a Destination, and of a Secret that a Destination names,
wakes that Destination's loop, which then decides whether anything changed.
"""

from __future__ import annotations

import asyncio
import contextlib


class Wakeups:
    """One asyncio.Event per Destination uid."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def register(self, uid: str) -> None:
        self._events.setdefault(uid, asyncio.Event())

    def unregister(self, uid: str) -> None:
        self._events.pop(uid, None)

    def wake(self, uid: str) -> None:
        event = self._events.get(uid)
        if event is not None:
            event.set()

    async def sleep(self, uid: str, seconds: float) -> bool:
        """Sleep up to `seconds`; True when woken early by a trigger."""
        event = self._events.setdefault(uid, asyncio.Event())
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
            woken = True
        event.clear()
        return woken
