"""The reconcile engine: a work queue of Destinations, a fixed pool of workers, I/O.

kopf watches Destinations and Secrets and hands every event to the engine
(`observe`, `forget`, `secret_changed`), which only updates its cache and
queues the Destination's key: a watch event costs no API call. Workers take
keys from the queue (`workqueue.WorkQueue`: a key is never processed twice
at once, re-adds coalesce, due times wait in one timer heap), ask
`decide.plan()` what to do, and do it:

- write a status (the whole status, one JSON patch that tests the object's uid);
- probe: take one of `probe_concurrency` slots, read the Secret (once per
  change of its fingerprint, then from memory), run the provider in a thread
  under a `ProbeControl` that ends it at `verification.timeout` or on
  shutdown, and write the result unless the spec or the Secret changed
  meanwhile. A Destination that finds every slot taken waits in line without
  its worker: the slot is handed to it when one frees, and its key queued
  again; so however many probes hang, workers stay free for writes. Each
  namespace has its own line and freed slots go round the namespaces in
  turn, so one namespace's many slow probes delay another's by one turn;
- come back later: at the next due time, after backoff, or on the next event.

A pass (`process`) returns a `Result`, as controller-runtime's `Reconcile`
does: done, come back after a time, or retry with backoff. One function,
`_handle_result`, turns it into queue calls; the other queue calls are the
watch events' (and a freed probe slot's, which queues the key it was handed
to). API server trouble (5xx, 429, timeouts, connection errors) and a
refused status patch are retried with per-key backoff, counted in the queue
(`WorkQueue.add_rate_limited`), and never become a condition reason.

The parts: `cache.Cache` (the watched Destinations), `workqueue.WorkQueue`,
`slots.FairSlots` (the probe slots) and `probes.Probes` (the Secret's data
and the probe's thread); this module is the workers and one pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from destination_operator import backoff, decide, metrics
from destination_operator.api.spec import DestinationSpec
from destination_operator.engine.cache import Cache, Entry, Key, key_of, slim
from destination_operator.engine.probes import Probes
from destination_operator.engine.secretwatch import SecretIndex
from destination_operator.engine.slots import FairSlots
from destination_operator.engine.workqueue import WorkQueue
from destination_operator.kube import events, namespaces
from destination_operator.kube.client import ApiUnavailable
from destination_operator.kube.secrets import SecretUnreadable
from destination_operator.kube.status import StatusWriteFailed, patch_status, remove_finalizer
from destination_operator.outcome import Outcome
from destination_operator.settings import OperatorSettings

logger = logging.getLogger("destination_operator")

LEGACY_FINALIZER = "destinations.io/operator"
"""The finalizer of the operator's first releases (one daemon per Destination); removed on sight."""

API_BACKOFF_BASE, API_BACKOFF_CAP = 0.5, 30.0
"""A failed pass waits up to 0.5 s (at least half of it), doubling with each failure in a
row up to 30 s: `backoff.next_delay`, counted per key by the queue."""
NAMESPACE_DELETED_SECONDS = 30.0
SECRET_AGAIN_SECONDS = 1.0
"""How soon a Secret the watch shows, but the API does not return, is read again."""


@dataclass(frozen=True)
class Result:
    """What one pass over a key asks of the queue (controller-runtime's `reconcile.Result`):
    nothing (`DONE`), to come back after `requeue_after` seconds (0: at once), or, for a
    pass that failed, to come back after the key's backoff (`RETRY`)."""

    requeue_after: float | None = None
    rate_limited: bool = False


DONE = Result()
AT_ONCE = Result(requeue_after=0.0)
RETRY = Result(rate_limited=True)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


