"""Prometheus metrics. Labels are types and reasons only: never names of Secrets or values."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

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
STATUS_WRITES = Counter(
    "destination_operator_status_writes_total",
    "Status patches sent to the API server.",
)
STATUS_UNCHANGED = Counter(
    "destination_operator_status_unchanged_total",
    "Loop wake-ups that found nothing to write.",
)


def serve(port: int) -> None:
    """Expose /metrics on every interface; 0 turns it off."""
    if port:
        start_http_server(port)
