"""Are kopf's watch streams alive? A part of `/healthz`.

kopf runs one asyncio task per watched resource (and namespace), named
`watcher for <plural>.<version>.<group>@<namespace>`. When one fails, kopf
logs the error and the task ends; it is not started again, and the operator
runs on, blind to that resource: new Destinations get no status, Secret
rotations go unnoticed. Only a restart helps, so the liveness check fails.

A watcher that was cancelled ended on purpose (shutdown, or its resource went
away) and is not a problem. Tasks that end are no longer listed by
`asyncio.all_tasks()`, so the tracker remembers every watcher it has seen
alive, and also requires a live watcher for each resource the operator
cannot work without.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["WATCHER_PREFIX", "WatcherTracker"]

WATCHER_PREFIX = "watcher for "
"""How kopf names a watch stream's task (kopf 1.3x-1.4x, `spawn_missing_watchers`)."""


class WatcherTracker:
    """Finds watch streams that ended without being cancelled, or are missing."""

    def __init__(self, required: Iterable[str]) -> None:
        # The resources that must each have a live watcher, as the start of
        # kopf's resource text: "destinations.", "secrets.".
        self._required = tuple(required)
        self._seen: dict[int, asyncio.Task[object]] = {}

    def problems(self, *, expect_running: bool = True) -> list[str]:
        """What is wrong with the watch streams; empty when they are all running.

        `expect_running` False (kopf is still starting them): a missing stream
        is not yet a problem, one that failed is. Must run in kopf's event loop.
        """
        live: list[str] = []
        for task in asyncio.all_tasks():
            name = task.get_name()
            if name.startswith(WATCHER_PREFIX):
                self._seen[id(task)] = task
                live.append(name.removeprefix(WATCHER_PREFIX))
        found = []
        for key, task in list(self._seen.items()):
            if not task.done():
                continue
            if task.cancelled():
                del self._seen[key]  # stopped on purpose
                continue
            # Kept: a failed stream stays a problem until the process restarts.
            found.append(f"the watch stream {task.get_name().removeprefix(WATCHER_PREFIX)} ended")
        for resource in self._required if expect_running else ():
            if not any(name.startswith(resource) for name in live):
                found.append(f"no watch stream for {resource.rstrip('.')}")
        return found
