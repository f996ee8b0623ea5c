"""The periodic malloc_trim: glibc's is found, and the loop trims until cancelled."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from destination_operator.engine import trim


def test_glibcs_malloc_trim_is_found_and_runs() -> None:
    found = trim.malloc_trim()
    assert found is not None  # the image and this machine run glibc
    assert found(0) in (0, 1)  # 1: memory was given back, 0: there was none to give


def test_the_loop_trims_every_interval_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(trim, "malloc_trim", lambda: lambda pad: calls.append(pad) or 0)

    async def run() -> None:
        task = asyncio.create_task(trim.trim_forever(0.01))
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert len(calls) >= 3 and set(calls) == {0}
