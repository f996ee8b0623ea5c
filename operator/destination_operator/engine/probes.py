"""Running probes: the Secret's data, read once per change, and `probe.verify.verify` in
a thread pool of its own under a `ProbeControl`.

The Secret is read in the Destination's own namespace, once per change of the
resourceVersion the metadata watch reports (`refresh`, before a decision; one
read however many Destinations ask at once), then kept in memory with its
fingerprint while a Destination names it. A Secret no Destination names is
never read. Each probe runs in a thread of the probe pool (2 x `probe_concurrency`
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
from destination_operator.api.status import Reason
from destination_operator.engine.cache import Key, version
from destination_operator.engine.secretwatch import SecretIndex
from destination_operator.errors import DestinationError
from destination_operator.identity.resolve import Identities
from destination_operator.kube.client import ApiUnavailable
from destination_operator.kube.secrets import (
    SecretForbidden,
    SecretUnreadable,
    StoredSecret,
    read_secret,
)
from destination_operator.outcome import Outcome, secret_forbidden, secret_unreadable
from destination_operator.probe import verify
from destination_operator.probe.control import ProbeControl
from destination_operator.providers.issued import Issued
from destination_operator.providers.registry import Registry, registry_for
from destination_operator.providers.tokencache import shared_tokens
from destination_operator.settings import OperatorSettings

__all__ = ["UNREAD", "ApiCall", "Probes"]


def _identity_key(namespace: str, kind: str, account: str | None) -> tuple[str, str, str]:
    """What one workload identity's fingerprint is kept under: two Destinations of one type
    naming one ServiceAccount (or both the operator's identity) read the same one."""
    return (namespace, kind, account or "")


ApiCall = Callable[..., Awaitable[Any]]
"""Runs a blocking Kubernetes call, `fn(*args)`, off the event loop."""

UNREAD = "unread"
"""The fingerprint of a Secret whose current version has not been read (never a digest's)."""


class Probes:
    """Probes Destinations with their Secrets' data, a bounded pool of threads and a hard
    deadline each; remembers each Secret's data while its fingerprint holds."""

    def __init__(
        self, settings: OperatorSettings, *, api: ApiCall, index: SecretIndex | None = None
    ) -> None:
        self.settings = settings
        self._api = api
        self.index = index if index is not None else SecretIndex()
        self.secrets: dict[Key, tuple[str, StoredSecret]] = {}  # fingerprint, data
        self._reading: dict[Key, asyncio.Future[StoredSecret | None]] = {}
        self.running: set[ProbeControl] = set()
        self.pool = ThreadPoolExecutor(
            max_workers=settings.probe_concurrency * 2, thread_name_prefix="probe"
        )
        self.identities = Identities(settings, cache=shared_tokens())
        self.registry: Registry = registry_for(
            aws_s3_endpoint=settings.aws_s3_endpoint,
            gcp_storage_endpoint=settings.gcp_storage_endpoint,
            azure_blob_endpoint=settings.azure_blob_endpoint,
            azure_blob_ca_bundle=settings.identity_ca_bundle,
        )
        # (namespace, type, ServiceAccount or "") -> the fingerprint its last verification read
        self.identity_fingerprints: dict[tuple[str, str, str], str] = {}

    async def run(
        self, key: Key, uid: str, spec: DestinationSpec, observed: decide.Observed
    ) -> Outcome | None:
        """Read the Secret and probe the Destination `key` (of this `uid`); None when the
        Secret is not there, though the watch said it was (they disagree for a moment)."""
        name = spec.secret_name
        if name is None:  # a workload identity: no Secret
            found = await self._with_identity(key[0], uid, spec, observed)
        else:
            fingerprint = observed.secret.fingerprint if observed.secret else ""
            try:
                secret = await self._secret_data(key[0], name, fingerprint)
            except SecretForbidden as err:
                return secret_forbidden(str(err))
            except SecretUnreadable as err:
                return secret_unreadable(str(err))
            if secret is None:
                return None
            found = await self._verify(spec, uid, observed.now, secret.data, secret_uid=secret.uid)
        metrics.PROBES.labels(spec.type.value, found.reason.value).inc()
        if found.probed:
            metrics.PROBE_SECONDS.labels(spec.type.value).observe(found.duration_ms / 1000)
        return found

    def view(self, namespace: str, name: str) -> decide.SecretView | None:
        """The Secret as decisions see it: None when the watch knows no such Secret; its
        fingerprint when the version the watch shows was read, else `UNREAD`."""
        seen = self.index.get(namespace, name)
        if seen is None:
            return None
        cached = self.secrets.get((namespace, name))
        if cached is None or not _covers(cached[1], seen.uid, seen.version):
            return decide.SecretView(uid=seen.uid, fingerprint=UNREAD)
        return decide.SecretView(uid=seen.uid, fingerprint=cached[0])

    async def refresh(self, namespace: str, name: str) -> None:
        """Read the Secret if the watch shows a version newer than the one read (none read
        yet: at start, or when a Destination first names it). Raises what `read_secret`
        raises."""
        seen = self.index.get(namespace, name)
        cached = self.secrets.get((namespace, name))
        if seen is None or (cached is not None and _covers(cached[1], seen.uid, seen.version)):
            return
        await self._read(namespace, name)

    async def _with_identity(
        self, namespace: str, uid: str, spec: DestinationSpec, observed: decide.Observed
    ) -> Outcome:
        """Resolve the Destination's workload identity (`identity.resolve`: the settings, the
        ServiceAccount, its token, the exchange) in a thread of the probe pool, outside any
        probe's control (its endpoints are the operator's), then probe with what it issued."""
        timeout = spec.verification.timeout_seconds or self.settings.timeout_seconds
        loop = asyncio.get_running_loop()
        seen = _identity_key(namespace, spec.type.value, spec.credentials.service_account_name)
        try:
            resolved = await loop.run_in_executor(
                self.pool, self.identities.resolve, namespace, spec, timeout
            )
        except DestinationError as err:
            # Nothing was read to judge it by: the outcome's fingerprint ("") stands.
            self.identity_fingerprints.pop(seen, None)
            return outcome.failure(err, time=observed.now)
        self.identity_fingerprints[seen] = resolved.fingerprint
        found = await self._verify(
            spec,
            uid,
            observed.now,
            None,
            issued=resolved.issued,
            credentials_fingerprint=resolved.fingerprint,
        )
        if found.reason == Reason.AuthenticationFailed:
            # The storage no longer takes them (revoked, say): exchange anew next time.
            self.identities.cache.forget(resolved.cache_key)
        return found

    def identity_view(self, namespace: str, spec: dict[str, object]) -> decide.SecretView:
        """What decisions see of a workload identity, in place of a Secret: the fingerprint
        its last verification read (the ServiceAccount's uid and annotations)."""
        credentials = spec.get("credentials")
        name = credentials.get("serviceAccountName") if isinstance(credentials, dict) else None
        seen = _identity_key(
            namespace, str(spec.get("type")), name if isinstance(name, str) else None
        )
        return decide.SecretView(uid="", fingerprint=self.identity_fingerprints.get(seen, ""))

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
        return await self._read(namespace, name)

    async def _read(self, namespace: str, name: str) -> StoredSecret | None:
        """Read the Secret and keep it with its fingerprint; callers asking while a read of
        it runs share that read (100 Destinations naming one rotated Secret: one read)."""
        key = (namespace, name)
        running = self._reading.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[StoredSecret | None] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            secret: StoredSecret | None = await self._api(read_secret, namespace, name)
            metrics.SECRET_READS.inc()
            if secret is None:
                self.secrets.pop(key, None)
            else:
                read = outcome.fingerprint(secret.data, secret.uid)
                self.secrets[key] = (read, secret)
            future.set_result(secret)
        except BaseException as err:
            # Those who shared the read retry (with backoff) when this caller was cancelled.
            shared = err if isinstance(err, Exception) else ApiUnavailable("read cancelled")
            future.set_exception(shared)
            future.exception()  # retrieved: no "never retrieved" warning when none waits
            raise
        finally:
            del self._reading[key]
        return secret

    async def _verify(
        self,
        spec: DestinationSpec,
        uid: str,
        now: datetime.datetime,
        secret_data: dict[str, bytes] | None,
        *,
        secret_uid: str = "",
        issued: Issued | None = None,
        credentials_fingerprint: str | None = None,
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
                    secret_data,
                    secret_uid=secret_uid,
                    object_key=verify.probe_object_key(spec, uid, now),
                    allow_private=allow_private,
                    now=now,
                    control=control,
                    registry=self.registry,
                    issued=issued,
                    credentials_fingerprint=credentials_fingerprint,
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


def _covers(secret: StoredSecret, uid: str, seen_version: str) -> bool:
    """Was `secret` read at the version the watch shows, or later (the read may be ahead
    of the watch)?"""
    if secret.uid != uid:
        return False
    if not secret.version:
        return False
    return version(secret.version) >= version(seen_version)
