"""Prometheus metrics. Labels are types, reasons, conditions and, on the per-Destination
series, the Destination's namespace and name: never names of Secrets or values.

The per-Destination series follow cert-manager's `certmanager_certificate_ready_status`
and External Secrets' `externalsecret_status_condition`: `Destinations.record` reads them
from the status the engine wrote or watched (`read_status`, pure), and `Destinations.forget`
removes them when the Destination is deleted.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

PROBES = Counter(
    "destination_operator_probes_total",
    "Probes run, by destination type and resulting reason.",
    ["type", "reason"],
)
PROBE_SECONDS = Histogram(
    "destination_operator_probe_duration_seconds",
    "Wall time of one probe, by destination type.",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROBES_RUNNING = Gauge(
    "destination_operator_probes_running",
    "Probes holding a concurrency slot now.",
)
PROBES_WAITING = Gauge(
    "destination_operator_probes_waiting",
    "Destinations due for a probe and waiting in line for a free slot (no worker held).",
)
STATUS_WRITES = Counter(
    "destination_operator_status_writes_total",
    "Status patches sent to the API server.",
)
SECRET_READS = Counter(
    "destination_operator_secret_reads_total",
    "Secrets read from the API server (only when a probe needs data the operator lacks).",
)
API_RETRIES = Counter(
    "destination_operator_api_retries_total",
    "Passes retried with backoff because the API server was unavailable (5xx, 429, timeout).",
)
STALE_PROBES = Counter(
    "destination_operator_stale_probes_total",
    "Probe results discarded because the spec or the Secret changed while the probe ran.",
)
TRACKED = Gauge(
    "destination_operator_destinations",
    "Destinations the operator watches.",
)
SYNCED = Gauge(
    "destination_operator_destinations_synced",
    "Destinations processed at least once since the operator started.",
)
QUEUE_DEPTH = Gauge(
    "destination_operator_queue_depth",
    "Destinations waiting for a worker now.",
)

CONDITIONS = ("Ready", "Verified", "Stalled", "Reconciling", "Archived")
STATUSES = ("True", "False", "Unknown")
SERIES_PER_DESTINATION = len(CONDITIONS) * len(STATUSES) + 1 + 3
"""A condition's three statuses each, the Verified reason, the three timestamps (the
credentials' expiry only where it can be read)."""


def _gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    per_object = ["namespace", "name", "type"]
    return {
        "condition": Gauge(
            "destination_operator_destination_condition",
            "1 for a Destination's condition's current status, 0 for its other statuses.",
            [*per_object, "condition", "status"],
            registry=registry,
        ),
        "reason": Gauge(
            "destination_operator_destination_verified_reason",
            "1 for the reason of a Destination's Verified condition.",
            [*per_object, "reason"],
            registry=registry,
        ),
        "last": Gauge(
            "destination_operator_destination_last_verified_timestamp_seconds",
            "A Destination's status.lastVerifiedTime, in seconds since the epoch.",
            per_object,
            registry=registry,
        ),
        "next": Gauge(
            "destination_operator_destination_next_verification_timestamp_seconds",
            "A Destination's status.nextVerificationTime, in seconds since the epoch.",
            per_object,
            registry=registry,
        ),
        "expiry": Gauge(
            "destination_operator_destination_credentials_expiry_timestamp_seconds",
            "A Destination's status.credentialsExpiry, in seconds since the epoch: when the "
            "credentials it uses expire, where that can be read (absent otherwise).",
            per_object,
            registry=registry,
        ),
        "count": Gauge(
            "destination_operator_destinations_by_condition",
            "Destinations by type and by each condition's status and reason.",
            ["type", "condition", "status", "reason"],
            registry=registry,
        ),
    }


_DEFAULT = _gauges(REGISTRY)
DESTINATION_CONDITION = _DEFAULT["condition"]
DESTINATION_VERIFIED_REASON = _DEFAULT["reason"]
DESTINATION_LAST_VERIFIED = _DEFAULT["last"]
DESTINATION_NEXT_VERIFICATION = _DEFAULT["next"]
DESTINATION_CREDENTIALS_EXPIRY = _DEFAULT["expiry"]
DESTINATIONS_BY_CONDITION = _DEFAULT["count"]


