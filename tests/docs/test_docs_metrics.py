"""docs/operations.md and docs/metrics.md list the metrics: each one exists, the reference lists
every one with its type and labels, its example queries parse, the chart's alerts and dashboard
use no other metric, and no label names a Secret or a value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
from prometheus_client.metrics import MetricWrapperBase

from destination_operator import metrics

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "metrics.md"
CHART = ROOT / "charts" / "destination-operator"


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
# the leader Lease's name: the operator's own object, set by its settings
OPERATOR_WIDE = {"type", "reason", "condition", "status", "lease"}


def test_labels_name_no_secret() -> None:
    """Types and reasons; the per-Destination series also its namespace, name and
    conditions (as cert-manager and External Secrets label theirs); the leader gauge the
    Lease's name."""
    for name, labels in defined().items():
        allowed = PER_OBJECT if name.startswith("destination_operator_destination_") else None
        allowed = allowed or OPERATOR_WIDE
        assert set(labels) <= allowed, (name, labels)


def reference() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """docs/metrics.md's tables: metric -> (type, labels, example query)."""
    rows: dict[str, tuple[str, tuple[str, ...], str]] = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`destination_operator_"):
            continue
        name = cells[0].strip("`")
        assert name not in rows, f"{name} listed twice"
        labels = tuple(re.findall(r"`(\w+)`", cells[2]))
        rows[name] = (cells[1], labels, cells[4].strip("`"))
    return rows


def families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every metric of the operator by the name its reference uses: -> (type, labels)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {
        # the per-Destination gauges: made at each scrape by one collector
        name: ("gauge", (*metrics.PER_OBJECT_LABELS, *labels))
        for name, (_, labels) in metrics.PER_OBJECT_FAMILIES.items()
    }
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                name = family.name + ("_total" if family.type == "counter" else "")
                found[name] = (family.type, tuple(value._labelnames))
    return found


def test_the_reference_lists_every_metric_with_its_labels() -> None:
    listed = {name: (kind, labels) for name, (kind, labels, _) in reference().items()}
    assert len(listed) >= 15, listed  # the tables were found
    assert listed == families()


def test_every_example_query_parses_and_names_its_metric() -> None:
    for name, (kind, _, example) in reference().items():
        promql_parser.parse(example)  # raises ValueError on a syntax error
        series = f"{name}_bucket" if kind == "histogram" else name
        assert re.search(rf"\b{series}\b", example), (name, example)


def used_by_the_chart() -> dict[str, set[str]]:
    """The operator's metrics the PrometheusRule template and each dashboard name."""
    found = {"prometheusrule.yaml": (CHART / "templates" / "prometheusrule.yaml").read_text()}
    for path in sorted((CHART / "dashboards").glob("*.json")):
        found[path.name] = json.dumps(json.loads(path.read_text(encoding="utf-8")))
    return {
        source: {
            re.sub(r"_(bucket|sum|count)$", "", name)
            for name in re.findall(r"\b(destination_operator_\w+)", text)
        }
        for source, text in found.items()
    }


def test_the_rules_and_the_dashboard_use_only_these_metrics() -> None:
    listed = set(reference())
    used = used_by_the_chart()
    assert len(used) >= 2 and all(used.values()), used
    for source, names in used.items():
        assert sorted(names - listed) == [], source
