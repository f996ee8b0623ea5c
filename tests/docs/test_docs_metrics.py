"""docs/operations.md lists the metrics: each one exists, and no label names a Secret or a value."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from destination_operator import metrics

ROOT = Path(__file__).resolve().parents[2]


def documented() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("- Metrics:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`(destination_operator_[a-z_]+)", section))


def defined() -> dict[str, tuple[str, ...]]:
    """Every metric of the operator: the names it is scraped under -> its label names."""
    found: dict[str, tuple[str, ...]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = tuple(value._labelnames)
            for family in value.describe():
                found[family.name] = labels
                if family.type == "counter":
                    found[family.name + "_total"] = labels
        elif isinstance(value, metrics.PerDestination):  # made at each scrape
            for family in value.describe():
                found[family.name] = tuple(family._labelnames)  # type: ignore[attr-defined]
    return found


def test_every_documented_metric_is_defined() -> None:
    names = documented()
    assert len(names) >= 10, names  # the section was found
    assert sorted(names - set(defined())) == []


PER_OBJECT = {"namespace", "name", "type", "condition", "status", "reason"}


def test_labels_name_no_secret() -> None:
    """Types and reasons; the per-Destination series also its namespace, name and
    conditions (as cert-manager and External Secrets label theirs)."""
    for name, labels in defined().items():
        allowed = PER_OBJECT if name.startswith("destination_operator_destination_") else None
        allowed = allowed or {"type", "reason", "condition", "status"}
        assert set(labels) <= allowed, (name, labels)
