"""What should happen to one Destination now: pure decisions, no I/O.

The engine observes (the Destination as last watched, the status it last
wrote, the referenced Secret's fingerprint from the Secret watch, the clock)
and asks `plan()`; it probes only when the plan says so, and afterwards asks
`after_probe()` what to write. Both functions change only the `Memory` they
are given, so every race the engine can meet is a unit test here:

- a spec edited while a probe runs: the engine checks `still_current()`
  before it writes, and throws the stale outcome away;
- a restart: the first plan trusts a stored status that already reports the
  current generation and credentials (`restore`), so nothing is probed or
  written until it is due;
- the verify-requested-at annotation removed: only a value that differs from
  the last one handled is a request; no value is no request;
- a Secret missing for a short while (External Secrets or SOPS create it
  seconds later): `Reconciling` for `secret_grace` seconds, then `Stalled`.

Whether a failure is `Stalled` (a person must act) or retried (`Reconciling`)
is decided here and only here: `STALLED_REASONS`, read from the documented
`api.status.REASONS` table, except a missing Secret during its grace period.
`conditions` writes what it is told.

The inputs of a verification are the generation and the credentials
fingerprint; a probe runs when they differ from the last verification's, when
a new request arrives, or when the next verification is due.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import conditions
from .api import VERIFY_REQUESTED_AT
from .api.spec import DestinationSpec, SpecError, parse_spec
from .api.status import REASONS, ConditionStatus, ConditionType, Reason, fit_verify_request
from .backoff import RandomLike, jittered_interval, next_delay
from .errors import SecretNotFoundError
from .outcome import Outcome, failure, invalid_spec

__all__ = [
    "FOREVER",
    "STALLED_REASONS",
    "Memory",
    "Observed",
    "Plan",
    "Policy",
    "SecretView",
    "after_probe",
    "plan",
    "still_current",
]

FOREVER = None
"""`Plan.requeue_after` when only a watch event can make a difference."""

EXPIRY_GRACE = datetime.timedelta(seconds=1)
"""A verification is due this long after the credentials' readable expiry."""

STALLED_REASONS: frozenset[Reason] = REASONS[ConditionType.Stalled][ConditionStatus.TRUE] - {
    Reason.AuthenticationFailed
}
"""Failures a person must act on before a retry can pass (kstatus Stalled): InvalidSpec,
SecretNotFound (once its grace period is over), SecretKeyMissing, SecretKeyInvalid,
ProviderUnavailable; and AuthenticationFailed only when the credentials had expired
(`Outcome.expired`). Every other failure is retried (Reconciling=True, Retrying)."""


@dataclass(frozen=True)
class SecretView:
    """What the Secret watch keeps of a Secret: its uid and a fingerprint of its data."""

    uid: str
    fingerprint: str


@dataclass(frozen=True)
class Observed:
    """One Destination as the engine sees it now."""

    generation: int
    raw_spec: Mapping[str, Any]
    annotations: Mapping[str, str]
    status: Mapping[str, Any]  # the freshest status known (watched, or just written)
    secret: SecretView | None  # None: the watch knows no such Secret
    now: datetime.datetime

    @property
    def verify_request(self) -> str:
        """The verify-requested-at annotation ("" when absent), as the status can hold it."""
        return fit_verify_request(str(self.annotations.get(VERIFY_REQUESTED_AT) or ""))


@dataclass(frozen=True)
class Policy:
    """The operator settings that decisions depend on."""

    default_interval: float = 3600.0
    backoff_base: float = 5.0
    backoff_cap: float = 300.0
    jitter: float = 0.1
    secret_grace: float = 60.0
    expiry_window: float = conditions.EXPIRY_WINDOW.total_seconds()


@dataclass(slots=True)  # one per Destination: no __dict__ each
class Memory:
    """What this process remembers of one Destination between passes (lost on restart)."""

    restored: bool = False
    generation: int | None = None  # inputs of the last verification
    fingerprint: str | None = None
    handled_request: str = ""
    outcome: Outcome | None = None  # its result; None: the stored status says it
    stalled: bool = False  # the outcome needs a person (Stalled), not a retry (Reconciling)
    next_due: datetime.datetime | None = None
    failures: int = 0
    secret_missing_since: datetime.datetime | None = None

    def reset(self) -> None:
        """Forget the last verification: the next plan that may probe, does."""
        self.generation = self.fingerprint = None
        self.outcome = self.next_due = self.secret_missing_since = None
        self.stalled = False
        self.failures = 0


