"""Prometheus metrics. Labels are types, reasons, conditions and, on the per-Destination
series, the Destination's namespace and name: never names of Secrets or values.

The per-Destination series follow cert-manager's `certmanager_certificate_ready_status`
and External Secrets' `externalsecret_status_condition`: `Destinations.record` reads them
from the status the engine wrote or watched (`read_status`, pure), `Destinations.forget`
removes them when the Destination is deleted, and `PerDestination` makes them at each
scrape from what was read.
"""

from __future__ import annotations

import contextlib
import datetime
import socketserver
import sys
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

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

LEADER = Gauge(
    "destination_operator_leader",
    "1 when this replica holds the Lease (or election is off), 0 on a standby.",
    ["lease"],
)

CONDITIONS = ("Ready", "Verified", "Stalled", "Reconciling", "Archived", "CredentialsExpiring")
STATUSES = ("True", "False", "Unknown")
SERIES_PER_DESTINATION = len(CONDITIONS) * len(STATUSES) + 1 + 3
"""At most: a condition's three statuses each, the Verified reason, the three timestamps
(CredentialsExpiring and the credentials' expiry only where an expiry can be read)."""


PER_OBJECT_LABELS = ("namespace", "name", "type")
CONDITION = "destination_operator_destination_condition"
VERIFIED_REASON = "destination_operator_destination_verified_reason"
LAST_VERIFIED = "destination_operator_destination_last_verified_timestamp_seconds"
NEXT_VERIFICATION = "destination_operator_destination_next_verification_timestamp_seconds"
CREDENTIALS_EXPIRY = "destination_operator_destination_credentials_expiry_timestamp_seconds"
PER_OBJECT_FAMILIES = {
    CONDITION: (
        "1 for a Destination's condition's current status, 0 for its other statuses.",
        ("condition", "status"),
    ),
    VERIFIED_REASON: (
        "1 for the reason of a Destination's Verified condition.",
        ("reason",),
    ),
    LAST_VERIFIED: ("A Destination's status.lastVerifiedTime, in seconds since the epoch.", ()),
    NEXT_VERIFICATION: (
        "A Destination's status.nextVerificationTime, in seconds since the epoch.",
        (),
    ),
    CREDENTIALS_EXPIRY: (
        "A Destination's status.credentialsExpiry, in seconds since the epoch: when the "
        "credentials it uses expire, where that can be read (absent otherwise).",
        (),
    ),
}


def _counts(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "destination_operator_destinations_by_condition",
        "Destinations by type and by each condition's status and reason.",
        ["type", "condition", "status", "reason"],
        registry=registry,
    )


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


@dataclass(frozen=True, slots=True)  # one per Destination: no __dict__ each
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
    """The metrics' view of a status dict (pure: no condition is computed, only read).

    Its words are interned: one `Seen` is kept per Destination, and a status read from the
    engine's cache is parsed anew each time, so each would hold its own "True",
    "ProbeSucceeded", ... (about 500 bytes a Destination)."""
    conditions: dict[str, tuple[str, str]] = {}
    for item in status.get("conditions") or []:
        if not isinstance(item, Mapping) or item.get("type") not in CONDITIONS:
            continue
        conditions[sys.intern(str(item["type"]))] = (
            sys.intern(str(item.get("status", ""))),
            sys.intern(str(item.get("reason", ""))),
        )
    return Seen(
        type=sys.intern(kind),
        conditions=conditions,
        last_verified=_epoch(status.get("lastVerifiedTime")),
        next_verification=_epoch(status.get("nextVerificationTime")),
        credentials_expiry=_epoch(status.get("credentialsExpiry")),
    )


_TIMESTAMPS = {
    LAST_VERIFIED: "last_verified",
    NEXT_VERIFICATION: "next_verification",
    CREDENTIALS_EXPIRY: "credentials_expiry",
}
"""Each timestamp family and the `Seen` field it shows."""


class _Samples:
    """A family's samples, made one at a time each time they are read (a scrape), so that a
    scrape of 10,000 Destinations never holds 180,000 sample objects at once."""

    def __init__(self, name: str, seen: Mapping[tuple[str, str], Seen]) -> None:
        self.name = name
        self.seen = seen

    def __iter__(self) -> Iterator[Sample]:
        return _samples_of(self.name, self.seen)


def _samples_of(name: str, seen: Mapping[tuple[str, str], Seen]) -> Iterator[Sample]:
    """The samples of one per-Destination family, from what the statuses said."""
    for (namespace, destination), view in seen.items():
        labels = {"namespace": namespace, "name": destination, "type": view.type}
        if name == CONDITION:
            for condition, (current, _reason) in view.conditions.items():
                for state in STATUSES:
                    value = 1.0 if state == current else 0.0
                    yield Sample(name, labels | {"condition": condition, "status": state}, value)
        elif name == VERIFIED_REASON:
            if view.verified_reason:
                yield Sample(name, labels | {"reason": view.verified_reason}, 1.0)
        else:
            seconds = getattr(view, _TIMESTAMPS[name])
            if seconds is not None:
                yield Sample(name, labels, seconds)


