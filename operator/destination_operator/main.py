"""The only module with kopf decorators: thin adapters onto `engine`.

kopf watches Destinations; the operator's own watch (`engine.secretwatch`)
lists and watches Secrets as metadata only, so no Secret's data is received
unless a Destination names it (see docs/design.md). Each handler only tells
the engine what changed; the engine's work queue and workers do the rest.
There are no create/update/daemon handlers, so kopf keeps no state on the
objects and adds no finalizer.

With leader election on, every replica watches and keeps the engine's cache
(a warm standby), and only the holder of the Lease starts the engine's
workers (`engine.elector`); losing the Lease stops the work and the process
(`EXIT_LEASE_LOST`), and SIGTERM releases it after the work has stopped.

The engine's workers start deciding only once every Secret has been listed:
a Secret that exists is never reported missing because its watch event came
late.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any

import kopf
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory

from . import metrics
from .election import Timing
from .engine.elector import Elector
from .engine.engine import Engine
from .engine.secretwatch import SecretIndex, watch_secrets
from .engine.trim import trim_forever
from .engine.watchhealth import WatcherTracker
from .kube.client import GROUP, PLURAL, VERSION, connection_info
from .settings import OperatorSettings

logger = logging.getLogger("destination_operator")


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches log in where the operator's own calls go (--kubeconfig, --context)."""
    return connection_info()


WATCHERS_GRACE_SECONDS = 30.0
"""How long after start-up a missing watch stream is not yet a problem (kopf starts them)."""


EXIT_LEASE_LOST = 3
"""The exit status after losing the Lease (cli.RUN_EXIT_STATUS)."""