class Engine:
    """Keeps every watched Destination's status true, with a bounded number of workers."""

    def __init__(
        self,
        settings: OperatorSettings,
        *,
        secrets: SecretIndex | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.secret_index = secrets if secrets is not None else SecretIndex()
        self.secret_index.on_change = self.secret_changed
        self.rng = rng or random.Random()
        self.policy = decide.Policy(
            default_interval=settings.default_interval_seconds,
            backoff_base=settings.backoff_base_seconds,
            backoff_cap=settings.backoff_cap_seconds,
            jitter=settings.interval_jitter,
            secret_grace=settings.secret_grace_seconds,
            expiry_window=settings.credentials_expiry_window,
        )
        self.api_pool = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="kube-api"
        )
        self.probes = Probes(settings, api=self._api, index=self.secret_index)
        self.cache = Cache(on_secret_unused=self.probes.forget_secret)
        # namespace -> when it was seen being deleted: see kube.namespaces
        self.namespaces_deleted: dict[str, float] = {}
        self.queue: WorkQueue[Key] = WorkQueue(rate_limit=self._api_backoff)
        # Probe slots, one line per namespace; a Destination handed a freed slot is queued
        # again to take it.
        self.slots: FairSlots[Key] = FairSlots(
            settings.probe_concurrency, group=lambda key: key[0], on_grant=self._slot_granted
        )
        self.workers: list[asyncio.Task[None]] = []
        self.synced = 0  # Destinations processed at least once since start
        # What each status says, as metrics: read from the status, never computed here;
        # the per-Destination series only once started (a standby exports none).
        self.status_metrics = metrics.Destinations(per_object=False)

    # --- what kopf tells the engine ----------------------------------------------------------

    def observe(self, body: Mapping[str, Any]) -> None:
        """A Destination was added or changed (a watch event): cache it and queue its key."""
        body = slim(body)
        key = key_of(body)
        entry = self.cache.get(key)
        if entry is not None and entry.uid != str(body["metadata"].get("uid")):
            self.forget(*key)  # a new object under an old name: start afresh
        self.cache.put(key, body)
        self.queue.add(key)
        metrics.TRACKED.set(len(self.cache))
        self._record(key, self.cache.get(key))

    def forget(self, namespace: str, name: str) -> None:
        """A Destination was deleted."""
        key = (namespace, name)
        entry = self.cache.pop(key)
        if entry is not None:
            self.synced -= entry.seen
        self.queue.discard(key)
        self.slots.forget(key)  # out of line; a slot handed to it goes on
        metrics.PROBES_WAITING.set(self.slots.waiting)
        metrics.TRACKED.set(len(self.cache))
        self.status_metrics.forget(namespace, name)

    def _record(self, key: Key, entry: Entry | None) -> None:
        """Show the freshest status of a cached Destination in the metrics."""
        if entry is None:
            return
        spec = entry.body.get("spec") or {}
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        self.status_metrics.record(*key, str(kind or ""), entry.status())

    def secret_changed(self, namespace: str, name: str) -> None:
        """A Secret was created, changed or deleted: queue every Destination that names it."""
        if self.secret_index.get(namespace, name) is None:
            self.probes.forget_secret((namespace, name))
        for key in self.cache.users(namespace, name):
            self.queue.add(key)

    def _api_backoff(self, failures: int) -> float:
        """Seconds a Destination waits after its n-th failed pass in a row."""
        return backoff.next_delay(failures, API_BACKOFF_BASE, API_BACKOFF_CAP, self.rng)

    @property
    def probe_pool(self) -> ThreadPoolExecutor:
        """The probes' own threads (`Probes.pool`)."""
        return self.probes.pool

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (call from the event loop), once: only the leader's run, and
        until then the cache fills and keys wait in the queue (a warm standby)."""
        if self.workers:
            return
        self.status_metrics.export_per_object(self.settings.per_object_metrics)
        for number in range(self.settings.workers):
            self.workers.append(asyncio.create_task(self._work(), name=f"worker-{number}"))

    async def stop(self) -> None:
        """Stop the workers and end every running probe at once."""
        self.queue.close()
        self.probes.abort_all()
        for task in self.workers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.workers, return_exceptions=True)
        # Threads are not waited for: an aborted probe returns by itself, and the
        # process exits without joining them (see cli._start).
        self.probes.shutdown()
        self.api_pool.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        """One worker: take a key, make one pass over it, tell the queue what came of it.
        Not before every Secret is known: an existing one is never reported missing."""
        await self.secret_index.listed()
        while (key := await self.queue.get()) is not None:
            try:
                self._handle_result(key, await self._pass(key))
            finally:
                self.slots.pass_on(key)  # handed a slot, then decided not to probe
                self.queue.done(key)
                metrics.QUEUE_DEPTH.set(len(self.queue))

    async def _pass(self, key: Key) -> Result:
        """`process`, with any error it did not expect retried with backoff."""
        try:
            return await self.process(key)
        except Exception:
            logger.exception("processing %s/%s failed; retrying with backoff", *key)
            return RETRY

    def _handle_result(self, key: Key, result: Result) -> None:
        """The one place a pass's result becomes queue calls (controller-runtime's
        `reconcileHandler`). A failure comes back after the key's backoff, which grows with
        each failure in a row (none for a Destination gone meanwhile); any other result ends
        the row, and comes back when it asks to."""
        if result.rate_limited:
            if key in self.cache:
                self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)

    async def _api(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.api_pool, fn, *args)

    def _observed(self, key: Key, entry: Entry) -> decide.Observed:
        meta = entry.body.get("metadata") or {}
        secret_name = entry.secret_name
        spec = entry.body.get("spec") or {}
        if secret_name:
            secret = self.probes.view(key[0], secret_name)
        elif (
            isinstance(spec.get("credentials"), Mapping) and "secretRef" not in spec["credentials"]
        ):
            secret = self.probes.identity_view(key[0], dict(spec))  # a workload identity
        else:
            secret = None
        return decide.Observed(
            generation=int(meta.get("generation") or 0),
            raw_spec=entry.body.get("spec") or {},
            annotations=meta.get("annotations") or {},
            status=entry.status(),
            secret=secret,
            now=utcnow(),
        )

    async def process(self, key: Key) -> Result:
        """One pass over one Destination: decide, then write and probe as decided. What the
        queue should do with the key next; API server trouble and a refused status patch
        ask for a retry with backoff."""
        entry = self.cache.get(key)
        if entry is None:
            return DONE
        try:
            return await self._reconcile(key, entry)
        except ApiUnavailable as err:
            logger.info("API server unavailable for %s/%s (%s); retrying", *key, err)
            metrics.API_RETRIES.inc()
            return RETRY
        except StatusWriteFailed as err:
            logger.warning("%s", err)
            return RETRY

    async def _reconcile(self, key: Key, entry: Entry) -> Result:
        if LEGACY_FINALIZER in (entry.body.get("metadata", {}).get("finalizers") or []):
            await self._drop_legacy_finalizer(key, entry)
        if entry.body["metadata"].get("deletionTimestamp"):
            # Going away (held only by someone else's finalizer): its deletion bumped the
            # generation, which is no reason to probe or report again.
            return DONE
        await self._refresh_secret(key, entry)
        observed = self._observed(key, entry)
        handled = entry.memory.handled_request
        plan = decide.plan(observed, entry.memory, self.policy)
        logger.debug(
            "%s/%s: generation=%d secret=%s probe=%s write=%s requeue=%s",
            *key,
            observed.generation,
            "present" if observed.secret else "absent",
            plan.probe,
            plan.status is not None,
            plan.requeue_after,
        )
        if (
            observed.secret is None
            and plan.status is not None
            and await self._namespace_terminating(key[0])
        ):
            logger.debug("%s/%s: its namespace is being deleted; nothing to report", *key)
            return DONE
        if plan.status is not None and not await self._write(key, entry, plan):
            return DONE
        if plan.probe and plan.spec is not None:
            after = await self._verify(key, entry, plan.spec, observed)
            if isinstance(after, Result):
                if self.slots.is_waiting(key):
                    # In line for a probe slot: a verification request is not handled
                    # until the probe runs, or a pass meanwhile would drop it.
                    entry.memory.handled_request = handled
                return after
            plan = after
        if not entry.seen:
            entry.seen = True
            self.synced += 1
            metrics.SYNCED.set(self.synced)
        return DONE if plan.requeue_after is None else Result(requeue_after=plan.requeue_after)

    async def _verify(
        self, key: Key, entry: Entry, spec: DestinationSpec, observed: decide.Observed
    ) -> decide.Plan | Result:
        """Probe, then write what came of it: the plan after the probe, or how the pass ends
        early (nothing to report yet, the object gone, or its inputs changed meanwhile)."""
        found = await self._probe(key, entry, spec, observed)
        if isinstance(found, Result):
            return found
        if self.cache.get(key) is not entry:
            return DONE
        await self._refresh_secret(key, entry)  # a label changed meanwhile is no change
        if spec.secret_name is None:
            # A workload identity: the probe read the ServiceAccount; judge it by that read.
            observed = replace(observed, secret=decide.SecretView("", found.fingerprint))
        after = self._observed(key, entry)
        if not decide.still_current(observed, after):
            # The spec or the Secret changed while the probe ran: its result is about
            # inputs that are gone. Probe the new ones instead.
            metrics.STALE_PROBES.inc()
            return AT_ONCE
        plan = decide.after_probe(after, spec, found, entry.memory, self.policy, self.rng)
        if plan.status is not None and not await self._write(key, entry, plan):
            return DONE
        logger.info("verification of %s/%s: %s (%s)", *key, found.reason, found.message)
        return plan

    async def _refresh_secret(self, key: Key, entry: Entry) -> None:
        """Read the named Secret if the watch shows a version not yet read. A refused read
        leaves it unread: the probe reads it again and reports why."""
        name = entry.secret_name
        if name is None:
            return
        with contextlib.suppress(SecretUnreadable):
            await self.probes.refresh(key[0], name)

    async def _namespace_terminating(self, namespace: str) -> bool:
        """Whether `namespace` is being deleted. A "yes" is trusted for a while (all its
        Destinations ask at once; a namespace made again under the same name later is asked
        again); a "no" is asked again each time, since the deletion may have begun since
        (this path runs only when a Secret is missing: rarely)."""
        now = asyncio.get_running_loop().time()
        seen = self.namespaces_deleted.get(namespace)
        if seen is not None and now - seen < NAMESPACE_DELETED_SECONDS:
            return True
        found: bool = await self._api(namespaces.terminating, namespace)
        if found:
            self.namespaces_deleted[namespace] = now
        else:
            self.namespaces_deleted.pop(namespace, None)
        return found

    async def _write(self, key: Key, entry: Entry, plan: decide.Plan) -> bool:
        """Patch the plan's status, then post its events. False when the object is gone;
        `StatusWriteFailed` when the patch was refused."""
        assert plan.status is not None
        status = plan.status
        metrics.STATUS_WRITES.inc()
        stored = await self._api(patch_status, key[0], key[1], entry.uid, status)
        if stored is None:
            return False  # deleted or replaced; the watch tells the engine
        entry.wrote(stored)
        self._record(key, entry)
        for event in plan.events:
            await self._api(events.post, key[0], key[1], entry.uid, event)
        return True

    async def _drop_legacy_finalizer(self, key: Key, entry: Entry) -> None:
        finalizers = list(entry.body.get("metadata", {}).get("finalizers") or [])
        kept = [f for f in finalizers if f != LEGACY_FINALIZER]
        try:
            await self._api(remove_finalizer, key[0], key[1], entry.uid, kept)
        except StatusWriteFailed as err:
            logger.warning("%s", err)

    def _slot_granted(self, key: Key) -> None:
        """A freed probe slot was handed to `key`, which waited in line: queue it to take it."""
        metrics.PROBES_WAITING.set(self.slots.waiting)
        self.queue.add(key)

    async def _probe(
        self, key: Key, entry: Entry, spec: DestinationSpec, observed: decide.Observed
    ) -> Outcome | Result:
        """Take a probe slot, read the Secret and probe; a `Result` when there is nothing to
        report yet: every slot is taken (the key is queued again when a slot is handed to
        it, and the worker is free meanwhile), or the Secret is not there yet (the watch and
        the API disagree for a moment: come back in a second)."""
        if not self.slots.take(key):
            metrics.PROBES_WAITING.set(self.slots.waiting)
            return DONE
        try:
            found = await self.probes.run(key, entry.uid, spec, observed)
        finally:
            self.slots.release()
        return Result(requeue_after=SECRET_AGAIN_SECONDS) if found is None else found

    # --- health ------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why the engine is stuck, if it is: workers making no progress while keys wait."""
        found = []
        waited = self.queue.oldest_wait()
        if self.workers and waited > self.settings.stuck_after_seconds:
            found.append(
                f"{len(self.queue)} Destinations waiting and no progress for {waited:.0f}s"
            )
        alive = sum(1 for task in self.workers if not task.done())
        if self.workers and alive < len(self.workers):
            found.append(f"{len(self.workers) - alive} of {len(self.workers)} workers ended")
        return found
