"""The Secret watch retries 401/403 for a while, as a restarted kube-apiserver answers
them until its RBAC cache is filled, and ends (so /healthz says so) when they last."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from destination_operator.engine import secretwatch
from destination_operator.engine.secretwatch import SecretIndex, SecretWatch
from destination_operator.kube import secretmeta
from destination_operator.kube.secretmeta import Forbidden, Page, SecretMeta, WatchEvent


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secretwatch, "RETRY_BASE", 0.01)
    monkeypatch.setattr(secretwatch, "RETRY_CAP", 0.02)


def test_a_refusal_that_passes_is_retried_and_the_index_is_listed(
    monkeypatch: pytest.MonkeyPatch, pool: ThreadPoolExecutor
) -> None:
    answers: list[Exception | Page] = [
        Forbidden("listing Secrets failed with HTTP 403"),
        Forbidden("listing Secrets failed with HTTP 403"),
        Page([SecretMeta("team-a", "s3", "u1", "7")], "7", ""),
    ]
    calls: list[str] = []

    def list_page(scope: str | None, token: str, limit: int) -> Page:
        calls.append("list")
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def watch(scope: str | None, version: str, seconds: int) -> Iterator[WatchEvent]:
        calls.append("watch")
        return iter(())

    monkeypatch.setattr(secretmeta, "list_page", list_page)
    monkeypatch.setattr(secretmeta, "watch", watch)

    async def go() -> None:
        index = SecretIndex([None])
        task = asyncio.create_task(SecretWatch(index, None, pool, random.Random(1)).run())
        await asyncio.wait_for(index.listed(), 5)
        assert index.get("team-a", "s3") is not None
        for _ in range(500):  # then it watches from the list's version
            if "watch" in calls:
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()

    asyncio.run(go())
    assert calls[:4] == ["list", "list", "list", "watch"]


def test_a_refusal_that_lasts_ends_the_watch(
    monkeypatch: pytest.MonkeyPatch, pool: ThreadPoolExecutor
) -> None:
    tries = 0

    def list_page(scope: str | None, token: str, limit: int) -> Page:
        nonlocal tries
        tries += 1
        raise Forbidden("listing Secrets failed with HTTP 403")

    monkeypatch.setattr(secretmeta, "list_page", list_page)

    async def go() -> None:
        watch = SecretWatch(SecretIndex([None]), None, pool, random.Random(1), forbidden_grace=0.2)
        with pytest.raises(Forbidden, match="HTTP 403"):
            await asyncio.wait_for(watch.run(), 5)

    asyncio.run(go())
    assert tries > 2  # retried within the grace, then given up