class NoMemories(ResourceMemories):
    """kopf's per-object memories, kept for no object: a fresh one for each event.

    kopf keeps one (with a copy of the memo, an error throttler, indexing and daemon
    state) for every object it has seen, about 1 KiB each: 10 MiB at 10,000 Destinations.
    Only the handlers here would read it, and they keep nothing in it: no daemons, no
    indexes, no change or resume handlers, the engine holds what it needs. After an error
    of its own with one object, kopf then pauses that object for its first delay each time
    rather than a growing one."""

    async def recall(
        self,
        raw_body: Any,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        return await super().recall(
            raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True
        )


class Shutdown:
    """How a handler stops the operator with an exit status: kopf's stop flag, and the
    status `cli` exits with once kopf has stopped. An asyncio.Event: kopf waits for a
    threading.Event in a thread of the default executor, which `asyncio.run` then joins,
    so a SIGTERM that never sets it would never let the process exit."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()
        self.code = 0

    def request(self, code: int) -> None:
        self.code = code
        self.flag.set()


class EngineHolder:
    """The one engine of the process, shared by every handler's copy of the memo; its
    workers run only while leading (always, with election off)."""

    def __init__(self, leading: bool) -> None:
        self.engine: Engine | None = None
        self.elector: Elector | None = None
        self.leading = leading
        self.started = time.monotonic()
        self.watchers = WatcherTracker(required=("destinations.", "secrets."))
        self.secrets: SecretIndex | None = None
        self.secret_watches: list[asyncio.Task[None]] = []
        self.trim: asyncio.Task[None] | None = None

    async def lead(self) -> None:
        self.leading = True
        if self.engine is not None:
            self.engine.start()


def watch_only(settings: kopf.OperatorSettings, selector: str) -> None:
    """Have the API server send only the Destinations `selector` matches (a shard's own), in
    kopf's list and watch alike. A Destination relabelled out of it arrives as DELETED, one
    relabelled into it as ADDED. Secrets are never filtered: any Destination may name any."""
    if selector:
        settings.watching.label_selectors[GROUP, VERSION, PLURAL] = selector


def _elector(settings: OperatorSettings, holder: EngineHolder, shutdown: Shutdown) -> Elector:
    """The election on the Lease, its holder identity the pod's name and a random suffix."""

    async def lost() -> None:
        if holder.engine is not None:
            await holder.engine.stop()
        shutdown.request(EXIT_LEASE_LOST)

    namespace = settings.lease_namespace()
    assert namespace, "cli checks that the Lease's namespace is known"
    identity = f"{os.environ.get('HOSTNAME') or socket.gethostname()}_{secrets.token_hex(4)}"
    return Elector(
        namespace,
        settings.leader_election_id,
        identity,
        Timing(
            settings.leader_election_lease_duration,
            settings.leader_election_renew_deadline,
            settings.leader_election_retry_period,
        ),
        on_started=holder.lead,
        on_lost=lost,
    )


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_settings: OperatorSettings = memo.get("operator_settings") or OperatorSettings()
    operator_settings.apply_to_kopf(settings)
    watch_only(settings, operator_settings.destination_selector)
    # kopf gives each object's handlers a shallow copy of the memo: share the engine
    # through an object they all reference.
    holder = memo["engine"] = EngineHolder(leading=not operator_settings.leader_elect)
    scopes: list[str | None] = [*operator_settings.namespaces] or [None]
    holder.secrets, holder.secret_watches = watch_secrets(scopes, operator_settings.list_chunk_size)
    # The engine reads the operator's own Secret watch, not a kopf index, so it exists
    # from the start: /healthz then tells a working leader from a standby at once.
    holder.engine = Engine(operator_settings, secrets=holder.secrets)
    if holder.leading:
        holder.engine.start()
    metrics.serve(operator_settings.metrics_port)
    holder.trim = asyncio.create_task(trim_forever(), name="malloc-trim")
    if operator_settings.leader_elect:
        holder.elector = _elector(operator_settings, holder, memo.get("shutdown") or Shutdown())
        holder.elector.start()
    else:
        metrics.LEADER.labels(lease=operator_settings.leader_election_id).set(1)
    logger.info(
        "destination operator started: namespaces=%s destination_selector=%r "
        "allow_private_endpoints=%s workers=%d probe_concurrency=%d",
        operator_settings.namespaces or "all",
        operator_settings.destination_selector,
        operator_settings.allow_private_endpoints,
        operator_settings.workers,
        operator_settings.probe_concurrency,
    )


def _engine(memo: kopf.Memo) -> Engine:
    holder: EngineHolder = memo["engine"]
    if holder.engine is None:
        settings: OperatorSettings = memo.get("operator_settings") or OperatorSettings()
        holder.engine = Engine(settings, secrets=holder.secrets)
        if holder.leading:
            holder.engine.start()
    return holder.engine


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    holder: EngineHolder | None = memo.get("engine")
    if holder is not None:
        for task in [*holder.secret_watches, *([holder.trim] if holder.trim else [])]:
            task.cancel()
        if holder.engine is not None:
            await holder.engine.stop()
    if holder is not None and holder.elector is not None:
        await holder.elector.release()  # after the work stopped: a standby takes over now


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_destination_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A Destination was added, changed or deleted: update the engine's cache, queue it."""
    engine = _engine(memo)
    if event.get("type") == "DELETED":
        engine.forget(str(body.metadata.namespace), str(body.metadata.name))
    else:
        engine.observe(dict(event.get("object") or body))


@kopf.on.probe(id="engine")
async def on_health(memo: kopf.Memo, **_: Any) -> str:
    """Fail the liveness check when a watch stream died, the engine is stuck or the leader's
    renewal is overdue, so that the kubelet restarts the operator. A standby is healthy."""
    holder: EngineHolder | None = memo.get("engine")
    if holder is None:
        return "starting"
    started = time.monotonic() - holder.started > WATCHERS_GRACE_SECONDS
    problems = holder.watchers.problems(expect_running=started)
    if holder.engine is not None:
        problems += holder.engine.problems()
    if holder.elector is not None:
        problems += holder.elector.problems()
    if problems:
        raise kopf.PermanentError("; ".join(problems))
    if not holder.leading:
        return "standby"
    return "ok" if holder.engine is not None else "starting"
