"""The work queue: deduplication, one worker per key, due times, per-key backoff, progress."""

from __future__ import annotations

import asyncio

from destination_operator.engine.workqueue import WorkQueue, exponential


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_key_added_twice_waits_once() -> None:
    async def go() -> list[str | None]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        return [await queue.get(), await queue.get()]

    assert run(go()) == ["a", "b"]


def test_a_key_is_never_handed_out_twice_at_once() -> None:
    async def go() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        assert await queue.get() == "a"
        queue.add("a")  # while a worker holds it
        assert len(queue) == 0
        queue.done("a")
        assert len(queue) == 1  # queued again once done
        assert await queue.get() == "a"

    run(go())


def test_due_times_use_one_heap_and_the_earliest_wins() -> None:
    async def go() -> None:
        clock = Clock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        queue.add_after("a", 10)
        queue.add_after("a", 5)
        queue.add_after("a", 20)
        assert queue.scheduled == 1
        clock.now = 4.9
        assert queue._release_due() is not None and len(queue) == 0
        clock.now = 5.0
        assert await queue.get() == "a"

    run(go())


def test_add_now_drops_a_later_due_time() -> None:
    async def go() -> None:
        clock = Clock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        queue.add_after("a", 10)
        queue.add("a")
        assert await queue.get() == "a"
        queue.done("a")
        clock.now = 11
        assert queue._release_due() is None and len(queue) == 0

    run(go())


def test_a_waiting_worker_wakes_for_a_due_key() -> None:
    async def go() -> str | None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 0.05)
        return await asyncio.wait_for(queue.get(), timeout=2)

    assert run(go()) == "a"


def test_discard_drops_a_due_time_and_close_releases_workers() -> None:
    async def go() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 0.01)
        queue.discard("a")
        waiter = asyncio.create_task(queue.get())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        queue.close()
        assert await asyncio.wait_for(waiter, timeout=1) is None

    run(go())


def test_progress_is_measured_only_while_keys_wait() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    clock.now = 100
    assert queue.oldest_wait() == 0
    queue.add("a")
    clock.now = 130
    assert queue.oldest_wait() == 30


def test_failures_back_off_per_key_and_forget_ends_the_row() -> None:
    clock = Clock()
    delays: list[int] = []

    def rate_limit(failures: int) -> float:
        delays.append(failures)
        return 2.0**failures

    queue: WorkQueue[str] = WorkQueue(clock=clock, rate_limit=rate_limit)
    queue.add_rate_limited("a")
    queue.add_rate_limited("b")
    queue.add_rate_limited("a")  # due after 2 s already: the later 4 s does not win
    assert (queue.num_requeues("a"), queue.num_requeues("b")) == (2, 1)
    assert delays == [1, 1, 2] and queue.scheduled == 2
    clock.now = 2.0
    assert queue._release_due() is None and len(queue) == 2
    queue.forget("a")  # it succeeded: its next failure waits the least again
    assert queue.num_requeues("a") == 0 and queue.num_requeues("b") == 1
    queue.add_rate_limited("a")
    assert delays[-1] == 1


def test_the_default_rate_limit_doubles_up_to_its_cap() -> None:
    limit = exponential(base=0.5, cap=30.0)
    assert [limit(n) for n in (1, 2, 3, 6, 7, 100)] == [0.5, 1.0, 2.0, 16.0, 30.0, 30.0]


def test_discard_drops_all_a_key_had() -> None:
    queue: WorkQueue[str] = WorkQueue(clock=Clock())
    queue.add_rate_limited("a")
    queue.discard("a")
    assert queue.num_requeues("a") == 0 and queue.scheduled == 0
