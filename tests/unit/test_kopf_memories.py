"""kopf keeps no per-object memory for the operator's Destinations (its memory at 10,000)."""

from __future__ import annotations

import asyncio

import kopf

from destination_operator.main import NoMemories


def test_kopf_remembers_no_object_and_each_event_still_sees_the_shared_memo() -> None:
    memories = NoMemories()
    holder = object()
    memobase = kopf.Memo(engine=holder)
    body = {"metadata": {"uid": "u-1", "name": "d", "namespace": "ns"}}

    async def twice() -> tuple[object, object]:
        first = await memories.recall(body, memobase=memobase, noticed_by_listing=True)
        second = await memories.recall(body, memobase=memobase)
        return first, second

    first, second = asyncio.run(twice())
    assert list(memories.iter_all_memories()) == []  # nothing kept per object
    assert first is not second
    assert first.memo["engine"] is holder and second.memo["engine"] is holder
