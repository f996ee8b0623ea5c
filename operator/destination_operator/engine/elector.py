"""The leader election loop: read the Lease, do what `election.Election` says, repeat.

Every replica runs one. A candidate tries every retry period (sooner when the
holder's Lease runs out sooner); once it holds the Lease it calls
`on_started`, and renews every retry period. When it cannot renew within the
renew deadline, or finds another holder, it calls `on_lost` once and stops:
the caller stops all work and exits. `release()` (on SIGTERM) hands the
Lease over so that a standby takes it at its next try.

Each read or write waits at most until the renew deadline would pass, in
threads of its own, so busy workers cannot delay a renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from destination_operator import metrics
from destination_operator.election import Action, Election, Timing
from destination_operator.kube import lease
from destination_operator.kube.client import ApiUnavailable

logger = logging.getLogger("destination_operator")

Callback = Callable[[], Awaitable[None]]


def _wall() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Elector:
    """One replica's part in the election on the Lease `namespace`/`name`."""

    def __init__(
        self,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing,
        *,
        on_started: Callback,
        on_lost: Callback,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.election = Election(identity, timing)
        self.on_started, self.on_lost = on_started, on_lost
        self.clock = clock
        self.rng = rng or random.Random()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lease")
        self.lease: dict[str, Any] | None = None  # as last read or written
        self.task: asyncio.Task[None] | None = None
        self.gauge = metrics.LEADER.labels(lease=name)
        self.gauge.set(0)

    @property
    def leading(self) -> bool:
        return self.election.leading

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"lease {self.namespace}/{self.name}")

    async def run(self) -> None:
        while True:
            await self.try_once()
            now = self.clock()
            if self.election.lost(now):
                await self._lose(now)
                return
            await asyncio.sleep(self.election.wait_before_next(now, self.rng))

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the Lease's threads, waited for no longer than a renewal may."""
        timing = self.election.timing
        limit = timing.renew_deadline
        if self.election.renewed_at is not None:
            limit = self.election.renewed_at + timing.renew_deadline - self.clock()
        future = asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        return await asyncio.wait_for(future, timeout=max(0.1, limit))

    async def try_once(self) -> None:
        """One read, and one write when it is this replica's turn; failures are logged and
        left to the next try (or to the renew deadline)."""
        try:
            self.lease = await self._call(lease.read, self.namespace, self.name)
            record = lease.record_of(self.lease) if self.lease is not None else None
            self.election.observe(record, self.clock())
            action = self.election.next_action(self.clock())
            if action is Action.WAIT:
                return
            wanted = self.election.to_write(action, _wall())
            if self.lease is None:
                stored = await self._call(lease.create, self.namespace, self.name, wanted)
            else:
                stored = await self._call(lease.update, self.lease, wanted)
        except lease.LeaseConflict:
            logger.debug("the Lease %s/%s changed meanwhile; reading again", *self._at())
            return
        except (ApiUnavailable, TimeoutError) as err:
            logger.warning("the Lease %s/%s: %s", *self._at(), err or "timed out")
            return
        except lease.ApiException as err:  # 403 and the like: say so, and keep trying
            logger.error("the Lease %s/%s: %s", *self._at(), _brief(err))
            return
        was_leading = self.election.leading
        self.lease = stored
        self.election.wrote(lease.record_of(stored), self.clock())
        if not was_leading:
            logger.info("holding the Lease %s/%s as %s: leading", *self._at(), self.identity)
            self.gauge.set(1)
            await self.on_started()

    async def _lose(self, now: float) -> None:
        holder = self.election.observed.holder if self.election.observed else ""
        why = (
            f"{holder or 'nobody'} holds it now"
            if holder != self.identity
            else f"not renewed for {now - (self.election.renewed_at or now):.1f} s"
        )
        logger.error("lost the Lease %s/%s (%s): stopping all work", *self._at(), why)
        self.election.stepped_down()
        self.gauge.set(0)
        await self.on_lost()

    async def release(self) -> None:
        """Stop trying, and hand the Lease over if this replica holds it."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        record = self.election.release(_wall())
        if record is not None and self.lease is not None:
            try:
                await self._call(lease.update, self.lease, record)
                logger.info("released the Lease %s/%s", *self._at())
            except (lease.ApiException, lease.LeaseConflict, ApiUnavailable, TimeoutError) as err:
                # the standby takes over when the Lease expires instead
                logger.warning("could not release the Lease %s/%s: %s", *self._at(), _brief(err))
        self.election.stepped_down()
        self.gauge.set(0)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def problems(self) -> list[str]:
        """For /healthz: a leader whose renewal is overdue, or a loop that ended."""
        found = []
        overdue = self.election.overdue(self.clock())
        if overdue > 0:
            found.append(f"the Lease's renewal is {overdue:.0f} s past its deadline")
        if self.task is not None and self.task.done() and not self.task.cancelled():
            found.append("the leader election loop ended")
        return found

    @property
    def identity(self) -> str:
        return self.election.identity

    def _at(self) -> tuple[str, str]:
        return self.namespace, self.name


def _brief(err: Exception) -> str:
    status = getattr(err, "status", None)
    return f"HTTP {status}: {getattr(err, 'reason', '')}" if status else type(err).__name__
