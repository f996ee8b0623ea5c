"""The only module with kopf decorators: thin adapters onto `lifecycle`.

Handler style, chosen so that a verification costs one API write:
- one daemon per Destination runs its verification loop (`lifecycle.DestinationLoop`);
- watch events of Destinations and of the Secrets they name only wake that loop,
  in memory, through `triggers.Wakeups`;
- no create/update/resume handlers, so kopf keeps no progress or diff-base
  state on the objects. The daemon's finalizer is the only other write kopf
  makes: once at creation, once at deletion.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from . import metrics
from .kube.client import GROUP, PLURAL, VERSION
from .lifecycle import DestinationLoop, OperatorContext
from .settings import OperatorSettings

logger = logging.getLogger("destination_operator")
API_THREADS = 8  # Secret reads and status patches, beside the probes


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_settings: OperatorSettings = memo.get("operator_settings") or OperatorSettings()
    operator_settings.apply_to_kopf(settings)
    # Probes and Kubernetes calls run in worker threads; asyncio's default pool
    # (cores + 4) would cap probe_concurrency below its setting on small nodes.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(
            max_workers=operator_settings.probe_concurrency + API_THREADS,
            thread_name_prefix="destination-operator",
        )
    )
    memo["context"] = OperatorContext.create(operator_settings)
    metrics.serve(operator_settings.metrics_port)
    logger.info(
        "destination operator started: namespaces=%s allow_private_endpoints=%s concurrency=%d",
        operator_settings.namespaces or "all",
        operator_settings.allow_private_endpoints,
        operator_settings.probe_concurrency,
    )


@kopf.index(GROUP, VERSION, PLURAL)  # type: ignore[arg-type]
async def secret_users(namespace: str, spec: kopf.Spec, uid: str, **_: Any) -> Any:
    """(namespace, Secret name) -> uids of the Destinations that name it."""
    credentials = spec.get("credentials") or {}
    ref = credentials.get("secretRef") if isinstance(credentials, dict) else None
    name = ref.get("name") if isinstance(ref, dict) else None
    return {(namespace, name): uid} if isinstance(name, str) else None


@kopf.on.event("", "v1", "secrets")  # type: ignore[arg-type]
async def on_secret_event(
    namespace: str, name: str, secret_users: kopf.Index[Any, str], memo: kopf.Memo, **_: Any
) -> None:
    """A Secret was created, changed or deleted: wake every Destination that uses it."""
    context: OperatorContext = memo["context"]
    for uid in secret_users.get((namespace, name), []):
        context.wakeups.wake(uid)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_destination_event(uid: str, memo: kopf.Memo, **_: Any) -> None:
    """Any change to a Destination wakes its loop; the loop decides what changed."""
    context: OperatorContext = memo["context"]
    context.wakeups.wake(uid)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=0.0, cancellation_timeout=5.0)
async def on_destination(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Keep one Destination's status true until it is deleted."""
    context: OperatorContext = memo["context"]
    await DestinationLoop(context, body, logger).run(stopped)