@dataclass(frozen=True)
class Plan:
    """What to do now."""

    probe: bool = False
    spec: DestinationSpec | None = None  # set when probe is True
    status: dict[str, Any] | None = None  # write this (before the probe, when probing)
    events: tuple[conditions.Event, ...] = ()  # then post these (the status's transitions)
    requeue_after: float | None = FOREVER  # look again after this many seconds


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _stalled(outcome: Outcome) -> bool:
    """Must a person act before `outcome` can change (`STALLED_REASONS`, expired credentials)?"""
    return not outcome.verified and (outcome.reason in STALLED_REASONS or outcome.expired)


def _seconds_until(moment: datetime.datetime | None, now: datetime.datetime) -> float | None:
    if moment is None:
        return FOREVER
    return max(0.0, (moment - now).total_seconds())


def _wake_after(memory: Memory, policy: Policy, now: datetime.datetime) -> float | None:
    """Seconds until the next verification, or until the credentials enter the expiry
    window if that comes first: then the status is written again (CredentialsExpiring
    turns True) without a probe."""
    delay = _seconds_until(memory.next_due, now)
    expiry = memory.outcome.expiry if memory.outcome is not None else None
    if expiry is not None:
        soon = (expiry.at - now).total_seconds() - policy.expiry_window
        if soon > 0:
            delay = soon if delay is None else min(delay, soon)
    return delay


def _writes(
    old: Mapping[str, Any], new: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, tuple[conditions.Event, ...]]:
    """The status to write (None when nothing that matters changed) and the Events its
    transitions deserve: the engine writes and posts them as they are."""
    if new is None or not conditions.status_changed(old, new):
        return None, ()
    return new, tuple(conditions.transition_events(old, new))


def restore(memory: Memory, observed: Observed, policy: Policy) -> None:
    """After a restart: adopt the stored status when it reports the current inputs. A
    stored credentialsExpiry not yet reported as expiring makes a verification due when it
    enters the window (the outcome that would say so is not remembered)."""
    memory.restored = True
    status = observed.status
    memory.handled_request = str(status.get("lastHandledVerifyRequest") or "")
    verified = conditions.find_condition(status.get("conditions"), ConditionType.Verified)
    if (
        verified is None
        or verified.get("status") == "Unknown"
        or status.get("observedGeneration") != observed.generation
    ):
        return
    fingerprint = observed.secret.fingerprint if observed.secret else ""
    if str(status.get("credentialsFingerprint") or "") != fingerprint:
        return
    memory.generation, memory.fingerprint = observed.generation, fingerprint
    memory.next_due = _parse_time(status.get("nextVerificationTime"))
    memory.failures = 0 if verified.get("status") == "True" else 1
    expiry = _parse_time(status.get("credentialsExpiry"))
    kind = ConditionType.CredentialsExpiring
    reported = (conditions.find_condition(status.get("conditions"), kind) or {}).get("status")
    if memory.next_due is not None and expiry is not None and reported != ConditionStatus.TRUE:
        window = expiry - datetime.timedelta(seconds=policy.expiry_window)
        memory.next_due = min(memory.next_due, window)


def plan(observed: Observed, memory: Memory, policy: Policy) -> Plan:
    """Decide what to do with one Destination now; updates `memory` for decisions made
    without a probe (an invalid spec, a missing Secret)."""
    status, now, generation = observed.status, observed.now, observed.generation
    try:
        spec = parse_spec(dict(observed.raw_spec))
    except SpecError as err:
        memory.reset()
        outcome = invalid_spec(err.field, err.message)
        new = conditions.build_status(
            old=status,
            generation=generation,
            spec=None,
            raw_spec=observed.raw_spec,
            outcome=outcome,
            now=now,
            stalled=_stalled(outcome),
        )
        written, events = _writes(status, new)
        return Plan(status=written, events=events)
    if not spec.enabled or spec.archived:
        memory.reset()  # enabling or unarchiving probes at once
        new = conditions.build_status(
            old=status, generation=generation, spec=spec, outcome=None, now=now
        )
        written, events = _writes(status, new)
        return Plan(status=written, events=events)

    if not memory.restored:
        restore(memory, observed, policy)
    request = observed.verify_request
    requested = bool(request) and request != memory.handled_request
    fingerprint = observed.secret.fingerprint if observed.secret else ""
    same_inputs = memory.generation == generation and memory.fingerprint == fingerprint
    due = memory.next_due is not None and now >= memory.next_due
    if same_inputs and not requested and not due:
        # keep the status true (a write that failed, say)
        kept = _status_for(observed, spec, memory, policy) if memory.outcome is not None else None
        written, events = _writes(status, kept)
        return Plan(status=written, events=events, requeue_after=_wake_after(memory, policy, now))

    memory.handled_request = request or memory.handled_request
    if observed.secret is None:
        return _secret_missing(observed, spec, memory, policy)
    memory.secret_missing_since = None
    pending = None
    if status.get("observedGeneration") is None:
        # First sight: say Reconciling before probing, so that kstatus does not read a
        # status-less object as Current while its probe runs.
        pending = conditions.build_status(
            old=status, generation=generation, spec=spec, outcome=None, now=now
        )
    written, events = _writes(status, pending)
    return Plan(probe=True, spec=spec, status=written, events=events)


