"""The only module with kopf decorators: thin adapters onto `engine`.

kopf watches Destinations; the operator's own watch (`engine.secretwatch`)
lists and watches Secrets as metadata only, so no Secret's data is received
unless a Destination names it (see docs/design.md). Each handler only tells
the engine what changed; the engine's work queue and workers do the rest.
There are no create/update/daemon handlers, so kopf keeps no state on the
objects and adds no finalizer.

The engine's workers start deciding only once every Secret has been listed:
a Secret that exists is never reported missing because its watch event came
late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from . import metrics
from .engine.engine import Engine
from .engine.secretwatch import SecretIndex, watch_secrets
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


class EngineHolder:
    """The one engine of the process, shared by every handler's copy of the memo."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.started = time.monotonic()
        self.watchers = WatcherTracker(required=("destinations.", "secrets."))
        self.secrets: SecretIndex | None = None
        self.secret_watches: list[asyncio.Task[None]] = []


def watch_only(settings: kopf.OperatorSettings, selector: str) -> None:
    """Have the API server send only the Destinations `selector` matches (a shard's own), in
    kopf's list and watch alike. A Destination relabelled out of it arrives as DELETED, one
    relabelled into it as ADDED. Secrets are never filtered: any Destination may name any."""
    if selector:
        settings.watching.label_selectors[GROUP, VERSION, PLURAL] = selector


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_settings: OperatorSettings = memo.get("operator_settings") or OperatorSettings()
    operator_settings.apply_to_kopf(settings)
    watch_only(settings, operator_settings.destination_selector)
    # kopf gives each object's handlers a shallow copy of the memo: share the engine
    # through an object they all reference, made on the first event.
    holder = memo["engine"] = EngineHolder()
    scopes: list[str | None] = [*operator_settings.namespaces] or [None]
    holder.secrets, holder.secret_watches = watch_secrets(scopes, operator_settings.list_chunk_size)
    metrics.serve(operator_settings.metrics_port)
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
        holder.engine.start()
    return holder.engine


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    holder: EngineHolder | None = memo.get("engine")
    if holder is not None:
        for task in holder.secret_watches:
            task.cancel()
        if holder.engine is not None:
            await holder.engine.stop()


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
    """Fail the liveness check when a watch stream died or the engine is stuck, so that the
    kubelet restarts the operator."""
    holder: EngineHolder | None = memo.get("engine")
    if holder is None:
        return "starting"
    started = time.monotonic() - holder.started > WATCHERS_GRACE_SECONDS
    problems = holder.watchers.problems(expect_running=started)
    if holder.engine is not None:
        problems += holder.engine.problems()
    if problems:
        raise kopf.PermanentError("; ".join(problems))
    return "ok" if holder.engine is not None else "waiting for the first watch event"