class PerDestination:
    """The per-Destination series as a collector: made at each scrape from `Destinations.seen`
    (kube-state-metrics' way), so that they cost no memory beyond what the statuses said
    (with a `Gauge` child per series they cost about 10 KiB a Destination)."""

    def __init__(self) -> None:
        self.source: Destinations | None = None

    def describe(self) -> Iterator[Metric]:
        for name, (documentation, labels) in PER_OBJECT_FAMILIES.items():
            yield GaugeMetricFamily(name, documentation, labels=[*PER_OBJECT_LABELS, *labels])

    def collect(self) -> Iterator[Metric]:
        source = self.source
        seen = source.seen.copy() if source is not None and source.per_object else {}
        for name, (documentation, _labels) in PER_OBJECT_FAMILIES.items():
            family = Metric(name, documentation, "gauge")
            family.samples = _Samples(name, seen)  # type: ignore[assignment]
            yield family


_PROCESS_SERIES = PerDestination()
REGISTRY.register(_PROCESS_SERIES)
_PROCESS_COUNTS = _counts(REGISTRY)


class Destinations:
    """What each Destination's status says: its series (unless `per_object` is off), made at
    each scrape, and the counts by condition. With no `registry`, the process's: the latest
    made is the one /metrics shows."""

    def __init__(self, *, per_object: bool = True, registry: CollectorRegistry | None = None):
        self.per_object = per_object
        self.seen: dict[tuple[str, str], Seen] = {}
        self.counts: dict[tuple[str, str, str, str], int] = {}
        if registry is None:
            _PROCESS_SERIES.source = self
            self.count_gauge = _PROCESS_COUNTS
        else:
            series = PerDestination()
            series.source = self
            registry.register(series)
            self.count_gauge = _counts(registry)

    def record(self, namespace: str, name: str, kind: str, status: Mapping[str, Any]) -> None:
        """Show what `status`, of a Destination of type `kind`, says now."""
        key = (namespace, name)
        new = read_status(kind, status)
        old = self.seen.get(key)
        if old == new:
            return
        if old is not None:
            self._count(old, -1)
        self.seen[key] = new
        self._count(new, +1)

    def export_per_object(self, on: bool) -> None:
        """Export the per-Destination series or not (only the leader does, so a standby's
        series never double a leader's); the next scrape shows or leaves them out."""
        self.per_object = on

    def forget(self, namespace: str, name: str) -> None:
        """The Destination was deleted: its series go, and it is no longer counted."""
        old = self.seen.pop((namespace, name), None)
        if old is not None:
            self._count(old, -1)

    def _count(self, seen: Seen, step: int) -> None:
        for condition, (status, reason) in seen.conditions.items():
            labels = (seen.type, condition, status, reason)
            count = self.counts.get(labels, 0) + step
            if count > 0:
                self.counts[labels] = count
                self.count_gauge.labels(*labels).set(count)
            else:
                self.counts.pop(labels, None)
                with contextlib.suppress(KeyError):
                    self.count_gauge.remove(*labels)


LINES_AT_ONCE = 5000
"""Per-Destination lines formatted and sent at a time when /metrics is read."""


def _escaped(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(sample: Sample) -> str:
    """One sample's line, its labels sorted by name as prometheus_client writes them."""
    labels = ",".join(f'{key}="{_escaped(value)}"' for key, value in sorted(sample.labels.items()))
    value: str = floatToGoString(sample.value)  # type: ignore[no-untyped-call]
    return f"{sample.name}{{{labels}}} {value}\n"


class _AllButPerDestination:
    """The process's registry without the per-Destination families (their samples are never
    made: a family's samples are made only when read)."""

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if family.name not in PER_OBJECT_FAMILIES:
                yield family


def exposition() -> Iterator[bytes]:
    """The text of /metrics, in pieces: every other metric, then each per-Destination family
    `LINES_AT_ONCE` lines at a time, so that a scrape of 10,000 Destinations never holds its
    whole answer (16 MB) in memory."""
    yield generate_latest(_AllButPerDestination())
    for family in _PROCESS_SERIES.collect():
        yield f"# HELP {family.name} {family.documentation}\n".encode()
        yield f"# TYPE {family.name} gauge\n".encode()
        lines: list[str] = []
        for sample in family.samples:
            lines.append(_line(sample))
            if len(lines) >= LINES_AT_ONCE:
                yield "".join(lines).encode()
                lines.clear()
        if lines:
            yield "".join(lines).encode()


def _gzipped(pieces: Iterable[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(wbits=31)  # the gzip format
    for piece in pieces:
        if packed := packer.compress(piece):
            yield packed
    yield packer.flush()


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """GET /metrics (or /): the exposition, gzipped when asked for; `?name[]=...` only the
    series of those names, as prometheus_client serves them."""
    if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    names = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
    pieces: Iterable[bytes] = (
        [generate_latest(REGISTRY.restricted_registry(names))] if names else exposition()
    )
    headers = [("Content-Type", CONTENT_TYPE_LATEST)]
    if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "").lower():
        headers.append(("Content-Encoding", "gzip"))
        pieces = _gzipped(pieces)
    start_response("200 OK", headers)
    return pieces


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape."""


def serve(port: int) -> None:
    """Expose /metrics on every interface; 0 turns it off."""
    if port:
        server = make_server("0.0.0.0", port, _app, _Server, _QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
