"""Metrics per Destination, read from the status the engine writes or watches: the series of
each condition's status, the Verified reason and the three times (the credentials' expiry
among them); the old ones removed when
they change and all of them when the Destination is deleted; none with per_object_metrics
off; and the counts by type, condition, status and reason."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import urllib.request
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controlplane import free_port
from destination_operator import decide, metrics
from destination_operator.engine import engine as engine_module
from destination_operator.engine.engine import Engine
from destination_operator.settings import OperatorSettings

LAST, NEXT = "2026-11-22T07:00:00Z", "2026-11-22T08:00:00Z"
LAST_EPOCH, NEXT_EPOCH = 1795330800.0, 1795334400.0
EXPIRY, EXPIRY_EPOCH = "2026-12-01T00:00:00Z", 1796083200.0


def status(
    verified: str = "True",
    reason: str = "ProbeSucceeded",
    *,
    stalled: str = "False",
    times: bool = True,
) -> dict[str, Any]:
    ready = "True" if verified == "True" else "False"
    found: dict[str, Any] = {
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason},
            {"type": "Verified", "status": verified, "reason": reason},
            {"type": "Stalled", "status": stalled, "reason": reason},
            {"type": "Reconciling", "status": "False", "reason": reason},
            {"type": "Archived", "status": "False", "reason": "NotArchived"},
        ]
    }
    if times:  # an expiry is known: CredentialsExpiring is there too
        found["conditions"].append(
            {"type": "CredentialsExpiring", "status": "False", "reason": "CredentialsExpireLater"}
        )
        found |= {
            "lastVerifiedTime": LAST,
            "nextVerificationTime": NEXT,
            "credentialsExpiry": EXPIRY,
        }
    return found


def samples(registry: CollectorRegistry, namespace: str, name: str) -> dict[str, float]:
    """The per-Destination series of one Destination: `metric{labels}` -> value."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if labels.get("namespace") == namespace and labels.get("name") == name:
                rest = ",".join(
                    f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("namespace", "name")
                )
                found[f"{sample.name}{{{rest}}}"] = sample.value
    return found


def test_a_destination_has_22_series() -> None:
    registry = CollectorRegistry()
    shown = metrics.Destinations(registry=registry)
    shown.record("team", "a", "AmazonS3", status())
    found = samples(registry, "team", "a")
    assert len(found) == metrics.SERIES_PER_DESTINATION == 22
    condition = "destination_operator_destination_condition"
    assert found[f"{condition}{{condition=Verified,status=True,type=AmazonS3}}"] == 1
    assert found[f"{condition}{{condition=Verified,status=False,type=AmazonS3}}"] == 0
    assert found[f"{condition}{{condition=Verified,status=Unknown,type=AmazonS3}}"] == 0
    assert found[f"{condition}{{condition=Stalled,status=False,type=AmazonS3}}"] == 1
    reason = "destination_operator_destination_verified_reason"
    assert found[f"{reason}{{reason=ProbeSucceeded,type=AmazonS3}}"] == 1
    last = "destination_operator_destination_last_verified_timestamp_seconds"
    assert found[f"{last}{{type=AmazonS3}}"] == LAST_EPOCH
    after = "destination_operator_destination_next_verification_timestamp_seconds"
    assert found[f"{after}{{type=AmazonS3}}"] == NEXT_EPOCH
    expiry = "destination_operator_destination_credentials_expiry_timestamp_seconds"
    assert found[f"{expiry}{{type=AmazonS3}}"] == EXPIRY_EPOCH
    text = generate_latest(registry).decode()
    assert "secret" not in text.lower()


def test_a_change_moves_the_series_and_drops_the_old_reason() -> None:
    registry = CollectorRegistry()
    shown = metrics.Destinations(registry=registry)
    shown.record("team", "a", "AmazonS3", status())
    shown.record("team", "a", "AmazonS3", status("False", "AccessDenied", times=False))
    found = samples(registry, "team", "a")
    condition = "destination_operator_destination_condition"
    assert found[f"{condition}{{condition=Verified,status=True,type=AmazonS3}}"] == 0
    assert found[f"{condition}{{condition=Verified,status=False,type=AmazonS3}}"] == 1
    reasons = {key for key in found if "verified_reason" in key}
    assert reasons == {
        "destination_operator_destination_verified_reason{reason=AccessDenied,type=AmazonS3}"
    }
    assert not any("timestamp" in key for key in found)  # the status has no times now
    assert len(found) == 16