def _epoch(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 time; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class Seen:
    """What a Destination's status says, as the metrics show it."""

    type: str
    conditions: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """condition type -> (status, reason), for the types of `CONDITIONS` present."""
    last_verified: float | None = None
    next_verification: float | None = None
    credentials_expiry: float | None = None

    @property
    def verified_reason(self) -> str | None:
        found = self.conditions.get("Verified")
        return found[1] if found and found[1] else None


def read_status(kind: str, status: Mapping[str, Any]) -> Seen:
    """The metrics' view of a status dict (pure: no condition is computed, only read)."""
    conditions: dict[str, tuple[str, str]] = {}
    for item in status.get("conditions") or []:
        if not isinstance(item, Mapping) or item.get("type") not in CONDITIONS:
            continue
        conditions[str(item["type"])] = (str(item.get("status", "")), str(item.get("reason", "")))
    return Seen(
        type=kind,
        conditions=conditions,
        last_verified=_epoch(status.get("lastVerifiedTime")),
        next_verification=_epoch(status.get("nextVerificationTime")),
        credentials_expiry=_epoch(status.get("credentialsExpiry")),
    )


_TIMESTAMPS = (
    ("last", "last_verified"),
    ("next", "next_verification"),
    ("expiry", "credentials_expiry"),
)


class Destinations:
    """Each Destination's series (unless `per_object` is off) and the counts by condition."""

    def __init__(self, *, per_object: bool = True, registry: CollectorRegistry | None = None):
        self.per_object = per_object
        self.gauges = _DEFAULT if registry is None else _gauges(registry)
        self.seen: dict[tuple[str, str], Seen] = {}
        self.counts: dict[tuple[str, str, str, str], int] = {}

    def record(self, namespace: str, name: str, kind: str, status: Mapping[str, Any]) -> None:
        """Show what `status`, of a Destination of type `kind`, says now."""
        key = (namespace, name)
        new = read_status(kind, status)
        old = self.seen.get(key)
        if old == new:
            return
        self._drop(key, old, new)
        self.seen[key] = new
        self._count(new, +1)
        if not self.per_object:
            return
        labels = (namespace, name, new.type)
        for condition, (current, _reason) in new.conditions.items():
            for state in STATUSES:
                self.gauges["condition"].labels(*labels, condition, state).set(
                    1 if state == current else 0
                )
        if new.verified_reason:
            self.gauges["reason"].labels(*labels, new.verified_reason).set(1)
        for which, attr in _TIMESTAMPS:
            seconds = getattr(new, attr)
            if seconds is not None:
                self.gauges[which].labels(*labels).set(seconds)

    def forget(self, namespace: str, name: str) -> None:
        """The Destination was deleted: its series go, and it is no longer counted."""
        key = (namespace, name)
        self._drop(key, self.seen.pop(key, None), None)

    def _drop(self, key: tuple[str, str], old: Seen | None, new: Seen | None) -> None:
        """Uncount `old` and remove the series of it that `new` does not set again."""
        if old is None:
            return
        self._count(old, -1)
        if not self.per_object:
            return
        labels = (*key, old.type)
        same_type = new is not None and new.type == old.type
        kept = new.conditions if same_type and new is not None else {}
        for condition in old.conditions:
            if condition not in kept:
                for value in STATUSES:
                    _remove(self.gauges["condition"], *labels, condition, value)
        if old.verified_reason and not (
            same_type and new and new.verified_reason == old.verified_reason
        ):
            _remove(self.gauges["reason"], *labels, old.verified_reason)
        for which, attr in _TIMESTAMPS:
            if getattr(old, attr) is not None and not (
                same_type and new is not None and getattr(new, attr) is not None
            ):
                _remove(self.gauges[which], *labels)

    def _count(self, seen: Seen, step: int) -> None:
        for condition, (status, reason) in seen.conditions.items():
            labels = (seen.type, condition, status, reason)
            count = self.counts.get(labels, 0) + step
            if count > 0:
                self.counts[labels] = count
                self.gauges["count"].labels(*labels).set(count)
            else:
                self.counts.pop(labels, None)
                _remove(self.gauges["count"], *labels)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def serve(port: int) -> None:
    """Expose /metrics on every interface; 0 turns it off."""
    if port:
        start_http_server(port)
