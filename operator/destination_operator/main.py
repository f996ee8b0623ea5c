"""The only module with kopf decorators: thin adapters onto `engine`.

kopf watches Destinations and Secrets, lists them at start-up, and keeps an
index of every Secret's fingerprint (never its data). Each handler only tells
the engine what changed; the engine's work queue and workers do the rest
(see `engine` and docs/design.md). There are no create/update/daemon
handlers, so kopf keeps no state on the objects and adds no finalizer.

kopf fills every index before it runs any other handler, so by the time the
engine first sees a Destination it knows every Secret: a Secret that exists is
never reported missing because its watch event came late.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from . import metrics
from .decide import SecretView
from .engine.engine import Engine
from .engine.watchhealth import WatcherTracker
from .kube.client import GROUP, PLURAL, VERSION, connection_info
from .kube.secrets import decode
from .outcome import fingerprint
from .settings import OperatorSettings

logger = logging.getLogger("destination_operator")


def _secret_view(
    index: kopf.Index[Any, SecretView], namespace: str, name: str
) -> SecretView | None:
    for view in index.get((namespace, name), []):
        return view
    return None


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's watches log in where the operator's own calls go (--kubeconfig, --context)."""
    return connection_info()


@kopf.index("", "v1", "secrets")  # type: ignore[arg-type]
async def secret_fingerprints(
    namespace: str, name: str, uid: str, body: kopf.Body, **_: Any
) -> Any:
    """(namespace, name) -> the Secret's uid and fingerprint: what decisions need, no data."""
    data = decode(body.get("data"))
    return {(namespace, name): SecretView(uid=uid, fingerprint=fingerprint(data, uid))}


WATCHERS_GRACE_SECONDS = 30.0
"""How long after start-up a missing watch stream is not yet a problem (kopf starts them)."""


class EngineHolder:
    """The one engine of the process, shared by every handler's copy of the memo."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.started = time.monotonic()
        self.watchers = WatcherTracker(required=("destinations.", "secrets."))


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
    # through an object they all reference, made on the first event, when the Secret
    # index is at hand.
    memo["engine"] = EngineHolder()
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


def _engine(memo: kopf.Memo, index: kopf.Index[Any, SecretView]) -> Engine:
    holder: EngineHolder = memo["engine"]
    if holder.engine is None:
        settings: OperatorSettings = memo.get("operator_settings") or OperatorSettings()
        holder.engine = Engine(
            settings, secrets=lambda namespace, name: _secret_view(index, namespace, name)
        )
        holder.engine.start()
    return holder.engine


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    holder: EngineHolder | None = memo.get("engine")
    if holder is not None and holder.engine is not None:
        await holder.engine.stop()


@kopf.on.event("", "v1", "secrets")  # type: ignore[arg-type]
async def on_secret_event(
    namespace: str,
    name: str,
    memo: kopf.Memo,
    secret_fingerprints: kopf.Index[Any, SecretView],
    **_: Any,
) -> None:
    """A Secret was created, changed or deleted: queue every Destination that names it."""
    _engine(memo, secret_fingerprints).secret_changed(namespace, name)


@kopf.on.event(GROUP, VERSION, PLURAL)  # type: ignore[arg-type]
async def on_destination_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    memo: kopf.Memo,
    secret_fingerprints: kopf.Index[Any, SecretView],
    **_: Any,
) -> None:
    """A Destination was added, changed or deleted: update the engine's cache, queue it."""
    engine = _engine(memo, secret_fingerprints)
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
