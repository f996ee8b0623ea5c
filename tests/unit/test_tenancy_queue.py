"""The work queue knows no namespaces: keys are handed out in the order they became ready.

docs/multi-tenancy.md relies on this to say that nothing shares the operator fairly
between namespaces: one namespace's many Destinations go before another's one.
"""

from __future__ import annotations

import asyncio

from destination_operator.engine.workqueue import WorkQueue


def test_keys_are_served_in_arrival_order_whatever_their_namespace() -> None:
    async def go() -> list[tuple[str, str]]:
        queue: WorkQueue[tuple[str, str]] = WorkQueue()
        for number in range(1000):
            queue.add(("busy-team", f"d{number}"))
        queue.add(("quiet-team", "only-one"))
        for number in range(1000, 1010):
            queue.add(("busy-team", f"d{number}"))
        served = []
        while len(queue):
            key = await queue.get()
            assert key is not None
            served.append(key)
            queue.done(key)
        return served

    served = asyncio.run(go())
    assert len(served) == 1011
    assert served.index(("quiet-team", "only-one")) == 1000
    assert all(namespace == "busy-team" for namespace, _ in served[:1000])