def test_an_expiry_that_is_no_longer_read_drops_its_series() -> None:
    registry = CollectorRegistry()
    shown = metrics.Destinations(registry=registry)
    shown.record("team", "a", "AmazonS3", status())
    rotated = status()
    del rotated["credentialsExpiry"]  # a Secret without a readable expiry now
    rotated["conditions"] = [c for c in rotated["conditions"] if c["type"] != "CredentialsExpiring"]
    shown.record("team", "a", "AmazonS3", rotated)
    found = samples(registry, "team", "a")
    assert not any("credentials_expiry" in key or "CredentialsExpiring" in key for key in found)
    assert len(found) == 18


def test_forget_removes_every_series_and_the_count() -> None:
    registry = CollectorRegistry()
    shown = metrics.Destinations(registry=registry)
    shown.record("team", "a", "AmazonS3", status())
    shown.record("team", "b", "AmazonS3", status())
    shown.forget("team", "a")
    assert samples(registry, "team", "a") == {}
    assert len(samples(registry, "team", "b")) == 22
    labels = {"type": "AmazonS3", "condition": "Ready", "status": "True"}
    count = "destination_operator_destinations_by_condition"
    assert registry.get_sample_value(count, labels | {"reason": "ProbeSucceeded"}) == 1
    shown.forget("team", "b")
    assert registry.get_sample_value(count, labels | {"reason": "ProbeSucceeded"}) is None


def test_counts_by_type_condition_status_and_reason() -> None:
    registry = CollectorRegistry()
    shown = metrics.Destinations(registry=registry)
    shown.record("team", "a", "AmazonS3", status())
    shown.record("team", "b", "AmazonS3", status())
    shown.record("team", "c", "AmazonS3", status("False", "SecretNotFound", stalled="True"))
    shown.record("other", "d", "AzureBlob", status("False", "SecretNotFound", stalled="True"))
    count = "destination_operator_destinations_by_condition"

    def value(kind: str, condition: str, state: str, reason: str) -> float | None:
        labels = {"type": kind, "condition": condition, "status": state, "reason": reason}
        return registry.get_sample_value(count, labels)

    assert value("AmazonS3", "Ready", "True", "ProbeSucceeded") == 2
    assert value("AmazonS3", "Stalled", "True", "SecretNotFound") == 1
    assert value("AzureBlob", "Stalled", "True", "SecretNotFound") == 1
    assert value("AmazonS3", "Verified", "False", "SecretNotFound") == 1
    shown.record("team", "c", "AmazonS3", status())  # its Secret came
    assert value("AmazonS3", "Ready", "True", "ProbeSucceeded") == 3
    assert value("AmazonS3", "Stalled", "True", "SecretNotFound") is None
    assert value("AmazonS3", "Stalled", "False", "ProbeSucceeded") == 3


def test_per_object_off_keeps_the_counts_only() -> None:
    registry = CollectorRegistry()
    shown = metrics.Destinations(per_object=False, registry=registry)
    shown.record("team", "a", "AmazonS3", status())
    assert samples(registry, "team", "a") == {}
    count = "destination_operator_destinations_by_condition"
    labels = {"type": "AmazonS3", "condition": "Ready", "status": "True"}
    assert registry.get_sample_value(count, labels | {"reason": "ProbeSucceeded"}) == 1


# --- through the engine (the process's registry) ----------------------------------------------


def body(namespace: str, name: str, found: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": "u", "resourceVersion": "1"},
        "spec": {"type": "AmazonS3"},
        "status": found,
    }


def verified(namespace: str, name: str, state: str = "True") -> float | None:
    return REGISTRY.get_sample_value(
        "destination_operator_destination_condition",
        {
            "namespace": namespace,
            "name": name,
            "type": "AmazonS3",
            "condition": "Verified",
            "status": state,
        },
    )


def test_the_engine_shows_watched_and_written_statuses_and_forgets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Engine(OperatorSettings(workers=1))
    engine.observe(body("metrics-engine", "a", status("False", "SecretNotFound", stalled="True")))
    # not started (a standby): no series per Destination; started (leading), they show
    assert samples(REGISTRY, "metrics-engine", "a") == {}
    engine.status_metrics.export_per_object(True)  # what Engine.start does
    assert verified("metrics-engine", "a", "False") == 1
    assert len(samples(REGISTRY, "metrics-engine", "a")) == 22

    written = status()

    def patch_status(namespace: str, name: str, uid: str, new: dict[str, Any]) -> Any:
        return {"metadata": {"resourceVersion": "2"}, "status": new}

    monkeypatch.setattr(engine_module, "patch_status", patch_status)
    entry = engine.cache.get(("metrics-engine", "a"))
    assert entry is not None
    plan = decide.Plan(status=written)
    assert asyncio.run(engine._write(("metrics-engine", "a"), entry, plan))
    assert verified("metrics-engine", "a", "True") == 1
    assert verified("metrics-engine", "a", "False") == 0
    engine.api_pool.shutdown()

    engine.forget("metrics-engine", "a")
    assert samples(REGISTRY, "metrics-engine", "a") == {}


