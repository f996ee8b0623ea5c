"""One Destination's verification loop: when to probe, and what to write afterwards.

The loop wakes on any watch event of the Destination or of its Secret (see
`triggers`) and at the next due time. Each wake compares the inputs that the
last verification saw (generation, credentials fingerprint, the
verify-requested-at annotation) with the current ones; a probe runs only
when they differ or the next verification is due. Afterwards the whole status
is computed and patched once, and only if it differs from what is stored.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import conditions, metrics, reconcile
from .api import VERIFY_REQUESTED_AT
from .api.spec import DestinationSpec, SpecError, parse_spec
from .api.status import ConditionType
from .kube import events
from .kube.secrets import SecretUnreadable, StoredSecret, read_secret
from .kube.status import StatusWriteFailed, patch_status
from .settings import OperatorSettings
from .triggers import Wakeups

IDLE_SECONDS = 24 * 3600.0  # a loop with nothing scheduled still wakes once a day


@dataclass
class OperatorContext:
    """What every loop shares: settings, the probe limit, the wake-ups."""

    settings: OperatorSettings
    probes: asyncio.Semaphore
    wakeups: Wakeups = field(default_factory=Wakeups)
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def create(cls, settings: OperatorSettings) -> OperatorContext:
        return cls(settings=settings, probes=asyncio.Semaphore(settings.probe_concurrency))


@dataclass(frozen=True)
class Inputs:
    """Everything that, when it changes, calls for a new probe."""

    generation: int
    fingerprint: str
    verify_request: str


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def inputs_recorded_in(status: dict[str, Any]) -> Inputs | None:
    """The inputs of the verification the stored status reports, if it reports one."""
    generation = status.get("observedGeneration")
    verified = next(
        (c for c in status.get("conditions") or [] if c.get("type") == ConditionType.Verified),
        None,
    )
    if not isinstance(generation, int) or verified is None or verified.get("status") == "Unknown":
        return None
    return Inputs(
        generation=generation,
        fingerprint=str(status.get("credentialsFingerprint") or ""),
        verify_request=str(status.get("lastHandledVerifyRequest") or ""),
    )


def _version(value: Any) -> int:
    """A resourceVersion as a number: etcd's are, and only ordering within one object matters."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class DestinationLoop:
    """Runs for as long as kopf's daemon for one Destination runs."""

    def __init__(self, context: OperatorContext, body: kopf.Body, logger: logging.Logger | Any):
        self.context = context
        self.body = body  # kopf keeps a daemon's body fresh as events arrive
        self.logger = logger
        self.uid = str(body.metadata.uid)
        self.namespace = str(body.metadata.namespace)
        self.name = str(body.metadata.name)
        self.last_inputs: Inputs | None = None
        self.next_due: datetime.datetime | None = None
        self.failures = 0
        self.restored = False
        # The status as last written: the watch event of a patch arrives later,
        # and a wake in between must not see (and act on) the older status.
        self.written_status: dict[str, Any] | None = None
        self.written_version = -1

    def current_status(self) -> dict[str, Any]:
        """The freshest status known: the watched body's, or the one just written."""
        body_status = dict(self.body.get("status") or {})
        if self.written_status is None:
            return body_status
        if _version(self.body.metadata.get("resourceVersion")) >= self.written_version:
            self.written_status = None  # the watch has caught up
            return body_status
        return dict(self.written_status)

    def remember(self, stored: dict[str, Any]) -> None:
        self.written_status = dict(stored.get("status") or {})
        self.written_version = _version((stored.get("metadata") or {}).get("resourceVersion"))

    async def run(self, stopped: Any) -> None:
        self.context.wakeups.register(self.uid)
        try:
            while not stopped:
                delay = await self.step()
                await self.context.wakeups.sleep(self.uid, delay)
        finally:
            self.context.wakeups.unregister(self.uid)

    async def step(self) -> float:
        """Bring the status up to date; return how long to sleep unless woken."""
        now = utcnow()
        raw_spec = dict(self.body.get("spec") or {})
        status = self.current_status()
        generation = int(self.body.metadata.get("generation") or 0)
        try:
            spec = parse_spec(raw_spec)
        except SpecError as err:
            outcome = reconcile.invalid_spec(err.field, err.message)
            await self.report(spec=None, raw_spec=raw_spec, status=status, outcome=outcome, now=now)
            return IDLE_SECONDS  # a spec change wakes the loop; retrying cannot help
        if not spec.enabled or spec.archived:
            self.last_inputs = None  # enabling or unarchiving probes at once
            self.failures = 0
            await self.report(spec=spec, raw_spec=raw_spec, status=status, outcome=None, now=now)
            return IDLE_SECONDS

        secret_name = spec.credentials.secret_ref.name
        secret: StoredSecret | None
        try:
            secret = await asyncio.to_thread(read_secret, self.namespace, secret_name)
            unreadable = None
        except SecretUnreadable as err:
            secret, unreadable = None, str(err)
        secret_data, secret_uid = (secret.data, secret.uid) if secret else (None, "")
        inputs = Inputs(
            generation=generation,
            fingerprint=reconcile.fingerprint(secret_data, secret_uid),
            verify_request=str(
                self.body.metadata.get("annotations", {}).get(VERIFY_REQUESTED_AT, "")
            ),
        )
        if not self.restored:
            # After a restart, trust a status that already reports these inputs.
            self.restored = True
            if inputs_recorded_in(status) == inputs:
                self.last_inputs = inputs
                self.next_due = parse_time(status.get("nextVerificationTime"))
        due = self.next_due is not None and now >= self.next_due
        if inputs == self.last_inputs and not due:
            return self.seconds_until_due(now)

        if unreadable is not None:
            outcome = reconcile.secret_unreadable(unreadable)
        else:
            async with self.context.probes:
                outcome = await asyncio.to_thread(
                    reconcile.verify,
                    spec,
                    secret_data,
                    secret_uid=secret_uid,
                    object_key=reconcile.probe_object_key(spec, self.uid, now),
                    allow_private=self.context.settings.allow_private_endpoints,
                    now=now,
                    default_timeout=self.context.settings.timeout_seconds,
                )
        self.last_inputs = inputs
        self.failures = 0 if outcome.verified else self.failures + 1
        self.next_due = now + datetime.timedelta(
            seconds=self.delay_after(spec, raw_spec, outcome.verified)
        )
        metrics.PROBES.labels(spec.type.value, outcome.reason.value).inc()
        if outcome.probed:
            metrics.PROBE_SECONDS.labels(spec.type.value).observe(outcome.duration_ms / 1000)
        await self.report(
            spec=spec,
            raw_spec=raw_spec,
            status=status,
            outcome=outcome,
            now=now,
            inputs=inputs,
        )
        return self.seconds_until_due(utcnow())

    def delay_after(self, spec: DestinationSpec, raw_spec: dict[str, Any], verified: bool) -> float:
        settings, rng = self.context.settings, self.context.rng
        if not verified:
            return conditions.next_delay(
                self.failures, settings.backoff_base_seconds, settings.backoff_cap_seconds, rng
            )
        # The CRD defaults the interval; an object stored without one gets the operator's.
        stored = (raw_spec.get("verification") or {}).get("interval")
        interval = (
            spec.verification.interval_seconds if stored else settings.default_interval_seconds
        )
        if interval <= 0:
            return IDLE_SECONDS * 365
        return conditions.jittered_interval(interval, settings.interval_jitter, rng)

    def seconds_until_due(self, now: datetime.datetime) -> float:
        if self.next_due is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.0, (self.next_due - now).total_seconds()))

    async def report(
        self,
        *,
        spec: DestinationSpec | None,
        raw_spec: dict[str, Any],
        status: dict[str, Any],
        outcome: reconcile.Outcome | None,
        now: datetime.datetime,
        inputs: Inputs | None = None,
    ) -> None:
        """Compute the whole status, patch it if it changed, and emit transition events."""
        generation = int(self.body.metadata.get("generation") or 0)
        new_status = conditions.build_status(
            old=status,
            generation=generation,
            spec=spec,
            raw_spec=raw_spec,
            outcome=outcome,
            now=now,
            next_verification=self.next_due if outcome is not None and spec is not None else None,
            verify_request=inputs.verify_request
            if inputs
            else status.get("lastHandledVerifyRequest"),
        )
        if not conditions.status_changed(status, new_status):
            metrics.STATUS_UNCHANGED.inc()
            return
        metrics.STATUS_WRITES.inc()
        try:
            written = await asyncio.to_thread(patch_status, self.namespace, self.name, new_status)
        except StatusWriteFailed as err:
            self.logger.warning("%s", err)
            return
        if written is None:
            return
        self.remember(written)
        for event in conditions.transition_events(status, new_status):
            events.post(self.body, event)
        if outcome is not None:
            self.logger.info(
                "verification of %s/%s: %s (%s)",
                self.namespace,
                self.name,
                outcome.reason,
                outcome.message,
            )
