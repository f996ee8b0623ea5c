"""The watch-stream part of /healthz: tasks named as kopf names its watchers."""

from __future__ import annotations

import asyncio

from destination_operator.engine.watchhealth import WATCHER_PREFIX, WatcherTracker

DESTINATIONS = "destinations.v1alpha1.destinations.io@None"
SECRETS = "secrets.v1@None"


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fail() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("410 Gone, and kopf gave up")


def _watcher(what: str, coro: object) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name=f"{WATCHER_PREFIX}{what}")  # type: ignore[arg-type]


def _tracker() -> WatcherTracker:
    return WatcherTracker(required=("destinations.", "secrets."))


def test_running_watchers_are_healthy() -> None:
    async def scenario() -> list[str]:
        tasks = [_watcher(DESTINATIONS, _forever()), _watcher(SECRETS, _forever())]
        await asyncio.sleep(0)
        found = _tracker().problems()
        for task in tasks:
            task.cancel()
        return found

    assert asyncio.run(scenario()) == []


def test_a_failed_watcher_is_reported_and_stays_reported() -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        tracker = _tracker()
        alive = _watcher(DESTINATIONS, _forever())
        failing = _watcher(SECRETS, _fail())
        await asyncio.sleep(0)
        before = tracker.problems()  # seen alive
        await asyncio.gather(failing, return_exceptions=True)
        after = tracker.problems(expect_running=False)
        later = tracker.problems()
        alive.cancel()
        return before, after, later

    before, after, later = asyncio.run(scenario())
    assert before == []
    assert after == [f"the watch stream {SECRETS} ended"]
    assert later == [f"the watch stream {SECRETS} ended", "no watch stream for secrets"]


def test_a_cancelled_watcher_is_not_a_problem_but_a_missing_one_is() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        tracker = _tracker()
        tasks = [_watcher(DESTINATIONS, _forever()), _watcher(SECRETS, _forever())]
        await asyncio.sleep(0)
        assert tracker.problems() == []
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        while_starting = tracker.problems(expect_running=False)
        running = tracker.problems()
        tasks[1].cancel()
        return while_starting, running

    while_starting, running = asyncio.run(scenario())
    assert while_starting == []
    assert running == ["no watch stream for destinations"]
