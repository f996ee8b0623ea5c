"""What a pass's result does to its key: one function maps it onto the queue.

A failed pass comes back after the key's backoff, which grows with each failure in a
row; any other result ends the row and comes back when it asks to; a Destination gone
meanwhile is not retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from destination_operator.engine.engine import DONE, RETRY, Engine, Result
from destination_operator.settings import OperatorSettings

KEY = ("team", "a")
Step = Callable[[Engine], Result]


def run_passes(monkeypatch: pytest.MonkeyPatch, steps: list[Step]) -> tuple[Engine, list[int]]:
    """One worker makes a pass per step (each step is the pass's `process`): the engine
    after the last, and the key's failures in a row as each pass began."""
    engine = Engine(OperatorSettings(workers=1), rng=random.Random(7))
    engine.cache.put(KEY, {"metadata": {"name": KEY[1], "namespace": KEY[0], "uid": "u"}})
    failures: list[int] = []

    async def go() -> None:
        finished = asyncio.Event()

        async def process(key: tuple[str, str]) -> Result:
            failures.append(engine.queue.num_requeues(key))
            step = steps[len(failures) - 1]
            if len(failures) == len(steps):
                finished.set()
            return step(engine)

        monkeypatch.setattr(engine, "process", process)
        engine.start()
        engine.queue.add(KEY)
        try:
            await asyncio.wait_for(finished.wait(), timeout=10)
            await asyncio.sleep(0.01)  # the worker hands the last result to the queue
        finally:
            await engine.stop()

    asyncio.run(go())
    return engine, failures


def fail(_engine: Engine) -> Result:
    return RETRY


def crash(_engine: Engine) -> Result:
    raise RuntimeError("a bug")


def test_failures_back_off_and_a_pass_that_works_ends_the_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, failures = run_passes(monkeypatch, [fail, crash, lambda _: Result(requeue_after=3600)])
    assert failures == [0, 1, 2]  # an unexpected error is a failure like any other
    assert engine.queue.num_requeues(KEY) == 0  # the row ended
    assert engine.queue.scheduled == 1 and len(engine.queue) == 0  # back in an hour


def test_done_ends_the_row_and_asks_for_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, failures = run_passes(monkeypatch, [fail, lambda _: DONE])
    assert failures == [0, 1]
    assert engine.queue.num_requeues(KEY) == 0
    assert engine.queue.scheduled == 0 and len(engine.queue) == 0


def test_at_once_comes_back_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, failures = run_passes(monkeypatch, [lambda _: Result(requeue_after=0), lambda _: DONE])
    assert failures == [0, 0]  # the second pass came, and no failure was counted
    assert engine.queue.scheduled == 0  # no timer: it came at once


def test_a_destination_gone_during_a_failed_pass_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gone(engine: Engine) -> Result:
        engine.forget(*KEY)
        return RETRY

    engine, _ = run_passes(monkeypatch, [gone])
    assert engine.queue.num_requeues(KEY) == 0
    assert engine.queue.scheduled == 0 and len(engine.queue) == 0


def test_a_pass_over_a_destination_not_cached_is_done() -> None:
    engine = Engine(OperatorSettings(workers=1))
    try:
        assert asyncio.run(engine.process(("team", "nobody"))) == DONE
    finally:
        engine.probe_pool.shutdown(wait=True)
        engine.api_pool.shutdown(wait=True)


def test_the_backoff_is_the_documented_one() -> None:
    """The n-th failure in a row waits between half and all of min(30, 0.5 * 2**(n-1)) s."""
    engine = Engine(OperatorSettings(workers=1))
    try:
        for failures, ceiling in ((1, 0.5), (2, 1.0), (4, 4.0), (7, 30.0), (50, 30.0)):
            delay = engine._api_backoff(failures)
            assert ceiling / 2 <= delay <= ceiling, (failures, delay)
    finally:
        engine.probe_pool.shutdown(wait=True)
        engine.api_pool.shutdown(wait=True)
