"""Pure status computation: conditions, the whole status, events, and retry timing.

Nothing here talks to Kubernetes. Every call computes the *whole* conditions
list from the old one, the object's generation, the spec's `enabled` and
`archived` flags, and the latest verification outcome (or none yet): a merge
patch replaces lists whole, and computing everything every time leaves no
stale condition behind.

Condition types and how they read (polarity: which status is the good one);
the reasons each may carry are `api.status.REASONS`:

============  ========  ==========================================================
type          good      meaning
============  ========  ==========================================================
Ready         True      summary for kstatus, Flux, Argo CD and `kubectl wait`:
                        True (reason Ready) only when enabled, not archived and
                        verified; False with the Verified reason; Unknown while
                        pending; absent while disabled or archived (kstatus
                        reads an absent Ready as Current, a False one as
                        InProgress for ever)
Verified      True      True after a successful probe of the current spec and
                        credentials; False with the failure's reason; Unknown
                        while pending, disabled or archived
Archived      (info)    True while `spec.archived`; its lastTransitionTime is the
                        moment the Destination was archived (or unarchived)
Reconciling   absent    kstatus: True while a probe of the current generation is
                        pending (Verifying) or a failure is retried with backoff
                        (Retrying); absent otherwise
Stalled       absent    kstatus: True when retrying alone cannot help: InvalidSpec,
                        SecretKeyMissing, SecretKeyInvalid, ProviderUnavailable,
                        SecretNotFound once the Secret has been missing for a
                        grace period, AuthenticationFailed for expired
                        credentials (`decide` says which: the `stalled`
                        argument); absent otherwise
Credentials-  False     True when the outcome's readable expiry (`Outcome.expiry`)
Expiring                is within `expiry_window` (CredentialsExpireSoon) or has
                        passed (CredentialsExpired); False beyond the window
                        (CredentialsExpireLater); absent when no expiry can be
                        read, and while not probed. kstatus reads neither status
============  ========  ==========================================================

Each condition carries the generation it describes (`observedGeneration`);
its `lastTransitionTime` changes only when its `status` flips, never when
only the reason or the message changes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from destination_operator.api.status import (
    FAILURE_REASONS,
    ConditionType,
    EventReason,
    Reason,
    fit_status,
    rfc3339,
)

if TYPE_CHECKING:
    from destination_operator.api.spec import DestinationSpec
    from destination_operator.expiry import Expiry
    from destination_operator.outcome import Outcome

__all__ = [
    "CONDITION_ORDER",
    "EXPIRY_WINDOW",
    "FAILURE_REASONS",
    "Event",
    "build_status",
    "compute_conditions",
    "find_condition",
    "status_changed",
    "transition_events",
]

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

CONDITION_ORDER: tuple[ConditionType, ...] = (
    ConditionType.Ready,
    ConditionType.Verified,
    ConditionType.Archived,
    ConditionType.Reconciling,
    ConditionType.Stalled,
    ConditionType.CredentialsExpiring,
)
"""The order conditions are written in (stable, so equal statuses compare equal)."""

EXPIRY_WINDOW = datetime.timedelta(days=14)
"""How long before a readable expiry CredentialsExpiring turns True, unless told otherwise
(the operator's `credentials_expiry_window` setting)."""


def _window_words(window: datetime.timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 86400} days" if seconds % 86400 == 0 else f"{seconds} seconds"


def expiring(
    expiry: Expiry, now: datetime.datetime, window: datetime.timedelta
) -> tuple[str, Reason, str]:
    """The CredentialsExpiring status, reason and message for `expiry` at `now`. The
    message names where the expiry was read and its date, never the value, and does not
    change with `now` (a message that did would be a status write on every pass)."""
    date = rfc3339(expiry.at)
    if expiry.passed(now):
        return TRUE, Reason.CredentialsExpired, f"{expiry.source} expired at {date}"
    if expiry.passed(now + window):
        message = f"{expiry.source} expires at {date}, within {_window_words(window)}"
        return TRUE, Reason.CredentialsExpireSoon, message
    return FALSE, Reason.CredentialsExpireLater, f"{expiry.source} expires at {date}"


def _new_condition(
    kind: ConditionType,
    status: str,
    reason: Reason | str,
    message: str,
    generation: int,
    old: Mapping[str, Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    previous = old.get(kind.value)
    since = now
    if previous is not None and previous.get("status") == status:
        since = str(previous.get("lastTransitionTime") or now)
    return {
        "type": kind.value,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": since,
        "reason": str(reason),
        "message": message,
    }


def compute_conditions(
    old: Sequence[Mapping[str, Any]] | None,
    *,
    generation: int,
    enabled: bool,
    archived: bool,
    outcome: Outcome | None,
    now: datetime.datetime,
    stalled: bool = False,
    expiry_window: datetime.timedelta = EXPIRY_WINDOW,
) -> list[dict[str, Any]]:
    """The whole conditions list for this generation.

    `outcome` is the latest verification of the current generation, or None
    while one is pending (or not wanted: disabled, archived). An outcome with
    reason `InvalidSpec` wins over the flags, since a spec that does not parse
    has none to trust. A failure is Stalled (a person must act) when `stalled`
    is True, else Reconciling (retried); `decide` owns that choice. CredentialsExpiring
    comes from the outcome's expiry (`expiring`), while the Destination is probed.
    """
    stamp = rfc3339(now)
    previous = {str(c.get("type")): c for c in old or () if isinstance(c, Mapping)}

    def make(kind: ConditionType, status: str, reason: Reason | str, msg: str) -> dict[str, Any]:
        return _new_condition(kind, status, reason, msg, generation, previous, stamp)

    invalid = outcome is not None and outcome.reason == Reason.InvalidSpec
    if archived:
        archived_condition = make(
            ConditionType.Archived,
            TRUE,
            Reason.Archived,
            "archived: not probed and not Ready; set spec.archived to false to unarchive",
        )
    else:
        before = previous.get(ConditionType.Archived.value) or {}
        was_archived = before.get("status") == TRUE or before.get("reason") == Reason.Unarchived
        archived_condition = (
            make(ConditionType.Archived, FALSE, Reason.Unarchived, "unarchived")
            if was_archived
            else make(ConditionType.Archived, FALSE, Reason.NotArchived, "not archived")
        )

    extra: list[dict[str, Any]] = []
    ready: dict[str, Any] | None
    failed = invalid
    if invalid:
        assert outcome is not None
        verified = make(ConditionType.Verified, FALSE, outcome.reason, outcome.message)
        ready = make(ConditionType.Ready, FALSE, outcome.reason, outcome.message)
    elif archived:
        # No Ready condition: kstatus reads Ready=False as InProgress for ever, and an
        # archived Destination is at rest. `kubectl wait --for=condition=Ready` still waits.
        verified = make(ConditionType.Verified, UNKNOWN, Reason.Archived, "archived: not probed")
        ready = None
    elif not enabled:
        message = "disabled (spec.enabled is false): not probed"
        verified = make(ConditionType.Verified, UNKNOWN, Reason.Disabled, message)
        ready = None
    elif outcome is None:
        message = f"a probe of generation {generation} is pending"
        verified = make(ConditionType.Verified, UNKNOWN, Reason.Pending, message)
        ready = make(ConditionType.Ready, UNKNOWN, Reason.Pending, message)
        extra.append(make(ConditionType.Reconciling, TRUE, Reason.Verifying, message))
    elif outcome.verified:
        verified = make(ConditionType.Verified, TRUE, Reason.ProbeSucceeded, outcome.message)
        ready = make(ConditionType.Ready, TRUE, Reason.Ready, outcome.message)
    else:
        verified = make(ConditionType.Verified, FALSE, outcome.reason, outcome.message)
        ready = make(ConditionType.Ready, FALSE, outcome.reason, outcome.message)
        failed = True
    if failed:
        assert outcome is not None
        if stalled:
            extra.append(make(ConditionType.Stalled, TRUE, outcome.reason, outcome.message))
        else:
            retry = f"retrying with backoff after {outcome.reason}"
            extra.append(make(ConditionType.Reconciling, TRUE, Reason.Retrying, retry))

    expiry = outcome.expiry if outcome is not None else None
    if expiry is not None and enabled and not archived and not invalid:
        extra.append(make(ConditionType.CredentialsExpiring, *expiring(expiry, now, expiry_window)))

    found = {c["type"]: c for c in (ready, verified, archived_condition, *extra) if c}
    return [found[kind.value] for kind in CONDITION_ORDER if kind.value in found]


def find_condition(
    conditions: Iterable[Mapping[str, Any]] | None, kind: ConditionType
) -> Mapping[str, Any] | None:
    """The condition of type `kind` in a conditions list as stored (None when absent)."""
    for item in conditions or ():
        if isinstance(item, Mapping) and item.get("type") == kind.value:
            return item
    return None


# --- the whole status --------------------------------------------------------------------------


def _flag(raw: Mapping[str, Any] | None, key: str, default: bool) -> bool:
    value = (raw or {}).get(key, default)
    return value if isinstance(value, bool) else default


def build_status(
    *,
    old: Mapping[str, Any] | None,
    generation: int,
    spec: DestinationSpec | None,
    raw_spec: Mapping[str, Any] | None = None,
    outcome: Outcome | None,
    now: datetime.datetime,
    next_verification: datetime.datetime | None = None,
    verify_request: str | None = None,
    stalled: bool = False,
    expiry_window: datetime.timedelta = EXPIRY_WINDOW,
) -> dict[str, Any]:
    """The whole status to write (the fields of `api.status.DestinationStatus`, camelCase).

    `spec` is None when the spec did not parse; then `enabled` and `archived`
    are read from `raw_spec` (booleans only, defaults otherwise). Fields the
    outcome does not speak to (`lastVerifiedTime`, the fingerprint, the last
    probe, the target) keep their old values. `nextVerificationTime` and
    `archivedTime` are None (a merge patch deletes them) when they do not
    apply. `archivedTime` is the Archived condition's transition time.
    `stalled` and `expiry_window` are `compute_conditions`'. `credentialsExpiry` is the
    outcome's expiry; kept while a probe is pending; None when not probed.
    """
    old = old or {}
    if spec is not None:
        enabled, archived = bool(spec.enabled), bool(spec.archived)
    else:
        enabled, archived = _flag(raw_spec, "enabled", True), _flag(raw_spec, "archived", False)
    conditions = compute_conditions(
        old.get("conditions"),
        generation=generation,
        enabled=enabled,
        archived=archived,
        outcome=outcome,
        now=now,
        stalled=stalled,
        expiry_window=expiry_window,
    )
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
    for key in ("target", "lastVerifiedTime", "credentialsFingerprint", "lastProbe"):
        if old.get(key) is not None:
            status[key] = old[key]
    if spec is not None:
        status["target"] = spec.member.location()
    if outcome is not None:
        if outcome.verified:
            status["lastVerifiedTime"] = rfc3339(outcome.time or now)
        if outcome.fingerprint:
            status["credentialsFingerprint"] = outcome.fingerprint
        last_probe = outcome.last_probe()
        if last_probe is not None:
            status["lastProbe"] = last_probe
    invalid = outcome is not None and outcome.reason == Reason.InvalidSpec
    probing = enabled and not archived and not invalid
    status["nextVerificationTime"] = (
        rfc3339(next_verification) if probing and next_verification is not None else None
    )
    expiry = old.get("credentialsExpiry") if outcome is None else None
    if outcome is not None and outcome.expiry is not None:
        expiry = rfc3339(outcome.expiry.at)
    status["credentialsExpiry"] = expiry if probing else None
    archived_condition = find_condition(conditions, ConditionType.Archived)
    status["archivedTime"] = (
        archived_condition["lastTransitionTime"]
        if archived and archived_condition is not None
        else None
    )
    if verify_request:
        status["lastHandledVerifyRequest"] = verify_request
    return fit_status(status)


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        items = [_normalise(v) for v in value]
        if all(isinstance(i, dict) and "type" in i for i in items):
            items.sort(key=lambda i: str(i["type"]))
        return items
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Would merge-patching `new` onto `old` change anything that matters?

    Compares key by key what the patch sets: a key `new` leaves out is not
    touched by a merge patch, a None in `new` deletes. Condition order and
    None-valued fields do not count.
    """
    old = old or {}
    for key, value in new.items():
        if value is None:
            if old.get(key) is not None:
                return True
            continue
        if _normalise(value) != _normalise(old.get(key)):
            return True
    return False


# --- events ------------------------------------------------------------------------------------


@dataclass
class Event:
    """A Kubernetes Event to post about the Destination (message already scrubbed)."""

    type: str  # Normal or Warning
    reason: str
    message: str


def transition_events(
    old_status: Mapping[str, Any] | None, new_status: Mapping[str, Any]
) -> list[Event]:
    """The Events a status change deserves, in order.

    - `Normal Verified` when Verified recovers, from False to True; a first
      verification posts none (the status says it, and at scale the Event
      was a third of the API writes for a new Destination);
    - `Warning VerificationFailed` when Verified becomes False, or stays False
      with another reason; not again when the same failure repeats;
    - `Normal Archived` when Archived becomes True (also for a Destination
      created archived), `Normal Unarchived` when it goes from True to False;
    - `Warning CredentialsExpiring` when CredentialsExpiring becomes True.
    """
    old_conditions = (old_status or {}).get("conditions")
    new_conditions = new_status.get("conditions")
    events: list[Event] = []

    old_archived = find_condition(old_conditions, ConditionType.Archived)
    new_archived = find_condition(new_conditions, ConditionType.Archived)
    was = old_archived.get("status") if old_archived else None
    now_ = new_archived.get("status") if new_archived else None
    if now_ == TRUE and was != TRUE:
        events.append(Event("Normal", EventReason.Archived.value, "archived: no longer probed"))
    elif was == TRUE and now_ == FALSE:
        events.append(Event("Normal", EventReason.Unarchived.value, "unarchived: verifying again"))

    old_expiring = find_condition(old_conditions, ConditionType.CredentialsExpiring) or {}
    new_expiring = find_condition(new_conditions, ConditionType.CredentialsExpiring) or {}
    if new_expiring.get("status") == TRUE and old_expiring.get("status") != TRUE:
        text = str(new_expiring.get("message") or "the credentials expire soon")
        events.append(Event("Warning", EventReason.CredentialsExpiring.value, text))

    old_verified = find_condition(old_conditions, ConditionType.Verified) or {}
    new_verified = find_condition(new_conditions, ConditionType.Verified) or {}
    status, reason = new_verified.get("status"), new_verified.get("reason")
    message = str(new_verified.get("message") or "")
    if status == TRUE and old_verified.get("status") == FALSE:
        events.append(Event("Normal", EventReason.Verified.value, message or "verified"))
    elif status == FALSE and (
        old_verified.get("status") != FALSE or old_verified.get("reason") != reason
    ):
        text = f"{reason}: {message}" if message else str(reason)
        events.append(Event("Warning", EventReason.VerificationFailed.value, text))
    return events