def test_the_engine_with_per_object_metrics_off() -> None:
    engine = Engine(OperatorSettings(per_object_metrics=False))
    engine.observe(body("metrics-off", "a", status()))
    assert samples(REGISTRY, "metrics-off", "a") == {}
    engine.forget("metrics-off", "a")


# --- how /metrics serves them ---------------------------------------------------------------


def parsed(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample of an exposition but the process's own (CPU, memory: they move)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.startswith(("process_", "python_"))
    }


def test_metrics_are_served_in_pieces_as_prometheus_client_would_serve_them() -> None:
    shown = metrics.Destinations()  # the process's: what /metrics shows
    odd = status("False", 'Odd"\\reason\nhere')
    for i in range(metrics.LINES_AT_ONCE // 6):  # more lines than one piece holds
        shown.record("served", f"d{i:04d}", "AmazonS3", odd if i == 0 else status())
    pieces = list(metrics.exposition())
    assert len(pieces) > 2 + 4 * 2  # the others, then each family's header and lines apart
    text = b"".join(pieces).decode()
    assert parsed(text) == parsed(generate_latest(REGISTRY).decode())
    port = free_port()
    metrics.serve(port)
    url = f"http://127.0.0.1:{port}/metrics"
    asked = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(asked, timeout=10) as answer:
        assert answer.headers["Content-Encoding"] == "gzip"
        assert parsed(gzip.decompress(answer.read()).decode()) == parsed(text)
    # only the series asked for, as prometheus_client serves `name[]`
    with urllib.request.urlopen(f"{url}?name[]={metrics.TRACKED._name}", timeout=10) as answer:
        names = {sample[0] for sample in parsed(answer.read().decode())}
    assert names == {"destination_operator_destinations"}


def test_per_destination_series_keep_no_object_per_series() -> None:
    """What each Destination costs: what its status said (`Seen`), not a series object each
    (a prometheus_client Gauge child per series cost about 10 KiB a Destination)."""
    registry = CollectorRegistry()
    shown = metrics.Destinations(registry=registry)
    shown.record("team", "warm", "AmazonS3", status())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            shown.record("team", f"d{i:04d}", "AmazonS3", status())
        per_destination = (tracemalloc.get_traced_memory()[0] - before) / 1000
    finally:
        tracemalloc.stop()
    assert per_destination < 2048, per_destination
    assert len(samples(registry, "team", "d0999")) == metrics.SERIES_PER_DESTINATION


def test_only_an_exporting_replica_has_series_per_destination() -> None:
    registry = CollectorRegistry()
    standby = metrics.Destinations(per_object=False, registry=registry)
    standby.record("ns", "a", "AmazonS3", status())
    assert samples(registry, "ns", "a") == {}
    count = "destination_operator_destinations_by_condition"
    labels = {"type": "AmazonS3", "condition": "Ready", "status": "True"}
    assert registry.get_sample_value(count, labels | {"reason": "ProbeSucceeded"}) == 1
    standby.export_per_object(True)  # it took the Lease
    assert len(samples(registry, "ns", "a")) == metrics.SERIES_PER_DESTINATION
    standby.export_per_object(False)
    assert samples(registry, "ns", "a") == {}
    assert registry.get_sample_value(count, labels | {"reason": "ProbeSucceeded"}) == 1


def test_a_seen_status_shares_its_words_with_every_other() -> None:
    # each read of a kept status parses it anew: the words must not be copied per Destination
    text = '{"conditions": [{"type": "Verified", "status": "True", "reason": "ProbeSucceeded"}]}'
    one = metrics.read_status("S3Compatible", json.loads(text))
    other = metrics.read_status("S3Compatible", json.loads(text))
    assert one == other
    (first_type, (first_status, first_reason)), *_ = one.conditions.items()
    (second_type, (second_status, second_reason)), *_ = other.conditions.items()
    assert first_type is second_type and first_status is second_status
    assert first_reason is second_reason
