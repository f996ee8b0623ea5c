"""The only module with kopf decorators: thin adapters onto `engine`.

kopf watches Destinations and Secrets, lists them at start-up, and keeps an
index of every Secret's fingerprint (never its data). Each handler only tells
the engine what changed; the engine's work queue and workers do the rest
(see `engine` and docs/design.md). There are no create/update/daemon
handlers, so kopf keeps no state on the objects and adds no finalizer.

With leader election on, every replica watches and keeps the engine's cache
(a warm standby), and only the holder of the Lease starts the engine's
workers (`engine.elector`); losing the Lease stops the work and the process
(`EXIT_LEASE_LOST`), and SIGTERM releases it after the work has stopped.

kopf fills every index before it runs any other handler, so by the time the
engine first sees a Destination it knows every Secret: a Secret that exists is
never reported missing because its watch event came late.
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

from . import metrics
from .decide import SecretView
from .election import Timing
from .engine.elector import Elector
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


EXIT_LEASE_LOST = 3
"""The exit status after losing the Lease (cli.RUN_EXIT_STATUS)."""


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

    async def lead(self) -> None:
        self.leading = True
        if self.engine is not None:
            self.engine.start()


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
    # kopf gives each object's handlers a shallow copy of the memo: share the engine
    # through an object they all reference, made on the first event, when the Secret
    # index is at hand.
    holder = memo["engine"] = EngineHolder(leading=not operator_settings.leader_elect)
    metrics.serve(operator_settings.metrics_port)
    if operator_settings.leader_elect:
        holder.elector = _elector(operator_settings, holder, memo.get("shutdown") or Shutdown())
        holder.elector.start()
    else:
        metrics.LEADER.labels(lease=operator_settings.leader_election_id).set(1)
    logger.info(
        "destination operator started: namespaces=%s allow_private_endpoints=%s "
        "workers=%d probe_concurrency=%d",
        operator_settings.namespaces or "all",
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
        if holder.leading:
            holder.engine.start()
    return holder.engine


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    holder: EngineHolder | None = memo.get("engine")
    if holder is not None and holder.engine is not None:
        await holder.engine.stop()
    if holder is not None and holder.elector is not None:
        await holder.elector.release()  # after the work stopped: a standby takes over now


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
    return "ok" if holder.engine is not None else "waiting for the first watch event"