def _secret_missing(
    observed: Observed, spec: DestinationSpec, memory: Memory, policy: Policy
) -> Plan:
    now = observed.now
    name = spec.secret_name or ""
    if memory.secret_missing_since is None:
        memory.secret_missing_since = now
    waited = (now - memory.secret_missing_since).total_seconds()
    stalled = waited >= policy.secret_grace
    message = f"Secret {name!r} not found in the Destination's namespace"
    if not stalled:
        message += "; waiting for it to be created"
    memory.generation, memory.fingerprint = observed.generation, ""
    memory.outcome = failure(SecretNotFoundError(message), time=now)
    memory.stalled = stalled
    memory.failures += 1
    # Creating the Secret wakes the Destination at once; the timer only ends the grace.
    memory.next_due = (
        None
        if stalled
        else memory.secret_missing_since + datetime.timedelta(seconds=policy.secret_grace)
    )
    new = _status_for(observed, spec, memory, policy)
    written, events = _writes(observed.status, new)
    return Plan(status=written, events=events, requeue_after=_seconds_until(memory.next_due, now))


def _status_for(
    observed: Observed, spec: DestinationSpec, memory: Memory, policy: Policy
) -> dict[str, Any]:
    return conditions.build_status(
        old=observed.status,
        generation=memory.generation if memory.generation is not None else observed.generation,
        spec=spec,
        outcome=memory.outcome,
        now=observed.now,
        next_verification=memory.next_due,
        verify_request=memory.handled_request or None,
        stalled=memory.stalled,
        expiry_window=datetime.timedelta(seconds=policy.expiry_window),
    )


def still_current(before: Observed, after: Observed) -> bool:
    """Does a probe decided on `before` still describe `after` (no spec edit, same Secret)?"""
    fingerprint_before = before.secret.fingerprint if before.secret else ""
    fingerprint_after = after.secret.fingerprint if after.secret else ""
    return before.generation == after.generation and fingerprint_before == fingerprint_after


def verification_delay(
    spec: DestinationSpec, verified: bool, failures: int, policy: Policy, rng: RandomLike
) -> float | None:
    """Seconds until the next verification (None: only when something changes)."""
    if not verified:
        return next_delay(failures, policy.backoff_base, policy.backoff_cap, rng)
    interval = spec.verification.interval_seconds
    if interval is None:
        interval = policy.default_interval
    if interval <= 0:
        return None
    return jittered_interval(interval, policy.jitter, rng)


def after_probe(
    observed: Observed,
    spec: DestinationSpec,
    outcome: Outcome,
    memory: Memory,
    policy: Policy,
    rng: RandomLike,
) -> Plan:
    """Record a probe of `observed`'s inputs and say what to write and when to look again.

    `observed` is what the probe was decided on; `outcome.fingerprint` is the one of
    the Secret data the probe used (read just before it).
    """
    now = outcome.time or observed.now
    memory.generation = observed.generation
    memory.fingerprint = observed.secret.fingerprint if observed.secret else ""
    memory.outcome = outcome
    memory.failures = 0 if outcome.verified else memory.failures + 1
    memory.stalled = _stalled(outcome)
    # A build without the type's provider, or expired credentials, cannot pass by retrying:
    # wait for a change (a new Secret is a new fingerprint, and verified at once).
    delay: float | None = None
    if outcome.reason != Reason.ProviderUnavailable and not outcome.expired:
        delay = verification_delay(spec, outcome.verified, memory.failures, policy, rng)
    memory.next_due = None if delay is None else now + datetime.timedelta(seconds=delay)
    if outcome.expiry is not None and not outcome.expired:
        # Verify again just after the expiry, at no network cost, so that Ready does not
        # outlive the credentials by up to an interval (even when the interval is 0).
        after = outcome.expiry.at + EXPIRY_GRACE
        memory.next_due = after if memory.next_due is None else min(memory.next_due, after)
    new = _status_for(observed, spec, memory, policy)
    written, events = _writes(observed.status, new)
    return Plan(status=written, events=events, requeue_after=_wake_after(memory, policy, now))
