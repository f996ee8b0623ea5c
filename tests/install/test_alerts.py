"""The chart's alerts and dashboard, rendered by helm and run by promtool (no cluster).

- `promtool check rules` accepts the rendered PrometheusRule, and `promtool test rules`
  fires every alert of it on the operator's own series (tests/install/alerts/rules_test.yaml),
  each one naming its Destination where it is about one, with its severity and runbook;
- those series are the operator's: each metric and label is one metrics.py registers;
- every runbook_url lands on a section of docs/troubleshooting.md; the `for:` durations,
  thresholds, severities and the runbook's address come from values;
- the dashboard ConfigMap: off by default; on, the JSON of dashboards/ with the sidecar's label.

When each alert fires against a real Prometheus scraping a real operator:
tests/install/test_monitoring.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import chart
from controlplane import ControlPlaneError, find_binaries
from destination_operator import metrics
from install import prometheus

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = Path(__file__).parent / "alerts" / "rules_test.yaml"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
ALERTS = [
    "DestinationNotReady",
    "DestinationStalled",
    "DestinationVerificationOverdue",
    "DestinationCredentialsExpiring",
    "DestinationProbesFailing",
    "DestinationsNotSynced",
    "DestinationOperatorDown",
    "DestinationOperatorNoLeader",
]
PER_DESTINATION = ALERTS[:4]
# Labels Prometheus adds to a scraped series: its target's (a ServiceMonitor's: job,
# instance, namespace, pod, service, endpoint, container).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    """DESTINATION_OPERATOR_BIN_DIR, or the folder hack/build-binaries.sh prints."""
    try:
        return find_binaries()
    except ControlPlaneError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="module")
def promtool(bin_dir: Path) -> Path:
    """promtool in the bin folder: a missing one fails the test, saying how to build it."""
    try:
        return prometheus.binary(bin_dir, "promtool")
    except prometheus.PrometheusError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="module")
def rules(bin_dir: Path) -> list[dict[str, Any]]:
    """The default rules: the one group's rules."""
    (group,) = prometheus.rule_groups(bin_dir / "helm")
    found: list[dict[str, Any]] = group["rules"]
    return found


