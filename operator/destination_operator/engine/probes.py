"""Running probes: the Secret's data, read once per change, and `probe.verify.verify` in
a thread pool of its own under a `ProbeControl`.

The Secret is read in the Destination's own namespace, once per change of the
fingerprint the watch reports, then kept in memory while a Destination names
it. Each probe runs in a thread of the probe pool (2 x `probe_concurrency`
threads: a probe that outlives its control, a straggler, waits for a thread
of this pool, never for one of the API calls') under a control that ends it
at `verification.timeout`, or at once on shutdown or when its worker is
cancelled.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from destination_operator import decide, metrics, outcome
from destination_operator.api.spec import DestinationSpec
from destination_operator.engine.cache import Key
from destination_operator.errors import IdentityNotAllowedError
from destination_operator.kube.secrets import (
    SecretForbidden,
    SecretUnreadable,
    StoredSecret,
    read_secret,
)
from destination_operator.outcome import Outcome, secret_forbidden, secret_unreadable
from destination_operator.probe import verify
from destination_operator.probe.control import ProbeControl
from destination_operator.settings import OperatorSettings

__all__ = ["ApiCall", "Probes"]

ApiCall = Callable[..., Awaitable[Any]]
"""Runs a blocking Kubernetes call, `fn(*args)`, off the event loop."""


class Probes:
    """Probes Destinations with their Secrets' data, a bounded pool of threads and a hard
    deadline each; remembers each Secret's data while its fingerprint holds."""

    def __init__(self, settings: OperatorSettings, *, api: ApiCall) -> None:
        self.settings = settings
        self._api = api
        self.secrets: dict[Key, tuple[str, StoredSecret]] = {}  # fingerprint, data
        self.running: set[ProbeControl] = set()
        self.pool = ThreadPoolExecutor(
            max_workers=settings.probe_concurrency * 2, thread_name_prefix="probe"
        )

    async def run(
        self, key: Key, uid: str, spec: DestinationSpec, observed: decide.Observed
    ) -> Outcome | None:
        """Read the Secret and probe the Destination `key` (of this `uid`); None when the
        Secret is not there, though the watch said it was (they disagree for a moment)."""
        name = spec.secret_name
        if name is None:
            refused = IdentityNotAllowedError(
                "spec.credentials: this operator does not exchange workload identities yet; "
                "give the Destination a secretRef"
            )
            return outcome.failure(refused, time=observed.now)
        fingerprint = observed.secret.fingerprint if observed.secret else ""
        try:
            secret = await self._secret_data(key[0], name, fingerprint)
        except SecretForbidden as err:
            return secret_forbidden(str(err))
        except SecretUnreadable as err:
            return secret_unreadable(str(err))
        if secret is None:
            return None
        found = await self._verify(spec, secret, uid, observed.now)
        metrics.PROBES.labels(spec.type.value, found.reason.value).inc()
        if found.probed:
            metrics.PROBE_SECONDS.labels(spec.type.value).observe(found.duration_ms / 1000)
        return found

    def forget_secret(self, secret: Key) -> None:
        """No Destination names this Secret any more: let go of its data."""
        self.secrets.pop(secret, None)

    def abort_all(self) -> None:
        """End every running probe at once (shutdown)."""
        for control in list(self.running):
            control.abort()

    def shutdown(self) -> None:
        """Stop the pool without waiting: an aborted probe returns by itself, and the process
        exits without joining its thread (see cli._start)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _secret_data(
        self, namespace: str, name: str, fingerprint: str
    ) -> StoredSecret | None:
        """The Secret's data: from memory while the watch reports the same fingerprint."""
        cached = self.secrets.get((namespace, name))
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        secret: StoredSecret | None = await self._api(read_secret, namespace, name)
        metrics.SECRET_READS.inc()
        if secret is not None:
            read = outcome.fingerprint(secret.data, secret.uid)
            self.secrets[(namespace, name)] = (read, secret)
        return secret

    async def _verify(
        self, spec: DestinationSpec, secret: StoredSecret, uid: str, now: datetime.datetime
    ) -> Outcome:
        """`verify.verify` in a thread of the probe pool, under a control of its own."""
        allow_private = self.settings.allow_private_endpoints
        control = verify.probe_control(
            spec, default_timeout=self.settings.timeout_seconds, allow_private=allow_private
        )
        self.running.add(control)
        metrics.PROBES_RUNNING.set(len(self.running))
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self.pool,
                lambda: verify.verify(
                    spec,
                    secret.data,
                    secret_uid=secret.uid,
                    object_key=verify.probe_object_key(spec, uid, now),
                    allow_private=allow_private,
                    now=now,
                    control=control,
                ),
            )
            try:
                found: Outcome = await asyncio.shield(future)
            except asyncio.CancelledError:
                control.abort()  # the thread's sockets shut; it returns by itself
                raise
        finally:
            self.running.discard(control)
            metrics.PROBES_RUNNING.set(len(self.running))
        return found
