"""Prometheus metrics. Labels are types and reasons only: never names of Secrets or values."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


def serve(port: int) -> None:
    """Expose /metrics on every interface; 0 turns it off."""
    if port:
        start_http_server(port)