def registered() -> dict[str, set[str]]:
    """Every series name metrics.py registers (with _total, _bucket, ...) -> its labels."""
    found: dict[str, set[str]] = {  # the per-Destination gauges: one collector makes them
        name: {*metrics.PER_OBJECT_LABELS, *labels}
        for name, (_, labels) in metrics.PER_OBJECT_FAMILIES.items()
    }
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = set(value._labelnames)
        for family in value.describe():
            suffixes = {
                "counter": ["_total"],
                "histogram": ["_bucket", "_sum", "_count"],
            }.get(family.type, [""])
            for suffix in suffixes:
                found[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return found


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_rule_has_each_alert_once_with_a_severity_and_a_runbook_section(
    rules: list[dict[str, Any]],
) -> None:
    assert [rule["alert"] for rule in rules] == ALERTS
    sections = anchors(TROUBLESHOOTING.read_text(encoding="utf-8"))
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        base, anchor = rule["annotations"]["runbook_url"].split("#")
        assert base == "docs/troubleshooting.md"
        assert anchor == rule["alert"].lower() and anchor in sections, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    by_name = {rule["alert"]: rule["expr"] for rule in rules}
    # the defaults, as plain integers (helm would print 1209600 as 1.2096e+06)
    assert ") > 900\n" in by_name["DestinationVerificationOverdue"]
    assert "time() < 1209600\n" in by_name["DestinationCredentialsExpiring"]
    for rule in rules:
        if rule["alert"] in PER_DESTINATION:  # grouped by the Destination
            assert "max by (namespace, name, type)" in rule["expr"], rule["alert"]


def test_durations_thresholds_severities_and_the_runbook_come_from_values(bin_dir: Path) -> None:
    values = {
        "runbookURL": "https://docs.example.com/destinations/troubleshooting",
        "severity": "page-team",
        "operatorSeverity": "page-platform",
        "overdueMarginSeconds": 77,
        "credentialsExpiringSeconds": 88,
    }
    durations = {
        "notReadyFor": "11s",
        "stalledFor": "12s",
        "overdueFor": "13s",
        "credentialsExpiringFor": "14s",
        "failingFor": "15s",
        "notSyncedFor": "16s",
        "downFor": "17s",
        "noLeaderFor": "18s",
    }
    (group,) = prometheus.rule_groups(bin_dir / "helm", values | durations)
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert [rule["for"] for rule in rules.values()] == list(durations.values())
    for name, rule in rules.items():
        assert rule["annotations"]["runbook_url"] == f"{values['runbookURL']}#{name.lower()}"
        operator = name in {"DestinationOperatorDown", "DestinationOperatorNoLeader"}
        assert rule["labels"]["severity"] == ("page-platform" if operator else "page-team")
    assert ") > 77\n" in rules["DestinationVerificationOverdue"]["expr"]
    assert "time() < 88\n" in rules["DestinationCredentialsExpiring"]["expr"]


def test_promtool_fires_every_alert_on_the_operators_series(
    promtool: Path, rules: list[dict[str, Any]], tmp_path: Path
) -> None:
    groups = {"groups": [{"name": "r", "rules": rules}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    shutil.copy(PROMTOOL_TESTS, tmp_path / "rules_test.yaml")
    checked = subprocess.run(
        [str(promtool), "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = subprocess.run(
        [str(promtool), "test", "rules", "rules_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    # each alert is shown firing, not only absent
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert fired == set(ALERTS)


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    for name in ("promtool", "prometheus"):
        with pytest.raises(
            prometheus.PrometheusError, match=rf"{name} missing in .*hack/build-binaries\.sh"
        ):
            prometheus.binary(tmp_path, name)
    with pytest.raises(prometheus.PrometheusError, match="prometheus missing"):
        prometheus.Prometheus(tmp_path, tmp_path, [], [])


def test_the_promtool_series_are_the_ones_the_operator_exports() -> None:
    known = registered() | {"up": set()}
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    seen = set()
    for case in cases:
        for item in case["input_series"]:
            selector = item["series"]
            name, labels = re.fullmatch(r"(\w+)\{(.*)\}", selector).groups()  # type: ignore[union-attr]
            keys = set(re.findall(r'(\w+)="[^"]*"', labels))
            assert name in known, f"{name} is not a metric of the operator"
            assert keys - TARGET_LABELS <= known[name], (selector, keys - known[name])
            # a per-Destination series has all of its labels, as the operator sets them
            if name.startswith("destination_operator_destination_"):
                assert known[name] <= keys, selector
            seen.add(name)
    assert len(seen) >= 9, seen


# --- the dashboard -----------------------------------------------------------------------


def configmaps(bin_dir: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rendered = chart.helm_template(bin_dir / "helm", values=values)
    return [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"]


def test_the_dashboard_configmap_is_off_by_default_and_carries_the_sidecar_label(
    bin_dir: Path,
) -> None:
    assert configmaps(bin_dir) == []
    (found,) = configmaps(bin_dir, {"dashboards": {"enabled": True}})
    assert found["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert found["metadata"]["namespace"] == chart.NAMESPACE
    assert "annotations" not in found["metadata"]
    shipped = prometheus.dashboards()
    assert sorted(found["data"]) == sorted(shipped) and shipped
    for name, dashboard in shipped.items():
        assert json.loads(found["data"][name]) == dashboard
    (custom,) = configmaps(
        bin_dir,
        {
            "dashboards": {
                "enabled": True,
                "label": "grafana_dashboard_destinations",
                "labelValue": "yes",
                "annotations": {"grafana_folder": "Destinations"},
                "namespace": "monitoring",
            }
        },
    )
    assert custom["metadata"]["labels"]["grafana_dashboard_destinations"] == "yes"
    assert custom["metadata"]["annotations"] == {"grafana_folder": "Destinations"}
    assert custom["metadata"]["namespace"] == "monitoring"


def test_every_dashboard_query_parses_with_its_variables_filled_in() -> None:
    for dashboard in prometheus.dashboards().values():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names == ["datasource", "job", "namespace"]
        queries = prometheus.panel_queries(dashboard)
        assert len(queries) >= 10
        for title, expr in queries:
            promql_parser.parse(prometheus.substitute(expr))
            assert 'job="$job"' in expr, title
